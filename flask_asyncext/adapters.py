"""Make view decorators written only for sync views work on async views, without
changing them.
"""

from __future__ import annotations

import collections.abc as cabc
import functools
import typing as t

from . import portal as _portal
from .bridges import _wraps_sync
from .bridges import ensure_async
from .bridges import ensure_sync
from .bridges import is_async_callable

if t.TYPE_CHECKING:  # pragma: no cover
    from .typing import ViewDecorator

_View = cabc.Callable[..., t.Any]


def _describe(obj: object) -> str:
    name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None)
    return f"{obj!r}" if name is None else f"{name!r} ({obj!r})"


def adapt_decorator(decorator: cabc.Callable[[_View], _View]) -> ViewDecorator:
    """Make a view decorator that only works on sync views (it calls the view
    and uses the result as the response) work on async views too, without
    changing its code. The decorated async view stays an ``async def``.

    .. code-block:: python

        from flask_cors import cross_origin

        cors = adapt_decorator(cross_origin(origins="https://example.com"))

        @app.get("/items")
        @cors
        async def items():
            return await db.fetch_items()

    Pass the decorator itself, or what a decorator factory returns
    (``cross_origin()``, ``Permission(...).require()``). On a sync view the
    decorator is applied as it is, at no cost. On an async view it is applied
    once, at decoration time, to a sync stand-in for the view; each request
    then runs its wrapper as sync code that may post-process the response,
    short-circuit without calling the view, or raise (``abort(403)``), and
    when it calls the stand-in, the real async view runs on the request's
    own event loop and its result is handed back.

    With greenlet installed (the ``portal`` extra), the wrapper runs in a
    portal (see :func:`~flask_asyncext.portal.run_with_portal`) in the loop's
    own thread: one greenlet per request, no thread, no extra loop. Without
    it, the wrapper runs in a worker thread (asgiref's ``sync_to_async``)
    and the view is run back on the request's loop: a thread hop per
    request, and thread-local state the decorator keeps is not the view's.

    A decorator that returns the function it is given (one that only marks
    or registers views) marks the async view itself, which is returned
    unchanged.

    :param decorator: A sync-only view decorator.
    :raise TypeError: ``decorator`` is not callable, or is a coroutine
        function; the returned decorator raises it when given something that
        is not a view.

    .. versionadded:: 0.1
    """
    if not callable(decorator) or is_async_callable(decorator):
        raise TypeError(
            f"adapt_decorator() needs a view decorator: a callable that takes a"
            f" view and returns its sync wrapper, not {_describe(decorator)}."
        )

    in_portal = _portal._AVAILABLE

    def adapted(view: _View) -> _View:
        if isinstance(view, type) or not callable(view):
            raise TypeError(
                f"{_describe(decorator)}, adapted, cannot decorate"
                f" {_describe(view)}: it is not a view function."
            )

        if not is_async_callable(view):
            return decorator(view)

        call_view = ensure_sync(view)

        @_wraps_sync(view)
        def stand_in(*args: t.Any, **kwargs: t.Any) -> t.Any:
            # Inside the portal, waits for the view through it; in the worker
            # thread, runs it back on the request's loop.
            return call_view(*args, **kwargs)

        wrapped = decorator(stand_in)

        if wrapped is stand_in:
            # A decorator that marks the view: mark the real one.
            for name, value in vars(stand_in).items():
                if name != "__wrapped__" and getattr(view, name, None) is not value:
                    setattr(view, name, value)

            return view

        if in_portal:

            async def wrapper(*args: t.Any, **kwargs: t.Any) -> t.Any:
                return await _portal.run_with_portal(wrapped, *args, **kwargs)

        else:
            in_thread = ensure_async(wrapped, thread=True)

            async def wrapper(*args: t.Any, **kwargs: t.Any) -> t.Any:
                return await in_thread(*args, **kwargs)

        functools.update_wrapper(wrapper, view)
        # What the decorator set on its wrapper (flask-cors sets the
        # attributes Flask reads when the route is registered).
        wrapper.__dict__.update(getattr(wrapped, "__dict__", {}))
        wrapper.__dict__["__wrapped__"] = view
        return wrapper

    functools.update_wrapper(adapted, decorator, updated=())

    if not hasattr(decorator, "__name__"):
        # An instance (Flask-Principal's IdentityContext): name its class.
        adapted.__name__ = adapted.__qualname__ = type(decorator).__name__

    return t.cast("ViewDecorator", adapted)
