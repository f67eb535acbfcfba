"""Let sync code that runs inside an async view wait for a coroutine on the
view's own event loop.

A ``current_user`` proxy, a template, a form validator: extension code that
is sync by nature still runs while an ``async def`` view is on the stack, in
the thread that runs the view's event loop. It cannot start another loop
there, and blocking on the running one would deadlock. A *portal* solves
this with greenlets, the way SQLAlchemy's asyncio extension does: the async
code runs in a child greenlet, and :func:`await_` hands each step of the
awaitable back to the parent greenlet, which awaits it on the loop as any
coroutine would, then switches back with the result. No thread, no loop.

This module needs greenlet (the ``portal`` extra). Without it, it imports;
:func:`has_portal` is false and :func:`await_` raises :exc:`RuntimeError`.
"""

from __future__ import annotations

import collections.abc as cabc
import inspect
import sys
import types
import typing as t

if t.TYPE_CHECKING:  # pragma: no cover
    import greenlet
    import typing_extensions as te
    from flask import Flask

    P = te.ParamSpec("P")
    R = t.TypeVar("R")
    _Step = tuple[object, greenlet.greenlet]
    _AVAILABLE: bool
else:
    try:
        import greenlet
    except ImportError:
        greenlet = None
        _AVAILABLE = False
    else:
        _AVAILABLE = True

if t.TYPE_CHECKING or _AVAILABLE:

    class _PortalGreenlet(greenlet.greenlet):
        """The greenlet in which a portal runs its code. Its parent is the
        greenlet that awaits on the event loop for it.
        """


_EXTENSION_KEY = "flask_asyncext.portal"
_PORTAL_EXTRA = (
    "The portal needs greenlet: install Flask-AsyncExt with the 'portal' extra"
    " ('pip install Flask-AsyncExt[portal]')."
)
_COROUTINE = types.CoroutineType


def _require_greenlet() -> None:
    if not _AVAILABLE:
        raise RuntimeError(_PORTAL_EXTRA)


def _find_portal() -> greenlet.greenlet | None:
    """The greenlet that awaits for the code running in the current one, or
    ``None`` outside a portal. Greenlets that the code started (SQLAlchemy's,
    for example) are looked through.
    """
    current: greenlet.greenlet | None = greenlet.getcurrent()

    while current is not None:
        if type(current) is _PortalGreenlet:
            return current.parent

        current = current.parent

    return None


def has_portal() -> bool:
    """Tell whether :func:`await_` can wait here: true in code that a portal
    runs (an async view of an app with :class:`SyncPortal`, or a function
    called with :func:`run_with_portal`), and in sync code it calls.

    .. code-block:: python

        if has_portal():
            user = await_(load_user(user_id))

    .. versionadded:: 0.1
    """
    return _AVAILABLE and _find_portal() is not None


def _close(awaitable: object) -> None:
    """Close a coroutine that will never run, so that it does not warn that
    it was never awaited.
    """
    if type(awaitable) is _COROUTINE:
        t.cast("cabc.Coroutine[t.Any, t.Any, t.Any]", awaitable).close()


def _is_awaitable(value: object) -> bool:
    return type(value) is _COROUTINE or inspect.isawaitable(value)


async def _as_coroutine(awaitable: cabc.Awaitable[R]) -> R:
    return await awaitable


def await_(awaitable: cabc.Awaitable[R]) -> R:
    """Wait for ``awaitable`` from sync code that runs inside a portal, on
    the event loop that runs the portal, and return its result.

    ``await_(x)`` in sync code does what ``await x`` does in async code: the
    awaitable runs in the caller's thread and context, on the running loop,
    while other tasks on the loop go on. Its exception is raised here, and a
    cancellation of the task (a client that went away) reaches it.

    .. code-block:: python

        def get_user():
            if "user" not in g:
                g.user = await_(load_user(session["user_id"]))

            return g.user

    :func:`flask_asyncext.ensure_sync` uses it when a portal is active, so an
    extension that calls ``ensure_sync(user_loader)(user_id)`` needs no
    change.

    :param awaitable: A coroutine or any other awaitable.
    :raise RuntimeError: No portal is active here (see :func:`has_portal`),
        or greenlet is not installed. A coroutine is closed first, so that
        it does not warn that it was never awaited.

    .. versionadded:: 0.1
    """
    portal = _find_portal() if _AVAILABLE else None

    if portal is None:
        _close(awaitable)

        if not _AVAILABLE:
            raise RuntimeError(_PORTAL_EXTRA)

        raise RuntimeError(
            f"Cannot wait for {awaitable!r}: no portal is active here. Sync"
            " code can wait for a coroutine with await_() only while a portal"
            " runs it: set up 'flask_asyncext.portal.SyncPortal(app)' for"
            " async views, or call the code with 'await run_with_portal(func)'."
            " In async code, 'await' the coroutine instead."
        )

    coroutine: cabc.Coroutine[t.Any, t.Any, R]

    if type(awaitable) is _COROUTINE:
        coroutine = t.cast("cabc.Coroutine[t.Any, t.Any, R]", awaitable)
    else:
        # Let 'await' validate it and take it apart, whatever its kind.
        coroutine = _as_coroutine(awaitable)

    current = greenlet.getcurrent()
    send = coroutine.send
    value: t.Any = None
    error: BaseException | None = None

    # Step the coroutine here; each time it suspends, hand what it yields (a
    # future) to the portal, which yields it to the event loop and switches
    # back with what the loop resumes the task with: a value or an error.
    while True:
        try:
            step = send(value) if error is None else coroutine.throw(error)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]

        error = None

        try:
            value = portal.switch((step, current))
        except BaseException as e:
            value, error = None, e


