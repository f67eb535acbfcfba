"""Run every async hop of a Flask app on one long-lived event loop.

Flask's default bridge (:meth:`flask.Flask.async_to_sync`) starts a new thread
and a new event loop for each async call. :class:`SharedLoop` replaces that
bridge, on the app instance, with one that runs each coroutine on a single
event loop per process, owned by one thread. The machinery lives in
:mod:`flask_asyncext._loop_runner`.
"""

from __future__ import annotations

import asyncio
import atexit
import collections.abc as cabc
import contextvars
import functools
import itertools
import os
import sys
import threading
import typing as t
import weakref

from ._loop_runner import Call
from ._loop_runner import close_awaitable
from ._loop_runner import LoopThread

if t.TYPE_CHECKING:  # pragma: no cover
    import typing_extensions as te
    from flask import Flask

    P = te.ParamSpec("P")

R = t.TypeVar("R")

_EXTENSION_KEY = "flask_asyncext.shared_loop"

#: Every runner created in this process, so that a forked child can forget the
#: parent's loop thread (which does not exist in the child).
_runners: weakref.WeakSet[SharedLoop] = weakref.WeakSet()

#: Loop threads inherited from a parent process. They are kept referenced so
#: that their (never closed) loops are not finalized in the child.
_inherited: list[LoopThread] = []


