"""View decorators that work on ``def`` and ``async def`` views alike."""

from __future__ import annotations

import collections.abc as cabc
import enum
import functools
import inspect
import types
import typing as t
import weakref

from flask import current_app

from .bridges import _COROUTINE
from .bridges import _GENERATOR
from .bridges import _must_await
from .bridges import _PLAIN_TYPES
from .bridges import _run_sync
from .bridges import _wraps_sync
from .bridges import ensure_async
from .bridges import ensure_sync
from .bridges import is_async_callable
from .bridges import maybe_await

if t.TYPE_CHECKING:
    from .typing import DecoratorBody
    from .typing import ViewDecorator
    from .typing import ViewHook

_Generator = cabc.Generator[t.Any, t.Any, t.Any]
_View = cabc.Callable[..., t.Any]


class _Kind(enum.Enum):
    """How the toolkit calls a body or a hook, decided once."""

    PLAIN = "plain"
    GENERATOR = "generator"
    ASYNC = "async"


def _describe(obj: object) -> str:
    name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None)
    return f"{obj!r}" if name is None else f"{name!r} ({obj!r})"


def _kind(obj: object, culprit: str, role: str) -> _Kind:
    """Tell how to call ``obj``, or raise :exc:`TypeError` naming ``culprit``
    (who was given it) and ``obj`` if it cannot be a ``role``.
    """
    if isinstance(obj, type):
        raise TypeError(
            f"{culprit} cannot use {_describe(obj)} as {role}: it is a class."
            " Pass a function, a method or another callable object instead"
            " (for a class-based view, decorate its methods or list the"
            " decorator in 'View.decorators')."
        )

    if not callable(obj):
        raise TypeError(
            f"{culprit} cannot use {_describe(obj)} as {role}: it is not callable."
        )

    func: t.Any = obj

    while isinstance(func, functools.partial):
        func = func.func

    if not inspect.isroutine(func):
        func = func.__call__

    if inspect.isasyncgenfunction(func):
        raise TypeError(
            f"{culprit} cannot use {_describe(obj)} as {role}: it is an async"
            " generator function, which Flask cannot call or stream. Return a"
            " value instead, or stream with a sync generator."
        )

    if inspect.isgeneratorfunction(func):
        return _Kind.GENERATOR

    if is_async_callable(obj):
        return _Kind.ASYNC

    return _Kind.PLAIN


#: The generators that sync views returned (streamed responses), so that a
#: body may yield them back: any other plain generator it yields is a
#: helper it meant to ``yield from``.
_streams: weakref.WeakSet[_Generator] = weakref.WeakSet()


def _recording_streams(view: _View) -> _View:
    """Wrap a sync view so that the streamed responses it returns are known
    to be the view's own.
    """

    @_wraps_sync(view)
    def call_view(*args: t.Any, **kwargs: t.Any) -> t.Any:
        rv = view(*args, **kwargs)

        if type(rv) is _GENERATOR:
            _streams.add(rv)

        return rv

    return call_view


def _refuse(value: t.Any, view: object, culprit: str, verb: str) -> None:
    """Raise :exc:`TypeError` if a body ``verb`` (yielded or returned)
    ``value`` by mistake: the view uncalled or (yielded) a generator helper
    that is not the view's streamed response. :func:`_must_await` refused
    async generator objects already.
    """
    cls = type(value)

    if value is view:
        raise TypeError(
            f"The decorator body {culprit!r} {verb} the view without calling"
            " it. Write 'yield view(*args, **kwargs)'."
        )

    if cls is _GENERATOR and verb == "yielded" and value not in _streams:
        gen = t.cast("types.GeneratorType[t.Any, t.Any, t.Any]", value)
        gen.close()
        name = gen.__name__
        raise TypeError(
            f"The decorator body {culprit!r} yielded the generator object of"
            f" {gen.__qualname__!r}: write 'yield from {name}()', not"
            f" 'yield {name}()'. A generator helper must be delegated to with"
            " 'yield from'; only the view's own streamed response may be"
            " yielded as a generator."
        )


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
                continue

            # Throw outside the except block, so that an exception the body
            # raises later is not chained to the one it handled.
            error: BaseException | None = None

            try:
                value = _settle_sync(item, view, culprit, "yielded")
            except BaseException as e:
                error, value = e, None

            item = send(value) if error is None else gen.throw(error)
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
            cls: type[object] = type(item)

            if cls in _PLAIN_TYPES:
                item = send(item)
                continue

            error: BaseException | None = None

            try:
                if cls is _COROUTINE:
                    value = await item

                    if type(value) not in _PLAIN_TYPES and _must_await(value):
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


