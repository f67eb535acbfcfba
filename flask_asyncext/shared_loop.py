"""Run every async hop of a Flask app on one long-lived event loop.

Flask's default bridge (:meth:`flask.Flask.async_to_sync`) starts a new thread
and a new event loop for each async call. :class:`SharedLoop` replaces that
bridge, on the app instance, with one that hands each coroutine to a single
event loop running in a background daemon thread.
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import collections.abc as cabc
import contextlib
import contextvars
import os
import sys
import threading
import typing as t
import weakref

if t.TYPE_CHECKING:  # pragma: no cover
    import typing_extensions as te
    from flask import Flask

    P = te.ParamSpec("P")

R = t.TypeVar("R")

_EXTENSION_KEY = "flask_asyncext.shared_loop"
#: Run a call's first step at once (Python >= 3.12), not one iteration later.
_EAGER: dict[str, t.Any] = {"eager_start": True} if sys.version_info >= (3, 12) else {}
_new_task = t.cast("cabc.Callable[..., asyncio.Task[None]]", asyncio.Task)
_MISSING: t.Any = object()

#: Every runner created in this process, so that a forked child can forget the
#: parent's loop thread (which does not exist in the child).
_runners: weakref.WeakSet[SharedLoop] = weakref.WeakSet()

#: Loop threads inherited from a parent process. They are kept referenced so
#: that their (never closed) loops are not finalized in the child.
_inherited: list[_LoopThread] = []


class _Call:
    """One coroutine handed from a waiting thread to the loop."""

    __slots__ = (
        "awaitable",
        "context",
        "done",
        "error",
        "finished",
        "handled",
        "result",
        "task",
    )

    def __init__(
        self,
        awaitable: cabc.Awaitable[t.Any],
        context: contextvars.Context,
        handled: BaseException | None,
    ) -> None:
        self.awaitable = awaitable
        self.context = context
        self.handled = handled
        #: Held until the loop thread is done with the call.
        self.done = threading.Lock()
        self.done.acquire()
        self.finished = False
        self.result: t.Any = None
        self.error: BaseException | None = None
        self.task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        # Runs as a task in a copy of the caller's context. The context the
        # coroutine leaves behind is handed back to the caller.
        try:
            if self.handled is None:
                self.result = await self.awaitable
            else:
                # The caller is handling an exception: raise it here too, so
                # the coroutine sees it in sys.exc_info() and chains to it,
                # exactly as code called in the caller's except block would.
                try:
                    raise self.handled
                except BaseException:
                    self.result = await self.awaitable
        except BaseException as e:
            self.error = e
        finally:
            self.handled = None
            self.context = contextvars.copy_context()
            # Wake the caller now, not one loop iteration later.
            self.finished = True
            self.done.release()

    def finish(self, task: asyncio.Task[None]) -> None:
        # Done callback of the task, on the loop thread. A task cancelled
        # before its first step never ran ``run``: nothing was awaited.
        if not self.finished:
            self.fail(asyncio.CancelledError())

    def fail(self, error: BaseException) -> None:
        # On the loop thread: the awaitable was never awaited and never will
        # be. Close it, so that it is not reported as "never awaited".
        self.error = error
        _close(self.awaitable)
        self.finished = True
        self.done.release()


def _close(awaitable: cabc.Awaitable[t.Any]) -> None:
    close = getattr(awaitable, "close", None)

    if close is not None:
        close()


class _LoopThread:
    """An event loop running in a daemon thread, with its bookkeeping."""

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stop: asyncio.Event | None = None
        self.closing = False
        #: Guards calls, pending, wake_scheduled and dead.
        self.lock = threading.Lock()
        #: Calls handed to the loop and not finished yet.
        self.calls: set[_Call] = set()
        #: Calls waiting for the loop to start them.
        self.pending: collections.deque[_Call] = collections.deque()
        #: A wake-up (``drain``) is scheduled: the calls added meanwhile
        #: ride along, saving a write to the loop's self-pipe each.
        self.wake_scheduled = False
        #: The loop is closed and its calls failed: refuse new ones.
        self.dead = False
        #: Tasks created on the loop with asyncio.create_task (strong references).
        self.tasks: set[asyncio.Task[t.Any]] = set()
        self.ready = threading.Event()
        self.thread = threading.Thread(
            target=self.serve, name="flask-asyncext-shared-loop", daemon=True
        )
        self.thread.start()
        self.ready.wait()

    def serve(self) -> None:
        try:
            asyncio.run(self.main())
        finally:
            # Calls added after the loop's last iteration never started.
            with self.lock:
                self.dead = True

                for call in list(self.calls):
                    if not call.finished:
                        call.fail(RuntimeError("The shared event loop was closed."))

    async def main(self) -> None:
        self.loop = loop = asyncio.get_running_loop()
        self.stop = asyncio.Event()
        loop.set_task_factory(self.create_task)
        self.ready.set()
        await self.stop.wait()
        loop.set_task_factory(None)

    def create_task(
        self,
        loop: asyncio.AbstractEventLoop,
        coro: cabc.Generator[t.Any, None, t.Any] | cabc.Coroutine[t.Any, t.Any, t.Any],
        **kwargs: t.Any,
    ) -> asyncio.Task[t.Any]:
        # Task factory: keep a strong reference to every task user code
        # creates, until it is done, so it can outlive the request.
        task: asyncio.Task[t.Any] = asyncio.Task(coro, loop=loop, **kwargs)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def add(self, call: _Call) -> None:
        # Caller's thread: queue the call and wake the loop unless a wake-up
        # is already on its way.
        with self.lock:
            if self.dead:
                _close(call.awaitable)
                raise RuntimeError("The shared event loop was closed.")

            self.calls.add(call)
            self.pending.append(call)
            wake = not self.wake_scheduled
            self.wake_scheduled = True

        if wake:
            assert self.loop is not None
            # A loop closed meanwhile fails the call in serve().
            with contextlib.suppress(RuntimeError):
                self.loop.call_soon_threadsafe(self.drain)

    def drain(self) -> None:
        # Loop thread: start every queued call.
        with self.lock:
            self.wake_scheduled = False
            calls = list(self.pending)
            self.pending.clear()

        for call in calls:
            self.spawn(call)

    def spawn(self, call: _Call) -> None:
        # Loop thread: start the call's task in a copy of the caller's context.
        if self.closing:
            call.fail(RuntimeError("The shared event loop was closed."))
            return
        task = call.context.run(_new_task, call.run(), loop=self.loop, **_EAGER)
        call.task = task
        task.add_done_callback(call.finish)

    @staticmethod
    def cancel(call: _Call) -> None:
        # Loop thread. The call's task is missing when it was refused because
        # the loop is closing.
        if call.task is not None:
            call.task.cancel()

    async def wait_tasks(self, limit: float | None) -> bool:
        loop = asyncio.get_running_loop()
        deadline = None if limit is None else loop.time() + limit
        while self.tasks:
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return False
            await asyncio.wait(set(self.tasks), timeout=remaining)
        return True


class SharedLoop:
    """Run every async hop of a Flask app on one long-lived event loop.

    Flask runs each ``async def`` view, request hook and error handler through
    :meth:`~flask.Flask.async_to_sync`, which by default starts a new thread
    and a new event loop for every call. This extension replaces that bridge on
    the app instance with one that runs the coroutine on a single event loop in
    a background daemon thread, shared by all requests of the process. The
    calling thread waits for the result.

    .. code-block:: python

        from flask import Flask
        from flask_asyncext.shared_loop import SharedLoop

        app = Flask(__name__)
        shared_loop = SharedLoop(app)

    - The caller's context (app and request context, any
      :class:`~contextvars.ContextVar`) is visible in the coroutine, and
      context variables it sets are visible to the caller afterwards.
    - Loop-bound objects (an :class:`asyncio.Lock`, a connection pool) can be
      created once and used by every request.
    - Tasks created with :func:`asyncio.create_task` keep running after the
      response is sent. :meth:`wait_tasks` waits for them; :meth:`close`
      (called at interpreter exit too) waits for them and stops the loop.
    - The loop thread is started on first use in each process, so the runner
      is safe with pre-forking servers such as gunicorn.

    Sync code called from a coroutine blocks every request on the loop: run
    it in a worker thread, for example with
    ``await flask_asyncext.ensure_async(func, thread=True)()``.

    :param app: The app to install the bridge on. Call :meth:`init_app` later
        when using the application factory pattern.

    .. versionadded:: 0.1
    """

    def __init__(self, app: Flask | None = None) -> None:
        self._lock = threading.Lock()
        self._current: _LoopThread | None = None
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
        :func:`asyncio.run_coroutine_threadsafe`.
        """
        loop = (self._current or self._start()).loop
        assert loop is not None
        return loop

    def async_to_sync(
        self, func: cabc.Callable[P, cabc.Awaitable[R]]
    ) -> cabc.Callable[P, R]:
        """Return a sync function that runs ``func`` on the shared loop.

        The returned function calls ``func`` in the caller's thread, runs the
        awaitable it returns as a task on the shared loop in a copy of the
        caller's context, waits, copies the context variables the coroutine
        changed back to the caller, and returns the result or raises the
        exception.

        .. code-block:: python

            result = shared_loop.async_to_sync(func)(*args, **kwargs)

        Calling it from a thread that is running an event loop (including the
        shared loop's own thread) raises :exc:`RuntimeError`: blocking there
        would stall or deadlock that loop. Await the coroutine instead.

        If the waiting thread is interrupted (:exc:`KeyboardInterrupt`, or any
        exception raised by a signal handler), the task is cancelled and the
        exception propagates.

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
        if asyncio._get_running_loop() is not None:
            raise RuntimeError(
                f"Cannot run {func!r} synchronously from a thread that is"
                " running an event loop (this would block or deadlock it)."
                " Await it instead, for example with"
                " 'await flask_asyncext.maybe_await(...)'."
            )

        runner = self._current or self._start()
        loop = runner.loop
        assert loop is not None
        call = _Call(
            func(*args, **kwargs), contextvars.copy_context(), sys.exc_info()[1]
        )
        runner.add(call)

        try:
            call.done.acquire()
        except BaseException:
            # Interrupted while waiting: cancel the task, do not wait for it.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(runner.cancel, call)

            raise
        finally:
            runner.calls.discard(call)

        for var, value in call.context.items():
            if var.get(_MISSING) is not value:
                var.set(value)

        if call.error is not None:
            error = call.error
            call.error = None

            try:
                raise error
            finally:
                del error

        return call.result  # type: ignore[no-any-return]

    def _start(self) -> _LoopThread:
        with self._lock:
            if self._current is None:
                self._current = _LoopThread()
                atexit.register(self.close)

            return self._current

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
        runner = self._current

        if runner is None:
            return True

        return self.async_to_sync(runner.wait_tasks)(timeout)

    def close(self, timeout: float | None = None) -> None:
        """Wait for the background tasks, then stop the loop and its thread.

        Called automatically at interpreter exit. Tasks still running after
        ``timeout`` seconds are cancelled and awaited, async generators are
        finalized, and the loop is closed. Calls made after this start a new
        loop.

        :param timeout: Seconds to wait at most for background tasks; ``None``
            waits until they are done.
        """
        runner = self._current

        if runner is None:
            return

        self.wait_tasks(timeout)

        with self._lock:
            if self._current is not runner:  # closed concurrently
                return

            self._current = None
            atexit.unregister(self.close)

        assert runner.loop is not None
        runner.loop.call_soon_threadsafe(self._stop, runner)
        runner.thread.join()

    @staticmethod
    def _stop(runner: _LoopThread) -> None:
        runner.closing = True
        assert runner.stop is not None
        runner.stop.set()


def _after_fork_in_child() -> None:
    for runner in list(_runners):
        runner._after_fork_in_child()


if sys.platform != "win32":  # pragma: no branch
    os.register_at_fork(after_in_child=_after_fork_in_child)
