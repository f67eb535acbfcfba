"""The apps and decorators the benchmarks measure.

Importable by ``gunicorn`` and ``uvicorn`` as ``apps:<name>`` with
``benchmarks/`` as the working directory.
"""

from __future__ import annotations

import asyncio
import collections.abc as cabc
import functools
import typing as t

from flask import current_app
from flask import Flask

from flask_asyncext import async_compatible_decorator
from flask_asyncext.shared_loop import SharedLoop

F = t.TypeVar("F", bound=cabc.Callable[..., t.Any])


# --- views -------------------------------------------------------------------


def sync_view() -> str:
    return "Hello, World!"


async def async_view() -> str:
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


@async_compatible_decorator
def toolkit_generator(
    view: t.Any, /, *args: t.Any, **kwargs: t.Any
) -> cabc.Generator[t.Any, t.Any, t.Any]:
    """Toolkit decorator with a generator body and a sync check."""
    if not (yield sync_check()):
        return "denied", 403
    return (yield view(*args, **kwargs))


@async_compatible_decorator
def toolkit_async_check(
    view: t.Any, /, *args: t.Any, **kwargs: t.Any
) -> cabc.Generator[t.Any, t.Any, t.Any]:
    """Toolkit decorator with a generator body awaiting an async check."""
    if not (yield async_check()):
        return "denied", 403
    return (yield view(*args, **kwargs))


def stack(decorator: cabc.Callable[[F], F], view: F, depth: int = 3) -> F:
    for _ in range(depth):
        view = decorator(view)
    return view


# --- apps ------------------------------------------------------------------------


def make_app(
    view: cabc.Callable[..., t.Any], *, shared: SharedLoop | None = None
) -> Flask:
    app = Flask(__name__)
    app.add_url_rule("/", view_func=view)
    if shared is not None:
        shared.init_app(app)
    return app


sync_app = make_app(sync_view)
async_app = make_app(async_view)
shared_app = make_app(async_view, shared=SharedLoop())


def _make_quart() -> t.Any:
    try:
        from quart import Quart
    except ImportError:  # only needed for the server comparison
        return None
    app = Quart(__name__)
    app.add_url_rule("/", view_func=async_view)
    return app


quart_app = _make_quart()
