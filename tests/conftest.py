from __future__ import annotations

import asyncio
import asyncio.base_events
import collections.abc as cabc
import contextvars
import gc
import typing as t

import flask.globals
import pytest
from flask import Flask
from flask import has_app_context
from flask import has_request_context
from flask.globals import app_ctx

pytest_plugins = ["pytester"]

#: Flask < 3.2 has a request context apart from the app context; since 3.2
#: it is one object, ``app_ctx``, and ``request_ctx`` is a deprecated alias.
_request_ctx: t.Any = vars(flask.globals).get("request_ctx")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Let ``pytest -m slow`` (``tox -e slow``) pass when no slow test is
    collected: the env must not fail before the slow tests exist, or where
    they all deselect themselves.
    """
    if (
        exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED
        and session.config.option.markexpr == "slow"
    ):
        session.exitstatus = pytest.ExitCode.OK


def _forget(ctx: object) -> None:
    """Unset the context variable holding ``ctx``: a context pushed in another
    ``contextvars.Context`` (a worker thread) and copied back here cannot be
    popped, only forgotten.
    """
    for var, value in contextvars.copy_context().items():
        if value is ctx:
            var.set(None)


@pytest.fixture(autouse=True)
def _leak_detector() -> cabc.Iterator[None]:
    """Fail a test that leaves an app or request context pushed (and pop it,
    so the next test starts clean), and turn "coroutine was never awaited"
    warnings into errors while the test still runs.
    """
    yield
    gc.collect(1)
    leaked = []

    # Bounded: a context pushed several times is popped once per push.
    for _ in range(100):
        if _request_ctx is not None and has_request_context():
            ctx = _request_ctx._get_current_object()
        elif has_app_context():
            ctx = app_ctx._get_current_object()
        else:
            break

        leaked.append(ctx)

        try:
            ctx.pop()
        except (ValueError, RuntimeError):
            _forget(ctx)

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
