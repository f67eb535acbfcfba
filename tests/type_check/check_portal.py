"""Static checks for the portal and the adapter: checked by mypy and pyright,
never run.
"""

from __future__ import annotations

import collections.abc as cabc
import typing as t

from flask import Flask
from typing_extensions import assert_type

from flask_asyncext import adapt_decorator
from flask_asyncext.portal import await_
from flask_asyncext.portal import has_portal
from flask_asyncext.portal import run_with_portal
from flask_asyncext.portal import SyncPortal
from flask_asyncext.typing import ViewDecorator


async def load_user(user_id: int, /) -> str:
    return str(user_id)


def validate(name: str, /, *, strict: bool = False) -> bool:
    return bool(name)


async def check_portal() -> None:
    assert_type(await_(load_user(1)), str)
    assert_type(has_portal(), bool)
    assert_type(await run_with_portal(validate, "ada", strict=True), bool)
    assert_type(await run_with_portal(load_user, 1), str)
    assert_type(SyncPortal(Flask(__name__)), SyncPortal)
    SyncPortal().init_app(Flask(__name__))

    # Arguments are checked against the function's parameters.
    await run_with_portal(validate, 1)  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue, reportArgumentType]
    await_(1)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


def legacy(view: cabc.Callable[..., str]) -> cabc.Callable[..., str]:
    return view


SyncView: t.TypeAlias = cabc.Callable[[int], str]
AsyncView: t.TypeAlias = cabc.Callable[[int], cabc.Coroutine[t.Any, t.Any, str]]


def check_adapt_decorator(sync_view: SyncView, async_view: AsyncView) -> None:
    adapted = adapt_decorator(legacy)
    assert_type(adapted, ViewDecorator)
    # A view keeps its type: an async view stays async.
    assert_type(adapted(async_view), AsyncView)
    assert_type(adapted(sync_view), SyncView)
    adapt_decorator(1)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
