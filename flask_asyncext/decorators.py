"""View decorators that work on ``def`` and ``async def`` views alike."""

from __future__ import annotations

import collections.abc as cabc
import enum
import functools
import inspect
import sys
import typing as t

from . import _quart
from ._signatures import check_arguments
from ._signatures import signature_of
from .bridges import _ASYNC_GENERATOR
from .bridges import _COROUTINE
from .bridges import _GENERATOR
from .bridges import _PLAIN_TYPES
from .bridges import _streams
from .bridges import _wraps_sync
from .bridges import ensure_async
from .bridges import ensure_sync
from .bridges import is_async_callable
from .bridges import maybe_await
from .generators import _must_await_result
from .generators import _refuse
from .generators import _remember_stream
from .generators import _settle_async
from .generators import _settle_sync
from .generators import _step_sync

if t.TYPE_CHECKING:
    from .typing import AfterViewHook
    from .typing import BeforeViewHook
    from .typing import DecoratorBody
    from .typing import ViewDecorator

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


#: What :func:`_delegate` yields once the body has returned; the next value
#: it yields is what the body returned. Its type is not a plain one, so the
#: drivers' hot path (a ``type()`` test) never mistakes it for a value.
_RETURNED = object()

#: Whether the drivers run a body inside :func:`_delegate`. Only from Python
#: 3.13, which drops a generator suspended outside any ``try`` without
#: throwing :exc:`GeneratorExit` into it: before, that throw costs more than
#: the :exc:`StopIteration` it saves (per call, sync body: up to 9% more on
#: 3.10 and 3.11, 13% more on 3.12, 15% less on 3.13).
_DELEGATE = sys.version_info >= (3, 13)


def _delegate(gen: _Generator) -> _Generator:
    """Run a body's generator inside this one, which hands its return value
    on by yielding it after :data:`_RETURNED` instead of raising
    :exc:`StopIteration`: ``yield from`` takes the body's return without an
    exception, and from Python 3.13 a generator left suspended outside any
    ``try`` is dropped cheaply, where raising and catching an exception is
    the largest single cost of a call through a generator body. Values sent
    and exceptions thrown in are passed on to the body as ``yield from``
    does.
    """
    rv = yield from gen
    yield _RETURNED
    yield rv


def _recording_streams(view: _View) -> _View:
    """Wrap a sync view so that the streamed responses it returns are known
    to be the view's own.
    """

    generator = _GENERATOR
    async_generator = _ASYNC_GENERATOR
    remember = _streams.add

    @_wraps_sync(view)
    def call_view(*args: t.Any, **kwargs: t.Any) -> t.Any:
        rv: t.Any = view(*args, **kwargs) if kwargs else view(*args)
        cls = type(rv)  # pyright: ignore[reportUnknownVariableType]

        if cls is generator or cls is async_generator:
            remember(rv)

        return rv

    return call_view


def _recording_async_streams(view: _View) -> _View:
    """Wrap an async view so that the streamed responses it returns (async
    generators, on Quart) are known to be the view's own, where a body
    awaits the view itself. Only where Quart is imported: Flask has no
    async generator responses.
    """
    if "quart" not in sys.modules:
        return view

    async_generator = _ASYNC_GENERATOR
    remember = _streams.add

    @functools.wraps(view)
    async def call_view(*args: t.Any, **kwargs: t.Any) -> t.Any:
        rv: t.Any = await view(*args, **kwargs)

        if type(rv) is async_generator:
            remember(rv)

        return rv

    return call_view


