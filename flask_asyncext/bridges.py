"""Bridges between sync and async code.

Everything here decides *once* how to call something, from what it is, and
never hands a coroutine object back to code that expects a value.
"""

from __future__ import annotations

import asyncio
import collections.abc as cabc
import functools
import inspect
import types
import typing as t
import weakref

from flask import current_app
from flask import Flask
from flask import has_app_context
from flask import Response
from werkzeug.wrappers import Response as BaseResponse

from . import _quart
from . import portal as _portal
from ._compat import iscoroutinefunction

P = t.ParamSpec("P")
R = t.TypeVar("R")
T = t.TypeVar("T")

_ASYNC_EXTRA = "Install Flask with the 'async' extra in order to use async views."

#: Types that views and checks return all the time and that can never be
#: awaitable: a ``type()`` look-up spares them :func:`inspect.isawaitable`.
#: Generators are not among them: a generator-based coroutine
#: (:func:`types.coroutine`) is a generator that must be awaited.
_PLAIN_TYPES: frozenset[type] = frozenset(
    {
        type(None),
        bool,
        int,
        float,
        str,
        bytes,
        dict,
        list,
        tuple,
        Response,
        BaseResponse,
    }
)
_COROUTINE: type[t.Any] = types.CoroutineType
_GENERATOR: type[t.Any] = types.GeneratorType
_ASYNC_GENERATOR: type[t.Any] = types.AsyncGeneratorType
_MARKERS = ("_is_coroutine", "_is_coroutine_marker")


def _async_generator_error(value: t.Any) -> TypeError:
    name = getattr(value, "__qualname__", None) or repr(value)
    return TypeError(
        f"Got an async generator object from {name!r} where a value is"
        f" expected: {name!r} is an 'async def' with a 'yield' in it, so"
        " calling it runs nothing and its result cannot be awaited. Return"
        " the value instead of yielding it."
    )


#: The generators and async generators that views returned (streamed
#: responses), so that a body may yield them back and return them: any other
#: plain generator a body yields is a helper it meant to ``yield from``, and
#: any other async generator object a mistake.
_streams: weakref.WeakSet[t.Any] = weakref.WeakSet()


def _must_await(value: object) -> bool:
    """Whether ``value``, which is not of a plain type, must be awaited.

    An async generator object is never a value (:exc:`TypeError`), unless a
    view returned it: its streamed response on Quart.
    """
    cls = type(value)

    if cls is _COROUTINE:
        return True

    if cls is _ASYNC_GENERATOR:
        if value in _streams:
            return False

        raise _async_generator_error(value)

    return inspect.isawaitable(value)


def is_async_callable(
    obj: object,
) -> t.TypeGuard[cabc.Callable[..., cabc.Awaitable[t.Any]]]:
    """Tell whether calling ``obj`` returns an awaitable, the way the toolkit
    decides between an ``async def`` and a ``def`` wrapper.

    True for coroutine functions, (nested) :class:`functools.partial` objects
    of them, bound methods, objects whose ``__call__`` is async, and callables
    marked with :func:`inspect.markcoroutinefunction` or asgiref's
    ``markcoroutinefunction``, on every supported Python. Classes are never
    async callables: calling one makes an instance.

    .. code-block:: python

        class Checker:
            async def __call__(self, user): ...

        is_async_callable(Checker())  # True
        is_async_callable(functools.partial(Checker()))  # True

    :param obj: Any object.

    .. versionadded:: 0.1
    """
    while isinstance(obj, functools.partial):
        obj = obj.func

    if iscoroutinefunction(obj):
        return True

    if isinstance(obj, type) or inspect.isroutine(obj) or not callable(obj):
        return False

    return iscoroutinefunction(obj.__call__)


