"""The apps and decorators the benchmarks measure.

The servers import their app as ``apps:<name>`` with ``benchmarks/`` on the
path; each name in :data:`SERVER_APPS` is built on first access (module
``__getattr__``), in the worker process that serves it, so that importing
this module starts no event loop and no thread (the gevent worker patches
the standard library before it loads the app).
"""

from __future__ import annotations

import asyncio
import collections.abc as cabc
import functools
import threading
import time
import types
import typing as t

from flask import current_app
from flask import Flask

from flask_asyncext import async_compatible_decorator
from flask_asyncext.shared_loop import SharedLoop

F = t.TypeVar("F", bound=cabc.Callable[..., t.Any])
R = t.TypeVar("R")

#: How long the I/O-bound views sleep, in seconds.
SLEEP = 0.010


# --- views -------------------------------------------------------------------


def sync_view() -> str:
    return "Hello, World!"


async def async_view() -> str:
    return "Hello, World!"


def sync_sleep_view() -> str:
    time.sleep(SLEEP)
    return "Hello, World!"


async def async_sleep_view() -> str:
    await asyncio.sleep(SLEEP)
    return "Hello, World!"


# --- checks, as an extension's user would write them -------------------------


def sync_check() -> bool:
    return True


async def async_check() -> bool:
    await asyncio.sleep(0)  # a real suspension, like awaiting a client
    return True


# --- decorators ----------------------------------------------------------------


def handwritten_sync(func: F) -> F:
    """A plain ``functools.wraps`` decorator, as written today for sync views."""

    @functools.wraps(func)
    def wrapper(*args: t.Any, **kwargs: t.Any) -> t.Any:
        if not sync_check():
            return "denied", 403
        return func(*args, **kwargs)

    return t.cast(F, wrapper)


def handwritten_async(func: F) -> F:
    """A hand-written ``async def`` wrapper awaiting an async check."""

    @functools.wraps(func)
    async def wrapper(*args: t.Any, **kwargs: t.Any) -> t.Any:
        if not await async_check():
            return "denied", 403
        return await func(*args, **kwargs)

    return t.cast(F, wrapper)


def handwritten_async_passthrough(func: F) -> F:
    """A hand-written ``async def`` wrapper with sync logic (per-call floor)."""

    @functools.wraps(func)
    async def wrapper(*args: t.Any, **kwargs: t.Any) -> t.Any:
        if not sync_check():
            return "denied", 403
        return await func(*args, **kwargs)

    return t.cast(F, wrapper)


def ensure_sync_way(func: F) -> F:
    """The usual recipe: a sync wrapper that bridges the check and the view."""

    @functools.wraps(func)
    def wrapper(*args: t.Any, **kwargs: t.Any) -> t.Any:
        if not current_app.ensure_sync(async_check)():
            return "denied", 403
        return current_app.ensure_sync(func)(*args, **kwargs)

    return t.cast(F, wrapper)


@async_compatible_decorator
def toolkit_plain(view: t.Any, /, *args: t.Any, **kwargs: t.Any) -> t.Any:
    """Toolkit decorator with a plain body and a sync check."""
    if not sync_check():
        return "denied", 403
    return view(*args, **kwargs)


def check_then_view(
    view: t.Any, /, *args: t.Any, **kwargs: t.Any
) -> cabc.Generator[t.Any, t.Any, t.Any]:
    """A generator body with a sync check: what :data:`toolkit_generator`
    and the minimal drivers run.
    """
    if not (yield sync_check()):
        return "denied", 403
    return (yield view(*args, **kwargs))


#: Toolkit decorator with a generator body and a sync check.
toolkit_generator = async_compatible_decorator(check_then_view)


@async_compatible_decorator
def toolkit_async_check(
    view: t.Any, /, *args: t.Any, **kwargs: t.Any
) -> cabc.Generator[t.Any, t.Any, t.Any]:
    """Toolkit decorator with a generator body awaiting an async check."""
    if not (yield async_check()):
        return "denied", 403
    return (yield view(*args, **kwargs))


