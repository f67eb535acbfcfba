from __future__ import annotations

import asyncio
import asyncio.base_events
import collections.abc as cabc
import gc
import typing as t

import pytest
from flask import Flask
from flask.globals import _cv_app
from flask.globals import _cv_request
from flask.globals import app_ctx
from flask.globals import request_ctx

pytest_plugins = ["pytester"]


@pytest.fixture(autouse=True)
def _leak_detector() -> cabc.Iterator[None]:
    """Fail a test that leaves an app or request context pushed (and pop it,
    so the next test starts clean), and turn "coroutine was never awaited"
    warnings into errors while the test still runs.
    """
    yield
    gc.collect(1)
    leaked = []

    for proxy, var in ((request_ctx, _cv_request), (app_ctx, _cv_app)):
        while var.get(None) is not None:
            leaked.append(proxy._get_current_object())

            try:
                proxy.pop()
            except ValueError:
                # Pushed in another contextvars.Context (a worker thread) and
                # copied back here: it cannot be popped, only forgotten.
                var.set(None)  # type: ignore[arg-type]

    assert leaked == [], "contexts were leaked"


@pytest.fixture
def app() -> Flask:
    app = Flask(__name__)
    app.config.update(TESTING=True, SECRET_KEY="test")
    return app


class LoopCounter:
    """Counts the event loops created while it is active."""

    def __init__(self) -> None:
        self.created = 0


@pytest.fixture
def loops(monkeypatch: pytest.MonkeyPatch) -> LoopCounter:
    """Count every event loop created during the test (every asyncio loop
    class derives from ``BaseEventLoop``).
    """
    counter = LoopCounter()
    original = asyncio.base_events.BaseEventLoop.__init__

    def counting_init(self: t.Any, *args: t.Any, **kwargs: t.Any) -> None:
        counter.created += 1
        original(self, *args, **kwargs)

    monkeypatch.setattr(asyncio.base_events.BaseEventLoop, "__init__", counting_init)
    return counter


# --- shared loop switch ---
# ASYNCEXT_SHARED_LOOP=1 in the environment (tox -e shared-loop) makes every
# Flask app the test suite builds run its async calls on one shared event loop:
# Flask.async_to_sync is replaced class-wide, in this test process only.


def _install_shared_loop() -> t.Any:
    import os

    if os.environ.get("ASYNCEXT_SHARED_LOOP", "0") in ("", "0"):
        return None

    from flask_asyncext.shared_loop import SharedLoop

    runner = SharedLoop()
    # Start it now, so that tests counting the loops they create see none.
    runner.loop  # noqa: B018

    def async_to_sync(self: Flask, func: t.Any) -> t.Any:
        return runner.async_to_sync(func)

    Flask.async_to_sync = async_to_sync  # type: ignore[method-assign]
    return runner


_shared_loop = _install_shared_loop()


@pytest.fixture
def asyncext_shared_loop() -> t.Any:
    """The ``SharedLoop`` every app uses when the switch is on, else ``None``
    (for tests that assert what Flask's default bridge does).
    """
    return _shared_loop


# --- shared loop switch ---