def _enter(
    func: cabc.Callable[..., t.Any],
    args: tuple[t.Any, ...],
    kwargs: dict[str, t.Any],
    handled: BaseException | None,
) -> t.Any:
    # The first thing a portal's greenlet runs. A new greenlet does not see
    # the exception its parent is handling: raise it here again, so that an
    # error handler sees it in sys.exc_info() and a new exception chains to
    # it, as they would without the portal.
    if handled is None:
        return _call(func, args, kwargs)

    try:
        raise handled
    except BaseException:
        return _call(func, args, kwargs)


def _call(
    func: cabc.Callable[..., t.Any],
    args: tuple[t.Any, ...],
    kwargs: dict[str, t.Any],
) -> t.Any:
    rv = func(*args, **kwargs)

    while _is_awaitable(rv):
        rv = await_(rv)

    return rv


@types.coroutine
def _drive(
    func: cabc.Callable[..., t.Any],
    args: tuple[t.Any, ...],
    kwargs: dict[str, t.Any],
) -> cabc.Generator[t.Any, t.Any, t.Any]:
    """Run ``func`` in a new portal greenlet; each step :func:`await_` hands
    over is yielded to the event loop from here.
    """
    portal = greenlet.getcurrent()
    child = _PortalGreenlet(_enter, portal)
    # Share the task's context, as a coroutine awaited by the task would:
    # Flask's contexts are visible, and context variables set on either side
    # are seen on the other.
    child.gr_context = portal.gr_context
    message: t.Any = child.switch(func, args, kwargs, sys.exc_info()[1])

    while not child.dead:
        step, resume = t.cast("_Step", message)

        try:
            value = yield step
        except BaseException as e:
            # Cancellation, or an error the loop resumes the task with: raise
            # it where the greenlet waits, inside await_().
            message = resume.throw(e)
        else:
            message = resume.switch(value)

    return message


@t.overload
async def run_with_portal(
    func: cabc.Callable[P, cabc.Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs
) -> R: ...
@t.overload
async def run_with_portal(
    func: cabc.Callable[P, R], /, *args: P.args, **kwargs: P.kwargs
) -> R: ...
async def run_with_portal(
    func: cabc.Callable[..., t.Any], /, *args: t.Any, **kwargs: t.Any
) -> t.Any:
    """Call ``func`` inside a portal, so that the sync code it runs can wait
    for coroutines with :func:`await_`, and return its result.

    ``func`` may be sync or async: an awaitable it returns is awaited inside
    the portal, so ``await run_with_portal(view, **kwargs)`` runs a whole
    coroutine function, and any sync code it calls, through one portal.
    Portals nest: code inside a portal may open another one.

    .. code-block:: python

        def validate(form):
            return await_(is_username_free(form.username.data))

        ok = await run_with_portal(validate, form)

    :class:`SyncPortal` does this for every coroutine function Flask runs.
    The cost is one greenlet per call and two greenlet switches each time an
    awaited coroutine suspends.

    :param func: The callable to run, sync or async.
    :param args: Positional arguments for ``func``.
    :param kwargs: Keyword arguments for ``func``.
    :raise RuntimeError: greenlet is not installed.

    .. versionadded:: 0.1
    """
    _require_greenlet()
    return await _drive(func, args, kwargs)


class SyncPortal:
    """Run every coroutine function that a Flask app calls (async views,
    async request hooks and error handlers) inside a portal, so that sync
    code they call can wait for a coroutine with :func:`await_`, on the
    view's own event loop.

    .. code-block:: python

        from flask_asyncext.portal import SyncPortal

        app = Flask(__name__)
        SyncPortal(app)

    Sync code that uses :func:`flask_asyncext.ensure_sync`, or the app's
    own :meth:`~flask.Flask.ensure_sync`, then works in an async view too: a
    ``current_user`` proxy whose user loader is ``async def``, a template
    that reads it, a form validator. Without the portal, that code raises
    :exc:`RuntimeError` because the thread is running an event loop.

    It wraps the app's ``ensure_sync`` and still calls the app's
    ``async_to_sync``, so it composes with
    :class:`~flask_asyncext.shared_loop.SharedLoop` (and any other bridge),
    set up in either order. It does not change sync views.

    :param app: The app to set up now; or call :meth:`init_app` later.
    :raise RuntimeError: greenlet is not installed (the ``portal`` extra).

    .. versionadded:: 0.1
    """

    def __init__(self, app: Flask | None = None) -> None:
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Wrap ``app.ensure_sync`` so that the coroutine functions the app
        runs run inside a portal. Calling it again for the same app changes
        nothing.

        :param app: The Flask app.
        :raise RuntimeError: greenlet is not installed.
        """
        _require_greenlet()

        if _EXTENSION_KEY in app.extensions:
            return

        wrapped = app.ensure_sync

        def ensure_sync(func: cabc.Callable[..., t.Any]) -> cabc.Callable[..., t.Any]:
            # Only what Flask itself runs through async_to_sync goes through
            # the portal; anything else is left to the wrapped ensure_sync.
            if not inspect.iscoroutinefunction(func):
                return wrapped(func)

            async def in_portal(*args: t.Any, **kwargs: t.Any) -> t.Any:
                return await _drive(func, args, kwargs)

            bridged = wrapped(in_portal)

            def call(*args: t.Any, **kwargs: t.Any) -> t.Any:
                # Called from sync code inside a portal already: no bridge
                # can run in this thread, wait through the portal instead.
                if _find_portal() is not None:
                    return await_(func(*args, **kwargs))

                return bridged(*args, **kwargs)

            return call

        app.ensure_sync = ensure_sync  # type: ignore[method-assign]
        app.extensions[_EXTENSION_KEY] = self