def _wrap_async(
    body: t.Callable[..., t.Any],
    kind: _Kind,
    view: t.Callable[..., t.Any],
    culprit: str,
) -> t.Callable[..., t.Any]:
    if kind is _Kind.GENERATOR:
        plain = _PLAIN_TYPES
        returned = _RETURNED
        delegate = _DELEGATE
        bound = functools.partial(body, view)

        # The driver of ``generators._drive_async``, inlined: one coroutine
        # frame fewer on every request. Inside ``_delegate`` (see
        # _DELEGATE), the body's return ends no exception.
        @functools.wraps(view)
        async def drive_body(*args: t.Any, **kwargs: t.Any) -> t.Any:
            gen = bound(*args, **kwargs) if kwargs else bound(*args)

            if delegate:
                gen = _delegate(gen)

            send = gen.send

            try:
                item = send(None)

                while True:
                    cls = type(item)  # pyright: ignore[reportUnknownVariableType]

                    if cls in plain:
                        item = send(item)
                        continue

                    if item is returned:
                        rv = send(None)
                        break

                    error: BaseException | None = None

                    try:
                        if cls is _COROUTINE:
                            value = await item

                            if type(value) not in plain and _must_await_result(
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

            if type(rv) in plain:
                return rv

            return await _settle_async(rv, view, culprit, "returned")

        return drive_body

    if kind is _Kind.ASYNC:
        call_view = _recording_async_streams(view)

        @functools.wraps(view)
        async def await_body(*args: t.Any, **kwargs: t.Any) -> t.Any:
            rv = await body(call_view, *args, **kwargs)

            if type(rv) in _PLAIN_TYPES:
                return rv

            return await _settle_async(rv, call_view, culprit, "returned")

        return await_body

    @functools.wraps(view)
    async def call_body(*args: t.Any, **kwargs: t.Any) -> t.Any:
        rv = body(view, *args, **kwargs)

        if type(rv) is _COROUTINE:
            awaited, rv = rv, await rv

            if type(rv) is _ASYNC_GENERATOR:
                _remember_stream(rv, awaited, view)

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
        plain = _PLAIN_TYPES
        returned = _RETURNED
        delegate = _DELEGATE
        bound = functools.partial(body, call_view)

        # The driver of ``generators._drive_sync``, inlined: one frame fewer
        # on every request, and only a ``type()`` test on the hot path.
        # Inside ``_delegate`` (see _DELEGATE), the body's return ends no
        # exception.
        @_wraps_sync(view)
        def drive_body(*args: t.Any, **kwargs: t.Any) -> t.Any:
            gen = bound(*args, **kwargs) if kwargs else bound(*args)

            if delegate:
                gen = _delegate(gen)

            send = gen.send

            try:
                item = send(None)

                while True:
                    if type(item) in plain:
                        item = send(item)
                    elif item is returned:
                        rv = send(None)
                        break
                    else:
                        item = _step_sync(gen, item, call_view, culprit)
            except StopIteration as stop:
                rv = stop.value

            if type(rv) in plain:
                return rv

            return _settle_sync(rv, call_view, culprit, "returned")

        return drive_body

    if kind is _Kind.ASYNC:
        # The sync view may bridge by itself (``View.as_view`` does), so it
        # runs in a worker thread, never inline on the body's event loop.
        call_body = ensure_sync(body)
        async_view = ensure_async(_recording_streams(view), thread=True)

        @_wraps_sync(view)
        def bridge_body(*args: t.Any, **kwargs: t.Any) -> t.Any:
            rv = call_body(async_view, *args, **kwargs)

            if type(rv) not in _PLAIN_TYPES:
                _refuse(rv, async_view, culprit, "returned")

            return rv

        return bridge_body

    plain = _PLAIN_TYPES
    # Quart's sync views may return async generators (streamed responses).
    call_view = _recording_streams(view) if "quart" in sys.modules else view
    bound = functools.partial(body, call_view)

    @_wraps_sync(view)
    def call_body_sync(*args: t.Any, **kwargs: t.Any) -> t.Any:
        # The partial passes the view on in C; without keyword arguments,
        # calling without ``**`` copies no dict.
        rv = bound(*args, **kwargs) if kwargs else bound(*args)

        if type(rv) in plain:
            return rv

        return _settle_sync(rv, call_view, culprit, "returned")

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
    return _make_decorator(body, kind, body, takes_view=True)


def _make_decorator(
    body: t.Callable[..., t.Any],
    kind: _Kind,
    called: object,
    *,
    takes_view: bool,
) -> ViewDecorator:
    """Make the decorator for ``body``; ``called`` is what is called with
    the view's arguments (the body, or a ``before_view`` hook), whose
    signature is checked against the view's when the decorator is applied.
    """
    culprit = getattr(body, "__name__", None) or repr(body)
    described = f"The decorator body {culprit!r}"
    signature = signature_of(called)
    checked = (
        described
        if takes_view
        else f"The before_view hook {getattr(called, '__name__', called)!r}"
    )

    def decorator(view: t.Any, /) -> t.Any:
        _kind(view, culprit, "a view")
        check_arguments(signature, view, checked, takes_view=takes_view)
        _quart.install()  # Quart: note its loop, for the worker threads.

        if is_async_callable(view):
            return _wrap_async(body, kind, view, described)

        return _wrap_sync(body, kind, view, described)

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


def before_view(hook: BeforeViewHook) -> ViewDecorator:
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
    return _make_decorator(body, _Kind.GENERATOR, hook, takes_view=False)


def after_view(hook: AfterViewHook) -> ViewDecorator:
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
    signature = signature_of(hook)

    if signature is not None:
        try:
            signature.bind(None)
        except TypeError as e:
            raise TypeError(
                f"after_view() cannot use {_describe(hook)} as a hook: it is"
                f" called with the response, as hook(response), but {e}."
            ) from None

    def body(view: _View, /, *args: t.Any, **kwargs: t.Any) -> _Generator:
        # Quart: its make_response is async, so the result is yielded.
        response = yield _quart.make_response((yield view(*args, **kwargs)))
        rv = yield from run_hook(response)
        return response if rv is None else rv

    _name_after(body, hook)
    return async_compatible_decorator(body)
