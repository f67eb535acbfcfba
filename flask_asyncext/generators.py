"""Generator helpers: how the toolkit drives a decorator body, and how an
extension runs a generator helper of its own outside one.
"""

from __future__ import annotations

import collections.abc as cabc
import types
import typing as t

from .bridges import _ASYNC_GENERATOR
from .bridges import _COROUTINE
from .bridges import _GENERATOR
from .bridges import _must_await
from .bridges import _PLAIN_TYPES
from .bridges import _run_sync
from .bridges import _streams
from .bridges import maybe_await
from .bridges import R

_Generator = cabc.Generator[t.Any, t.Any, t.Any]


def _refuse(value: object, view: object, culprit: str, verb: str) -> None:
    """Raise :exc:`TypeError` if a body ``verb`` (yielded or returned)
    ``value`` by mistake: the view uncalled or (yielded) a generator helper
    that is not the view's streamed response. :func:`_must_await` refused
    async generator objects already.
    """
    cls = type(value)

    if value is view:
        raise TypeError(
            f"{culprit} {verb} the view without calling it. Write"
            " 'yield view(*args, **kwargs)'."
        )

    if cls is _GENERATOR and verb == "yielded" and value not in _streams:
        gen = t.cast("types.GeneratorType[t.Any, t.Any, t.Any]", value)
        gen.close()
        name = gen.__name__
        raise TypeError(
            f"{culprit} yielded the generator object of"
            f" {gen.__qualname__!r}: write 'yield from {name}()', not"
            f" 'yield {name}()'. A generator helper must be delegated to with"
            " 'yield from'; only the view's own streamed response may be"
            " yielded as a generator."
        )


def _must_await_result(value: object, awaited: object, view: object) -> bool:
    """:func:`_must_await` for what awaiting ``awaited`` gave, where an async
    generator object that the coroutine of ``view`` itself returned is the
    view's streamed response (Quart): remembered as one, and not awaited.
    """
    if type(value) is _ASYNC_GENERATOR and _remember_stream(value, awaited, view):
        return False

    return _must_await(value)


def _remember_stream(value: object, awaited: t.Any, view: object) -> bool:
    """Remember ``value`` as a streamed response if awaiting the coroutine
    ``awaited``, a call of ``view`` (a function, or an instance with an
    ``async def __call__``), gave it; say whether it did.
    """
    code = awaited.cr_code
    # The method itself, not whether the object is callable.
    call = getattr(type(view), "__call__", None)  # noqa: B004

    if code is getattr(view, "__code__", None) or code is getattr(
        call, "__code__", None
    ):
        _streams.add(value)
        return True

    return False


def _settle_sync(item: t.Any, view: object, culprit: str, verb: str) -> t.Any:
    """Resolve, from a ``def`` wrapper, what a body yielded or returned."""
    if _must_await(item):
        return _run_sync(item)

    _refuse(item, view, culprit, verb)
    return item


async def _settle_async(item: t.Any, view: object, culprit: str, verb: str) -> t.Any:
    """Resolve, in an ``async def`` wrapper, what a body yielded or returned."""
    if _must_await(item):
        return await maybe_await(item)

    _refuse(item, view, culprit, verb)
    return item


def _step_sync(gen: _Generator, item: t.Any, view: object, culprit: str) -> t.Any:
    """Resolve from a ``def`` wrapper an item the body yielded that is not of
    a plain type, send the result (or throw the error) into the body, and
    return what it yields next.
    """
    # Throw outside the except block, so that an exception the body raises
    # later is not chained to the one it handled.
    error: BaseException | None = None

    try:
        value = _settle_sync(item, view, culprit, "yielded")
    except BaseException as e:
        error, value = e, None

    return gen.send(value) if error is None else gen.throw(error)