def _wrap_async(
    body: t.Callable[..., t.Any],
    kind: _Kind,
    view: t.Callable[..., t.Any],
    culprit: str,
) -> t.Callable[..., t.Any]:
    if kind is _Kind.GENERATOR:

        @functools.wraps(view)
        async def drive_body(*args: t.Any, **kwargs: t.Any) -> t.Any:
            return await _drive_async(body(view, *args, **kwargs), view, culprit)

        return drive_body

    if kind is _Kind.ASYNC:

        @functools.wraps(view)
        async def await_body(*args: t.Any, **kwargs: t.Any) -> t.Any:
            rv = await body(view, *args, **kwargs)

            if type(rv) in _PLAIN_TYPES:
                return rv

            return await _settle_async(rv, view, culprit, "returned")

        return await_body

    @functools.wraps(view)
    async def call_body(*args: t.Any, **kwargs: t.Any) -> t.Any:
        rv = body(view, *args, **kwargs)

        if type(rv) in _PLAIN_TYPES:
            return rv

        return await _settle_async(rv, view, culprit, "returned")

    return call_body


def _wrap_sync(
    body: t.Callable[..., t.Any],
    kind: _Kind,
    view: t.Callable[..., t.Any],
    culprit: str,
) -> t.Callable[..., t.Any]:
    if kind is _Kind.GENERATOR:
        call_view = _recording_streams(view)

        @_wraps_sync(view)
        def drive_body(*args: t.Any, **kwargs: t.Any) -> t.Any:
            return _drive_sync(body(call_view, *args, **kwargs), call_view, culprit)

        return drive_body

    if kind is _Kind.ASYNC:
        # The sync view may bridge by itself (``View.as_view`` does), so it
        # runs in a worker thread, never inline on the body's event loop.
        call_body = ensure_sync(body)
        async_view = ensure_async(view, thread=True)

        @_wraps_sync(view)
        def bridge_body(*args: t.Any, **kwargs: t.Any) -> t.Any:
            rv = call_body(async_view, *args, **kwargs)

            if type(rv) not in _PLAIN_TYPES:
                _refuse(rv, async_view, culprit, "returned")

            return rv

        return bridge_body

    @_wraps_sync(view)
    def call_body_sync(*args: t.Any, **kwargs: t.Any) -> t.Any:
        rv = body(view, *args, **kwargs)

        if type(rv) in _PLAIN_TYPES:
            return rv

        return _settle_sync(rv, view, culprit, "returned")

    return call_body_sync


def _name_after(target: t.Any, source: object) -> None:
    while isinstance(source, functools.partial):
        source = source.func

    for name in ("__module__", "__name__", "__qualname__", "__doc__"):
        try:
            value = getattr(source, name)
        except AttributeError:
            continue

        setattr(target, name, value)