class SharedLoop:
    """Run every async hop of a Flask app on one long-lived event loop.

    Flask runs each ``async def`` view, request hook and error handler through
    :meth:`~flask.Flask.async_to_sync`, which by default starts a new thread
    and a new event loop for every call. This extension replaces that bridge on
    the app instance with one that runs the coroutine on a single event loop
    shared by all requests of the process. One daemon thread runs the loop;
    a calling thread hands its coroutine over and waits for it.

    .. code-block:: python

        from flask import Flask
        from flask_asyncext.shared_loop import SharedLoop

        app = Flask(__name__)
        shared_loop = SharedLoop(app)

    - The caller's context (app and request context, any
      :class:`~contextvars.ContextVar`) is visible in the coroutine, and
      context variables it sets are visible to the caller afterwards.
    - Loop-bound objects (an :class:`asyncio.Lock`, a connection pool) can be
      created once per process, on first use, and used by every request.
    - Tasks created with :func:`asyncio.create_task` keep running after the
      response is sent. :meth:`wait_tasks` waits for them; :meth:`close`
      (called at interpreter exit too, bounded by ``exit_timeout``) waits for
      them and stops the loop.
    - The loop and its thread are started on first use in each process, so
      the runner is safe with pre-forking servers such as gunicorn.
    - Thread-sensitive sync code called from a coroutine with asgiref's
      ``sync_to_async`` runs in the request's own waiting thread.
    - Under gevent (``gevent.monkey.patch_all()``), the loop runs in a
      greenlet and request greenlets hand their coroutines to it.

    Sync code called from a coroutine blocks every request on the loop: run
    it in a worker thread, for example with ``await asyncio.to_thread(func)``.

    :param app: The app to install the bridge on. Call :meth:`init_app` later
        when using the application factory pattern.
    :param exit_timeout: Seconds :meth:`close` waits for calls in flight and
        background tasks at interpreter exit, before cancelling them
        (cancelled tasks get one more second). ``None`` waits until they
        are done.
    :param blocking_warning: Log a warning when a coroutine holds the loop
        (runs without awaiting) for longer than this many seconds, naming the
        coroutine and its line; at most one warning a minute. ``None``
        switches it off.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        exit_timeout: float | None = 5.0,
        blocking_warning: float | None = 1.0,
    ) -> None:
        if exit_timeout is not None and exit_timeout < 0:
            raise ValueError(f"exit_timeout must be >= 0 or None, not {exit_timeout!r}")

        if blocking_warning is not None and blocking_warning <= 0:
            raise ValueError(
                f"blocking_warning must be > 0 or None, not {blocking_warning!r}"
            )

        #: Seconds :meth:`close` waits at interpreter exit.
        self.exit_timeout = exit_timeout
        #: Seconds a coroutine may hold the loop before a warning is logged.
        self.blocking_warning = blocking_warning
        self._lock = threading.Lock()
        self._current: LoopThread | None = None
        _runners.add(self)

        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Make ``app`` run its async calls on this runner's loop.

        Sets :meth:`async_to_sync` as the app's ``async_to_sync`` (an
        instance attribute, Flask's documented override point), which
        :meth:`flask.Flask.ensure_sync` uses for every coroutine function.
        Several apps may share one runner.

        :param app: The Flask app.
        """
        app.async_to_sync = self.async_to_sync  # type: ignore[method-assign]
        app.extensions[_EXTENSION_KEY] = self

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The shared event loop, started in this process if necessary.

        Use it to schedule work from other threads, for example with
        :func:`asyncio.run_coroutine_threadsafe`. Do not run it yourself
        (``run_until_complete``): its thread runs it. Run coroutines with
        :meth:`async_to_sync` instead.
        """
        return (self._current or self._start()).loop

    def async_to_sync(
        self, func: cabc.Callable[P, cabc.Awaitable[R]]
    ) -> cabc.Callable[P, R]:
        """Return a sync function that runs ``func`` on the shared loop.

        The returned function calls ``func`` in the caller's thread, runs the
        awaitable it returns as a task on the shared loop in a copy of the
        caller's context, copies the context variables the coroutine changed
        back to the caller, and returns the result or raises the exception.
        While it waits, the calling thread runs the thread-sensitive sync
        work the coroutine hands back (asgiref's ``sync_to_async``).

        .. code-block:: python

            result = shared_loop.async_to_sync(func)(*args, **kwargs)

        Calling it from a thread that is running an event loop (including
        from a coroutine on the shared loop) raises :exc:`RuntimeError`:
        blocking there would stall or deadlock that loop. Await the coroutine
        instead.

        If the calling thread is interrupted while it waits
        (:exc:`KeyboardInterrupt`, or any exception raised by a signal
        handler), the task is cancelled and the exception propagates; the
        loop goes on serving everyone else.

        :param func: A coroutine function, or any callable returning an
            awaitable.
        """

        def run_on_shared_loop(*args: P.args, **kwargs: P.kwargs) -> R:
            return self._run(func, args, kwargs)

        return run_on_shared_loop

    def _run(
        self,
        func: cabc.Callable[..., cabc.Awaitable[R]],
        args: tuple[t.Any, ...],
        kwargs: dict[str, t.Any],
    ) -> R:
        running = asyncio._get_running_loop()
        owner = self._current

        # Under gevent, a greenlet sees the loop of the greenlet that runs
        # it (same OS thread): that is not this greenlet's loop.
        if running is not None and (
            owner is None or running is not owner.loop or owner.in_loop_thread()
        ):
            raise RuntimeError(
                f"Cannot run {func!r} synchronously: this thread is running"
                " an event loop, which this would block or deadlock."
                " Await it instead, for example with"
                " 'await flask_asyncext.maybe_await(...)'."
            )

        owner = owner or self._start()
        handled = sys.exc_info()[1]
        made: list[cabc.Awaitable[R]] = []
        call: Call | None = None

        # An exception from a signal handler can land at any statement: until
        # the call is handed to the loop, the awaitable is this thread's to
        # close, or it would be reported as never awaited. It lands between
        # instructions only: in "awaitable = func()" the check for signals
        # that follows the call comes before the assignment, which would
        # leave the new coroutine unreferenced. list.extend() stores it from
        # C, where no signal handler runs.
        try:
            made.extend(
                itertools.starmap(
                    functools.partial(func, **kwargs) if kwargs else func, (args,)
                )
            )
            call = Call(owner, made[0], contextvars.copy_context(), handled)
            return call.run()  # type: ignore[no-any-return]
        except BaseException:
            if made and (call is None or not call.scheduled):
                close_awaitable(made[0])

            raise

    def _start(self) -> LoopThread:
        with self._lock:
            if self._current is None:
                # In an empty context: what the loop and its watchdog schedule
                # for good (the self-pipe reader, the heartbeat) runs in the
                # context it was made in, the first request's otherwise.
                self._current = contextvars.Context().run(
                    LoopThread, self.blocking_warning
                )
                atexit.register(self._close_at_exit)

            return self._current

    def _close_at_exit(self) -> None:
        self.close(self.exit_timeout)

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Lock()

        if self._current is not None:
            _inherited.append(self._current)
            self._current = None

    def wait_tasks(self, timeout: float | None = None) -> bool:
        """Wait until the tasks created on the loop with
        :func:`asyncio.create_task` (background tasks) are done.

        Tasks they create while being waited for are waited for too.

        :param timeout: Seconds to wait at most; ``None`` waits until they are
            done.
        :return: ``True`` when no background task is left.
        """
        owner = self._current

        if owner is None:
            return True

        return self.async_to_sync(owner.wait_tasks)(timeout)

    def close(self, timeout: float | None = None) -> None:
        """Wait for the calls in flight and the background tasks, then stop
        the loop and its thread.

        Called automatically at interpreter exit, with ``exit_timeout``.
        Whatever still runs after ``timeout`` seconds is cancelled and gets
        at most one more second to finish; async generators are finalized,
        the loop's thread pool is shut down and the loop is closed. So
        ``close(timeout)`` returns within about ``timeout + 1`` seconds. A
        task that ignores its cancellation is logged and left to the loop's
        (daemon) thread. Calls made after this start a new loop. Interrupted
        (:exc:`KeyboardInterrupt`, or any exception raised by a signal
        handler), it raises that exception at once; the loop still shuts
        down, in its own thread.

        :param timeout: Seconds to wait at most for background tasks; ``None``
            waits until they are done.
        """
        owner = self._current

        if owner is not None and owner.in_loop_thread():
            raise RuntimeError(
                "Cannot close the shared loop from a coroutine running on it"
                " (this thread is running an event loop)."
            )

        try:
            with self._lock:
                if owner is None or self._current is not owner:  # closed meanwhile
                    return

                self._current = None
                atexit.unregister(self._close_at_exit)

            owner.close(timeout)
        except BaseException:
            # Interrupted (a signal handler's exception): a loop this call
            # detached still shuts down, without this thread waiting for it.
            if owner is not None and self._current is not owner:
                owner.shut_down_soon(timeout)

            raise


def _after_fork_in_child() -> None:
    for runner in list(_runners):
        runner._after_fork_in_child()


if sys.platform != "win32":  # pragma: no branch
    os.register_at_fork(after_in_child=_after_fork_in_child)
