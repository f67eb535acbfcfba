"""Static checks for the shared loop: checked by mypy and pyright, never run."""

from __future__ import annotations

import collections.abc as cabc

from flask import Flask
from typing_extensions import assert_type

from flask_asyncext.shared_loop import SharedLoop


async def load_user(user_id: int, /) -> str:
    return str(user_id)


def check_shared_loop() -> None:
    app = Flask(__name__)
    runner = SharedLoop(app)
    later = SharedLoop()
    later.init_app(app)

    run = runner.async_to_sync(load_user)
    assert_type(run, cabc.Callable[[int], str])
    assert_type(run(1), str)
    assert_type(runner.wait_tasks(timeout=1.0), bool)
    assert_type(runner.close(), None)

    runner.async_to_sync(load_user)("1")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