def async_compatible_decorator(body: DecoratorBody) -> ViewDecorator:
    """Turn one *body* into a view decorator that works on ``def`` and
    ``async def`` views alike.

    ``body(view, /, *args, **kwargs)`` receives the decorated view and the
    arguments of the call. It can be written three ways:

    -   A **generator function**. Each ``yield value`` hands ``value`` to the
        toolkit: an awaitable is awaited in the view's own event loop (async
        views) or run through the app's bridge (sync views), and its result
        is sent back; any other value is sent back as it is. So
        ``user = yield loader(user_id)`` works whether ``loader`` is sync or
        async, and ``return (yield view(*args, **kwargs))`` runs the view. An
        exception raised while resolving a value is thrown into the generator
        at that ``yield``. The value it returns is the response. Call a
        generator helper with ``yield from helper()``: a plain generator
        yielded is a :exc:`TypeError`, unless it is the streamed response of
        the view the body was handed.
    -   A **plain function**: its return value is the response (resolved the
        same way if it is awaitable).
    -   A **coroutine function**: used as it is for async views. For sync
        views it runs through the app's bridge, with the view made awaitable
        in a worker thread: one event loop per call, the slower choice.

    .. code-block:: python

        @async_compatible_decorator
        def login_required(view, /, *args, **kwargs):
            user = yield load_user(session.get("user_id"))

            if user is None:
                abort(401)

            g.user = user
            return (yield view(*args, **kwargs))

        @app.get("/profile")
        @login_required
        async def profile():
            return {"name": g.user.name}

    The decorator picks an ``async def`` wrapper for an async view and a
    ``def`` wrapper for a sync one, at decoration time, so the calling
    convention is kept (:func:`inspect.iscoroutinefunction` sees it on every
    Python) and so are the view's metadata and signature. A sync view behind
    a sync body runs without any event loop; an async view runs everything,
    however many of these decorators are stacked, in its own single loop.

    :param body: A generator function, a function or a coroutine function,
        or any callable of those kinds (a partial, an object with
        ``__call__``). Anything else is a :exc:`TypeError` here, as is a view
        that is not callable, a class or an async generator function when the
        decorator is applied.

    .. versionadded:: 0.1
    """
    kind = _kind(body, "async_compatible_decorator()", "a decorator body")
    culprit = getattr(body, "__name__", None) or repr(body)

    def decorator(view: t.Any, /) -> t.Any:
        _kind(view, culprit, "a view")

        if is_async_callable(view):
            return _wrap_async(body, kind, view, culprit)

        return _wrap_sync(body, kind, view, culprit)

    _name_after(decorator, body)
    return t.cast("ViewDecorator", decorator)


def _hook_body(
    hook: t.Callable[..., t.Any], culprit: str
) -> t.Callable[..., _Generator]:
    """Make a generator function that calls ``hook`` the way its kind asks,
    so that bodies can ``yield from`` it.
    """
    if _kind(hook, culprit, "a hook") is _Kind.GENERATOR:
        return hook

    def call_hook(*args: t.Any, **kwargs: t.Any) -> _Generator:
        return (yield hook(*args, **kwargs))

    return call_hook


def before_view(hook: ViewHook) -> ViewDecorator:
    """Make a view decorator that runs ``hook`` before the view.

    ``hook(*args, **kwargs)`` gets exactly the view's arguments (``self``
    included for a method). It can be sync, async, or a generator function
    driven like an :func:`async_compatible_decorator` body. If it returns
    anything but ``None`` (even ``""``), that is the response and the view is
    not called; it can also raise, for example with :func:`flask.abort`.

    .. code-block:: python

        @before_view
        async def admin_required(*args, **kwargs):
            if not await is_admin(g.user):
                abort(403)

    :param hook: A sync, async or generator callable.

    .. versionadded:: 0.1
    """
    run_hook = _hook_body(hook, "before_view()")

    def body(view: _View, /, *args: t.Any, **kwargs: t.Any) -> _Generator:
        rv = yield from run_hook(*args, **kwargs)

        if rv is not None:
            return rv

        return (yield view(*args, **kwargs))

    _name_after(body, hook)
    return async_compatible_decorator(body)


def after_view(hook: ViewHook) -> ViewDecorator:
    """Make a view decorator that runs ``hook`` on the view's response.

    The view's return value is made into a response object with
    :meth:`flask.Flask.make_response`, then ``hook(response)`` runs. It can
    be sync, async, or a generator function driven like an
    :func:`async_compatible_decorator` body. If it returns anything but
    ``None``, that is the response (any value Flask accepts from a view);
    ``None`` keeps the response it was given.

    .. code-block:: python

        @after_view
        def no_store(response):
            response.headers["Cache-Control"] = "no-store"

    :param hook: A sync, async or generator callable.

    .. versionadded:: 0.1
    """
    run_hook = _hook_body(hook, "after_view()")

    def body(view: _View, /, *args: t.Any, **kwargs: t.Any) -> _Generator:
        response = current_app.make_response((yield view(*args, **kwargs)))
        rv = yield from run_hook(response)
        return response if rv is None else rv

    _name_after(body, hook)
    return async_compatible_decorator(body)