@t.overload
async def maybe_await(value: cabc.Awaitable[T]) -> T: ...
@t.overload
async def maybe_await(value: cabc.Awaitable[T] | T) -> T: ...
async def maybe_await(value: object) -> t.Any:
    """Await ``value`` if it is awaitable, else return it as it is.

    Use it in async code that calls something which may be sync or async:

    .. code-block:: python

        user = await maybe_await(user_loader(user_id))

    Whatever is awaitable is awaited, until a value that is not is left: a
    coroutine, a generator-based coroutine (:func:`types.coroutine`), any
    object with ``__await__``, and an awaitable that gives another one. An
    async generator object (an ``async def`` with a stray ``yield``) is never
    a value: :exc:`TypeError`, unless a view of a toolkit decorator returned
    it (a streamed response on Quart). A plain generator (a streamed
    response) is returned as it is.

    Plain values take a fast path: their type is looked up once instead of
    calling :func:`inspect.isawaitable`.

    :param value: The result of a call that may or may not be async.

    .. versionadded:: 0.1
    """
    while type(value) not in _PLAIN_TYPES and _must_await(value):
        value = await t.cast("cabc.Awaitable[t.Any]", value)

    return value


def _import_async_to_sync() -> t.Callable[..., t.Any]:
    try:
        from asgiref.sync import async_to_sync
    except ImportError:
        raise RuntimeError(_ASYNC_EXTRA) from None

    return async_to_sync


def _app_bridge_decides() -> bool:
    """Whether the active app runs coroutines with a bridge of its own (an
    ``async_to_sync`` override, such as
    :class:`~flask_asyncext.shared_loop.SharedLoop` or Flask's gevent
    recipe), which then decides by itself whether it can wait here. Under
    gevent every greenlet of a thread sees the loop that one of them runs,
    which only the app's bridge can tell apart.
    """
    if not has_app_context():
        return False

    # The proxy forwards __dict__ and __class__ to the app.
    return "async_to_sync" in current_app.__dict__ or (
        current_app.__class__.async_to_sync is not Flask.async_to_sync
    )


def _refuse_in_loop(culprit: object) -> None:
    if (
        asyncio.events._get_running_loop() is not None
        and not _portal.has_portal()
        and not _app_bridge_decides()
    ):
        raise RuntimeError(
            f"Cannot wait for {culprit!r} synchronously: this thread is running an"
            " event loop, which would deadlock. In async code, await the result"
            " instead, for example 'await flask_asyncext.maybe_await(value)'. For"
            " sync code called from an async view, see"
            " flask_asyncext.portal.SyncPortal."
        )


def _discard(awaitable: object) -> None:
    """Close a coroutine that will never run, so that it does not warn that
    it was never awaited.
    """
    cls = type(awaitable)

    if cls is _COROUTINE:
        coroutine = t.cast("cabc.Coroutine[t.Any, t.Any, t.Any]", awaitable)

        if inspect.getcoroutinestate(coroutine) == inspect.CORO_CREATED:
            coroutine.close()
    elif cls is _GENERATOR:
        generator = t.cast("cabc.Generator[t.Any, t.Any, t.Any]", awaitable)

        if inspect.getgeneratorstate(generator) == inspect.GEN_CREATED:
            generator.close()


def _bridge(func: cabc.Callable[[], cabc.Coroutine[t.Any, t.Any, T]]) -> T:
    """Run a coroutine function with no arguments to completion from sync
    code, through the app's own bridge when an app context is active, or
    through the portal that runs this code (no bridge can run there).
    """
    if _portal.has_portal():
        return _portal.await_(func())

    if has_app_context():
        return current_app.ensure_sync(func)()  # type: ignore[no-any-return]

    # --- Quart: from its worker thread, back onto its own loop ---
    quart_loop = _quart.app_loop()

    if quart_loop is not None:
        return _quart.run_on_app_loop(quart_loop, func)
    # --- end Quart ---

    return _import_async_to_sync()(func)()  # type: ignore[no-any-return]