def minimal_driver(func: F) -> F:
    """A minimal driver of a generator body: :func:`check_then_view`
    created and run to its end with ``send``, its :exc:`StopIteration`
    caught, nothing checked between the steps.
    """

    @functools.wraps(func)
    def wrapper(*args: t.Any, **kwargs: t.Any) -> t.Any:
        gen = check_then_view(func, *args, **kwargs)
        send = gen.send
        try:
            item = send(None)
            while True:
                item = send(item)
        except StopIteration as stop:
            return stop.value

    return t.cast(F, wrapper)


def async_minimal_driver(func: F) -> F:
    """:func:`minimal_driver` for an async view: the coroutines the body
    yields are awaited, and nothing else is checked.
    """
    coroutine = types.CoroutineType

    @functools.wraps(func)
    async def wrapper(*args: t.Any, **kwargs: t.Any) -> t.Any:
        gen = check_then_view(func, *args, **kwargs)
        send = gen.send
        try:
            item = send(None)
            while True:
                item = send(await item if type(item) is coroutine else item)
        except StopIteration as stop:
            return stop.value

    return t.cast(F, wrapper)


def stack(decorator: cabc.Callable[[F], F], view: F, depth: int = 3) -> F:
    for _ in range(depth):
        view = decorator(view)
    return view


# --- bridges -----------------------------------------------------------------------


class ThreadLocalLoop:
    """The baseline for the shared loop: one event loop per request thread,
    kept for the thread's lifetime, run by that thread. No hand-off between
    threads, but one loop per thread (loop-bound clients still break when a
    request lands on another thread).
    """

    def __init__(self) -> None:
        self._local = threading.local()
        self._loops: list[asyncio.AbstractEventLoop] = []
        self._lock = threading.Lock()

    def init_app(self, app: Flask) -> None:
        app.async_to_sync = self.async_to_sync  # type: ignore[method-assign]

    def async_to_sync(
        self, func: cabc.Callable[..., cabc.Awaitable[R]]
    ) -> cabc.Callable[..., R]:
        def run(*args: t.Any, **kwargs: t.Any) -> R:
            loop = getattr(self._local, "loop", None)
            if loop is None:
                loop = self._local.loop = asyncio.new_event_loop()
                with self._lock:
                    self._loops.append(loop)
            return loop.run_until_complete(func(*args, **kwargs))

        return run

    def close(self) -> None:
        with self._lock:
            for loop in self._loops:
                loop.close()
            self._loops.clear()


# --- apps ------------------------------------------------------------------------


def make_app(
    view: cabc.Callable[..., t.Any],
    *,
    shared: SharedLoop | ThreadLocalLoop | None = None,
) -> Flask:
    app = Flask(__name__)
    app.add_url_rule("/", view_func=view)
    if shared is not None:
        shared.init_app(app)
    return app


def make_quart(view: cabc.Callable[..., t.Any]) -> t.Any:
    from quart import Quart

    app = Quart(__name__)
    app.add_url_rule("/", view_func=view)
    return app


#: The apps the servers load, built on first access.
SERVER_APPS: dict[str, cabc.Callable[[], t.Any]] = {
    "sync_app": lambda: make_app(sync_view),
    "async_app": lambda: make_app(async_view),
    "shared_app": lambda: make_app(async_view, shared=SharedLoop()),
    "quart_app": lambda: make_quart(async_view),
    "sync_sleep_app": lambda: make_app(sync_sleep_view),
    "async_sleep_app": lambda: make_app(async_sleep_view),
    "shared_sleep_app": lambda: make_app(async_sleep_view, shared=SharedLoop()),
    "quart_sleep_app": lambda: make_quart(async_sleep_view),
}

_built: dict[str, t.Any] = {}


def __getattr__(name: str) -> t.Any:
    try:
        factory = SERVER_APPS[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    if name not in _built:
        _built[name] = factory()
    return _built[name]