def _drive_sync(gen: _Generator, view: object, culprit: str) -> t.Any:
    """Run a body's generator from a ``def`` wrapper: awaitables it yields
    are resolved through the app's bridge, anything else is sent back.
    """
    send = gen.send

    try:
        item = send(None)

        while True:
            if type(item) in _PLAIN_TYPES:
                item = send(item)
            else:
                item = _step_sync(gen, item, view, culprit)
    except StopIteration as stop:
        rv = stop.value

    if type(rv) in _PLAIN_TYPES:
        return rv

    return _settle_sync(rv, view, culprit, "returned")


async def _drive_async(gen: _Generator, view: object, culprit: str) -> t.Any:
    """Run a body's generator from an ``async def`` wrapper: awaitables it
    yields are awaited in the running loop, anything else is sent back.
    """
    send = gen.send

    try:
        item = send(None)

        while True:
            cls = type(item)  # pyright: ignore[reportUnknownVariableType]

            if cls in _PLAIN_TYPES:
                item = send(item)
                continue

            error: BaseException | None = None

            try:
                if cls is _COROUTINE:
                    value = await item

                    if type(value) not in _PLAIN_TYPES and _must_await_result(
                        value, item, view
                    ):
                        value = await maybe_await(value)
                else:
                    value = await _settle_async(item, view, culprit, "yielded")
            except BaseException as e:
                error, value = e, None

            item = send(value) if error is None else gen.throw(error)
    except StopIteration as stop:
        rv = stop.value

    if type(rv) in _PLAIN_TYPES:
        return rv

    return await _settle_async(rv, view, culprit, "returned")


_NO_VIEW = object()


def _check_generator(helper: object, name: str) -> str:
    if type(helper) is not _GENERATOR:
        hint = ""

        if callable(helper):
            hint = f" Call the helper first: '{name}(helper(...))'."

        raise TypeError(f"{name}() needs a generator object, got {helper!r}.{hint}")

    gen = t.cast("types.GeneratorType[t.Any, t.Any, t.Any]", helper)
    return f"The generator {gen.__qualname__!r}"


def drive_sync(helper: cabc.Generator[t.Any, t.Any, R]) -> R:
    """Run a generator helper to its end from sync code, the way a decorator
    body on a sync view is run, and return what it returns.

    Each awaitable the helper yields is resolved through the app's bridge
    (:meth:`flask.Flask.ensure_sync` with an app context, else asgiref), and
    its result sent back; anything else is sent back as it is. The same
    rules as for bodies apply: nested awaitables are resolved, an async
    generator object or a generator helper yielded instead of
    ``yield from``-ed is a :exc:`TypeError`.

    Use it to call, from a request hook, a CLI command or a ``LocalProxy``,
    the helpers a decorator body calls with ``yield from``:

    .. code-block:: python

        @app.before_request
        def load_current_user():
            g.user = drive_sync(login_manager.load_user())

    Like :func:`~flask_asyncext.ensure_sync`, waiting for an awaitable from a
    thread that is running an event loop raises :exc:`RuntimeError`; use
    :func:`drive_async` in async code.

    :param helper: A generator object: the helper, called.

    .. versionadded:: 0.1
    """
    return _drive_sync(helper, _NO_VIEW, _check_generator(helper, "drive_sync"))  # type: ignore[no-any-return]


async def drive_async(helper: cabc.Generator[t.Any, t.Any, R]) -> R:
    """Run a generator helper to its end in async code, the way a decorator
    body on an async view is run, and return what it returns.

    Each awaitable the helper yields is awaited in the running loop, and its
    result sent back; anything else is sent back as it is, with the same
    rules as :func:`drive_sync`.

    .. code-block:: python

        @app.before_request
        async def load_current_user():
            g.user = await drive_async(login_manager.load_user())

    :param helper: A generator object: the helper, called.

    .. versionadded:: 0.1
    """
    culprit = _check_generator(helper, "drive_async")
    return await _drive_async(helper, _NO_VIEW, culprit)  # type: ignore[no-any-return]