def _run_sync(awaitable: cabc.Awaitable[T], culprit: object = None) -> T:
    """Resolve ``awaitable`` from sync code.

    The awaitable is wrapped in a small coroutine function that is run with
    ``current_app.ensure_sync`` when an app context is active, so an app that
    overrides ``ensure_sync`` or ``async_to_sync`` is honoured, else with
    asgiref's ``async_to_sync``. If it cannot be run (no asgiref, or this
    thread runs an event loop), it is closed and the error is raised.

    :param awaitable: What to resolve.
    :param culprit: What to name in the error raised from inside an event
        loop. Defaults to ``awaitable``.
    """

    async def resolve() -> T:
        return await maybe_await(awaitable)

    try:
        _refuse_in_loop(awaitable if culprit is None else culprit)
        return _bridge(resolve)
    except BaseException:
        _discard(awaitable)
        raise


def _resolve_sync(value: t.Any, culprit: object) -> t.Any:
    """Resolve from sync code what a call gave where a value is expected."""
    if type(value) in _PLAIN_TYPES or not _must_await(value):
        return value

    return _run_sync(value, culprit)


def _wraps_sync(
    wrapped: t.Callable[..., t.Any],
) -> t.Callable[[t.Callable[P, R]], t.Callable[P, R]]:
    """:func:`functools.wraps` for a ``def`` wrapper: the coroutine markers
    that ``__dict__`` may carry are not copied, or the sync wrapper would be
    taken for an async one.
    """

    def decorate(wrapper: t.Callable[P, R]) -> t.Callable[P, R]:
        functools.update_wrapper(wrapper, wrapped)

        for name in _MARKERS:
            wrapper.__dict__.pop(name, None)

        return wrapper

    return decorate


@t.overload
def ensure_sync(func: cabc.Callable[P, cabc.Awaitable[R]]) -> cabc.Callable[P, R]: ...
@t.overload
def ensure_sync(func: cabc.Callable[P, R]) -> cabc.Callable[P, R]: ...
def ensure_sync(func: cabc.Callable[P, t.Any]) -> cabc.Callable[P, t.Any]:
    """Return a sync callable that calls ``func`` and waits for its result.

    Like :meth:`flask.Flask.ensure_sync`, but it sees every kind of async
    callable that :func:`is_async_callable` sees, works outside an app
    context (with asgiref), and never hands back an awaitable: a sync-looking
    callable that returns one has its result resolved too, and awaitables
    are awaited until a value that is not is left, as
    :func:`maybe_await` does (an async generator object is a
    :exc:`TypeError`).

    .. code-block:: python

        user = ensure_sync(user_loader)(user_id)

    With an app context active the app's own bridge runs the coroutine, so
    an app that overrides :meth:`~flask.Flask.ensure_sync` or
    :meth:`~flask.Flask.async_to_sync` is honoured.

    Waiting from a thread that is running an event loop would deadlock, so
    calling the result there raises :exc:`RuntimeError` before anything is
    started; use ``await maybe_await(func(...))`` in async code. A sync
    callable that returns a plain value works there too.

    :param func: A sync or async callable.

    .. versionadded:: 0.1
    """
    _quart.install()  # Quart: note its loop, for the worker threads.

    if is_async_callable(func):

        @_wraps_sync(func)
        def call_async(*args: P.args, **kwargs: P.kwargs) -> t.Any:
            _refuse_in_loop(func)

            async def resolve() -> t.Any:
                return await maybe_await(await func(*args, **kwargs))

            return _bridge(resolve)

        return call_async

    @_wraps_sync(func)
    def call_sync(*args: P.args, **kwargs: P.kwargs) -> t.Any:
        return _resolve_sync(func(*args, **kwargs), func)

    return call_sync


