"""Run every async hop of a Flask app on one long-lived event loop.

Flask's default bridge (:meth:`flask.Flask.async_to_sync`) starts a new thread
and a new event loop for each async call. :class:`SharedLoop` replaces that
bridge, on the app instance, with one that runs each coroutine on a single
event loop per process. The loop belongs to no thread: a thread that finds it
idle drives it itself, so the common case needs no hand-off between threads.
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import collections.abc as cabc
import concurrent.futures
import contextlib
import contextvars
import functools
import os
import sys
import threading
import typing as t
import weakref

if t.TYPE_CHECKING:  # pragma: no cover
    import typing_extensions as te
    from flask import Flask

    P = te.ParamSpec("P")
    Ts = te.TypeVarTuple("Ts")

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


_CLOSED = "The shared event loop was closed."


class _Call:
    """One coroutine a thread runs on the shared loop."""

    __slots__ = (
        "awaitable",
        "context",
        "done",
        "error",
        "finished",
        "handled",
        "result",
        "shared",
        "task",
    )

    def __init__(
        self,
        shared: _LoopThread,
        awaitable: cabc.Awaitable[t.Any],
        context: contextvars.Context,
        handled: BaseException | None,
    ) -> None:
        self.shared = shared
        self.awaitable = awaitable
        self.context = context
        self.handled = handled
        #: Held until the loop is done with the call.
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
            self.shared.finish(self)

    def finish(self, task: asyncio.Task[None]) -> None:
        # Done callback of the task. A task cancelled before its first step
        # never ran ``run``: nothing was awaited.
        if not self.finished:
            self.fail(asyncio.CancelledError())

    def fail(self, error: BaseException) -> None:
        # The awaitable was never awaited and never will be. Close it, so
        # that it is not reported as "never awaited".
        self.error = error
        _close(self.awaitable)
        self.shared.finish(self)


def _close(awaitable: cabc.Awaitable[t.Any]) -> None:
    close = getattr(awaitable, "close", None)

    if close is not None:
        close()


class _EventLoop(asyncio.SelectorEventLoop):
    """The shared loop. Work scheduled on it from another thread while no
    thread drives it wakes the idle driver.
    """

    shared: _LoopThread

    def call_soon_threadsafe(
        self,
        callback: cabc.Callable[[te.Unpack[Ts]], object],
        *args: te.Unpack[Ts],
        context: contextvars.Context | None = None,
    ) -> asyncio.Handle:
        handle = super().call_soon_threadsafe(callback, *args, context=context)
        self.shared.poke()
        return handle

    def wake(self, callback: cabc.Callable[[], object]) -> None:
        # For the runner's own callbacks, which come with their own reason
        # to drive the loop.
        super().call_soon_threadsafe(callback)


class _LoopThread:
    """The shared event loop, and who drives it.

    The loop is not owned by one thread. A thread that needs a coroutine run
    while nobody drives the loop drives it itself (the leader), until its own
    call is done: no hand-off between threads. A thread arriving while the
    loop is driven hands its call to the driver and waits. A daemon thread
    (the idle driver) drives the loop whenever nobody else does and work is
    left: calls of waiting threads, tasks created with asyncio.create_task,
    callbacks scheduled from other threads. It stops as soon as none is left.
    """

    def __init__(self) -> None:
        self.loop = loop = _EventLoop()
        loop.shared = self
        loop.set_task_factory(self.create_task)
        #: The loop's default executor, shut down without starting a thread
        #: (Python 3.12 refuses new threads at interpreter exit).
        self.executor = concurrent.futures.ThreadPoolExecutor(
            thread_name_prefix="flask-asyncext-shared-loop-worker"
        )
        loop.set_default_executor(self.executor)
        #: Guards driving, leader, poked, closing, dead, calls, pending and
        #: wake_scheduled.
        self.lock = threading.Lock()
        #: Notified when the idle driver may be needed.
        self.wanted = threading.Condition(self.lock)
        #: A thread drives the loop (or is about to).
        self.driving = False
        #: The call whose caller drives the loop; None when the idle driver
        #: does (or nobody).
        self.leader: _Call | None = None
        #: The idle driver drives the loop.
        self.serving = False
        #: Another thread scheduled a callback while nobody drove the loop.
        self.poked = False
        self.closing = False
        #: The loop is closed and its calls failed: refuse new ones.
        self.dead = False
        #: Calls not finished yet.
        self.calls: set[_Call] = set()
        #: Calls waiting for the loop to start them.
        self.pending: collections.deque[_Call] = collections.deque()
        #: A wake-up (``drain``) is scheduled: the calls added meanwhile
        #: ride along, saving a write to the loop's self-pipe each.
        self.wake_scheduled = False
        #: Tasks created on the loop with asyncio.create_task (strong references).
        self.tasks: set[asyncio.Task[t.Any]] = set()
        self.thread = threading.Thread(
            target=self.serve, name="flask-asyncext-shared-loop", daemon=True
        )
        self.thread.start()

    def wanted_now(self) -> bool:
        # Under the lock: is there work for the idle driver?
        return bool(self.closing or self.poked or self.calls or self.tasks)

    def serve(self) -> None:
        # The idle driver's thread.
        loop = self.loop

        try:
            while True:
                with self.lock:
                    while self.driving or not self.wanted_now():
                        self.wanted.wait()

                    self.driving = True

                    if self.closing:
                        break

                    self.serving = True
                    self.poked = False

                loop.call_soon(self.settle)
                loop.run_forever()

                with self.lock:
                    self.serving = False
                    self.driving = False
        finally:
            # Still driving: nobody else drives the loop any more.
            self.shut_down()

    def shut_down(self) -> None:
        # The idle driver's thread: cancel what is left, finalize, close.
        loop = self.loop

        with self.lock:
            self.closing = True
            self.serving = False

        try:
            tasks = asyncio.all_tasks(loop)

            for task in tasks:
                task.cancel()

            if tasks:
                loop.run_until_complete(asyncio.wait(tasks))

            loop.run_until_complete(loop.shutdown_asyncgens())
            self.executor.shutdown(wait=True)
        finally:
            with self.lock:
                self.dead = True
                calls = list(self.calls)

            # Calls added after the loop's last iteration never started.
            for call in calls:
                if not call.finished:
                    call.fail(RuntimeError(_CLOSED))

            loop.close()

    def poke(self) -> None:
        # Any thread: a callback was scheduled thread-safely.
        with self.lock:
            # Left set while a thread drives the loop: that driver may have
            # run its last iteration already; the idle driver then takes over.
            self.poked = True

            if not self.driving:
                self.wanted.notify()

    def settle(self) -> None:
        # The driving thread: stop driving once the driver's work is done.
        leader = self.leader

        if leader is not None:
            if leader.finished and self.loop.is_running():
                self.loop.stop()
        elif self.serving and (self.closing or not (self.calls or self.tasks)):
            self.loop.stop()

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
        task.add_done_callback(self.task_done)
        return task

    def task_done(self, task: asyncio.Task[t.Any]) -> None:
        self.tasks.discard(task)
        self.settle()

    def finish(self, call: _Call) -> None:
        # The driving thread: the call is done; wake its caller.
        call.finished = True

        with self.lock:
            self.calls.discard(call)

        call.done.release()
        self.settle()

    def lead(self, call: _Call) -> bool:
        # Caller's thread: take the loop if nobody drives it.
        with self.lock:
            # A closed loop stays "driven": its calls go to add(), which
            # refuses them.
            if self.driving:
                return False

            self.driving = True
            self.leader = call
            self.calls.add(call)
            return True

    def drive(self, call: _Call) -> None:
        # Caller's thread, after lead(): run the loop until the call is done.
        loop = self.loop

        try:
            self.spawn(call)

            while not call.finished:
                loop.run_forever()
        except BaseException:
            # Interrupted while driving: cancel the call and let the idle
            # driver finish it (and everything else on the loop).
            self.leader = None

            if call.task is None:
                call.fail(asyncio.CancelledError())
            else:
                call.task.cancel()

            raise
        finally:
            with self.lock:
                self.leader = None
                self.driving = False

                if self.wanted_now():
                    self.wanted.notify()

    def add(self, call: _Call) -> None:
        # Caller's thread: queue the call for the thread driving the loop
        # (or the idle driver) and wake the loop unless a wake-up is already
        # on its way.
        with self.lock:
            if self.dead:
                _close(call.awaitable)
                raise RuntimeError(_CLOSED)

            self.calls.add(call)
            self.pending.append(call)
            wake = not self.wake_scheduled
            self.wake_scheduled = True

            if not self.driving:  # a caller handling an exception
                self.wanted.notify()

        if wake:
            # A loop closed meanwhile fails the call in shut_down().
            with contextlib.suppress(RuntimeError):
                self.loop.wake(self.drain)

    def drain(self) -> None:
        # Driving thread: start every queued call.
        with self.lock:
            self.wake_scheduled = False
            calls = list(self.pending)
            self.pending.clear()

        for call in calls:
            self.spawn(call)

    def spawn(self, call: _Call) -> None:
        # Driving thread: start the call's task in a copy of the caller's context.
        if self.closing:
            call.fail(RuntimeError(_CLOSED))
            return
        task = call.context.run(_new_task, call.run(), loop=self.loop, **_EAGER)
        call.task = task
        task.add_done_callback(call.finish)

    @staticmethod
    def cancel(call: _Call) -> None:
        # Driving thread. The call's task is missing when it was refused
        # because the loop is closing.
        if call.task is not None:
            call.task.cancel()

    def stop(self) -> None:
        # Any thread: make the idle driver shut the loop down, once the
        # current driver is done.
        with self.lock:
            self.closing = True
            self.wanted.notify()

        # The idle driver may be serving a task that does not end.
        self.loop.wake(self.settle)

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
    the app instance with one that runs the coroutine on a single event loop
    shared by all requests of the process. A calling thread that finds the
    loop idle runs it itself until its coroutine is done; one that finds it
    run by another thread hands the coroutine over and waits. A background
    daemon thread runs the loop when work is left and no request does.

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
    - The loop and its thread are started on first use in each process, so
      the runner is safe with pre-forking servers such as gunicorn.

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
        :func:`asyncio.run_coroutine_threadsafe`: callbacks scheduled
        thread-safely run even when no request is running the loop. Do not
        run it yourself (``run_until_complete``); run coroutines with
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
        If no other thread is running the loop, the caller runs it itself
        until the task is done (other tasks on the loop progress meanwhile);
        otherwise it hands the task to the thread running the loop and waits.
        A caller that is handling an exception always hands the task over.

        .. code-block:: python

            result = shared_loop.async_to_sync(func)(*args, **kwargs)

        Calling it from a thread that is running an event loop (including
        from a coroutine on the shared loop) raises :exc:`RuntimeError`:
        blocking there would stall or deadlock that loop. Await the coroutine
        instead.

        If the calling thread is interrupted (:exc:`KeyboardInterrupt`, or any
        exception raised by a signal handler), whether it waits or runs the
        loop, the task is cancelled, the background thread takes over the
        loop, and the exception propagates.

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
        handled = sys.exc_info()[1]
        call = _Call(runner, func(*args, **kwargs), contextvars.copy_context(), handled)

        # Drive the loop in this thread when nobody else does. Not while
        # handling an exception: other calls run by this thread would see it.
        if handled is None and runner.lead(call):
            runner.drive(call)
        else:
            runner.add(call)

            try:
                call.done.acquire()
            except BaseException:
                # Interrupted while waiting: cancel the task, do not wait for it.
                with contextlib.suppress(RuntimeError):
                    runner.loop.wake(functools.partial(runner.cancel, call))

                raise

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

        runner.stop()
        runner.thread.join()


def _after_fork_in_child() -> None:
    for runner in list(_runners):
        runner._after_fork_in_child()


if sys.platform != "win32":  # pragma: no branch
    os.register_at_fork(after_in_child=_after_fork_in_child)