@t.overload
def ensure_async(
    func: cabc.Callable[P, cabc.Awaitable[R]], *, thread: bool = False
) -> cabc.Callable[P, cabc.Coroutine[t.Any, t.Any, R]]: ...
@t.overload
def ensure_async(
    func: cabc.Callable[P, R], *, thread: bool = False
) -> cabc.Callable[P, cabc.Coroutine[t.Any, t.Any, R]]: ...
def ensure_async(
    func: cabc.Callable[P, t.Any], *, thread: bool = False
) -> cabc.Callable[P, cabc.Coroutine[t.Any, t.Any, t.Any]]:
    """Return a coroutine function that calls ``func`` and awaits its result
    if there is anything to await.

    The result is always a real ``async def`` that
    :func:`inspect.iscoroutinefunction` recognises on every Python: a
    coroutine function is returned as it is, and any other async callable (a
    partial, an object with an async ``__call__``, a marked function) is
    wrapped, and what the wrapper gives is resolved as :func:`maybe_await`
    resolves it. Awaiting a coroutine function returned as it is gives
    exactly what it returns.

    .. code-block:: python

        user = await ensure_async(user_loader)(user_id)

    A sync callable is called inline, on the event loop's thread, by default.
    Sync code that blocks (database or network I/O) would hold up everything
    else on the loop: pass ``thread=True`` to run it off the loop with
    asgiref's ``sync_to_async``, which keeps Flask's contexts and context
    variables visible there. Under Flask's default bridge it runs in the
    request's own thread, which is waiting for the loop anyway; on a loop
    that asgiref did not start (:class:`~flask_asyncext.shared_loop.SharedLoop`)
    it runs in the loop's thread pool, so requests never queue behind each
    other.

    :param func: A sync or async callable.
    :param thread: Run a sync ``func`` in a worker thread. Requires asgiref
        (the ``async`` extra); without it, :exc:`RuntimeError` is raised here.

    .. versionadded:: 0.1
    """
    if inspect.iscoroutinefunction(func):
        return func

    if is_async_callable(func):

        @functools.wraps(func)
        async def await_call(*args: P.args, **kwargs: P.kwargs) -> t.Any:
            return await maybe_await(func(*args, **kwargs))

        return await_call

    if not thread:

        @functools.wraps(func)
        async def call_inline(*args: P.args, **kwargs: P.kwargs) -> t.Any:
            rv = func(*args, **kwargs)
            return rv if type(rv) in _PLAIN_TYPES else await maybe_await(rv)

        return call_inline

    try:
        from asgiref.sync import AsyncToSync
        from asgiref.sync import sync_to_async
    except ImportError:
        raise RuntimeError(_ASYNC_EXTRA) from None

    # Under asgiref's async_to_sync (Flask's default bridge) the thread that
    # waits for the loop runs thread-sensitive work: no new thread, and the
    # same thread as the request. On any other loop (a shared one), the
    # thread-sensitive path would queue every request on asgiref's single
    # global thread, so the loop's thread pool is used instead.
    # ``loop_thread_executors`` is private to asgiref: its meaning (keys are
    # the loops its async_to_sync runs) is pinned by a test. Were it gone,
    # every call would take the pool, which is correct, only slower.
    in_waiting_thread = sync_to_async(func, thread_sensitive=True)
    in_pool = sync_to_async(func, thread_sensitive=False)
    started_by_asgiref: cabc.Container[object] = getattr(
        AsyncToSync, "loop_thread_executors", ()
    )

    @functools.wraps(func)
    async def call_in_thread(*args: P.args, **kwargs: P.kwargs) -> t.Any:
        # --- Quart: in the worker thread that waits for this coroutine ---
        if (quart_waiter := _quart.waiting_thread()) is not None:
            rv = await quart_waiter.run(func, *args, **kwargs)
        # --- end Quart ---
        elif asyncio.get_running_loop() in started_by_asgiref:
            rv = await in_waiting_thread(*args, **kwargs)
        else:
            rv = await in_pool(*args, **kwargs)

        return rv if type(rv) in _PLAIN_TYPES else await maybe_await(rv)

    return call_in_thread
