"""The machinery behind :class:`~flask_asyncext.shared_loop.SharedLoop`.

One thread owns the shared event loop and runs it from start to close
(:class:`LoopThread`). Request threads never run the loop: each hands its
coroutine over as a :class:`Call` and waits, running meanwhile the sync work
its coroutine sends back to it (asgiref's thread-sensitive ``sync_to_async``),
as asgiref's own ``AsyncToSync`` does. Since signal handlers run only in the
main thread, and the loop never runs there, an exception raised by a signal
handler can only land in a waiting caller, where it cancels that caller's
coroutine; it never lands in the loop's machinery.

Every state is listed here:

- the loop thread: :class:`State`, ``RUNNING`` then ``CLOSING`` then
  ``CLOSED``, changed only by the loop thread;
- a call: created, started (its task exists), finished (its caller is woken);
  abandoned when its caller stopped waiting;
- the caller of a call: waiting, then gone (its :class:`Waiter` refuses no
  work: work arriving later runs in the loop thread's fallback thread).
"""

from __future__ import annotations

import asyncio
import collections.abc as cabc
import concurrent.futures
import contextlib
import contextvars
import enum
import importlib
import inspect
import linecache
import logging
import os
import queue
import sys
import threading
import time
import typing as t

if t.TYPE_CHECKING:  # pragma: no cover
    import types

    import typing_extensions as te

    Ts = te.TypeVarTuple("Ts")

logger = logging.getLogger("flask_asyncext.shared_loop")

#: Run a call's first step at once (Python >= 3.12), not one iteration later.
_EAGER: dict[str, t.Any] = {"eager_start": True} if sys.version_info >= (3, 12) else {}
_new_task = t.cast("cabc.Callable[..., asyncio.Task[None]]", asyncio.Task)
_MISSING: t.Any = object()

CLOSED = "The shared event loop was closed."
#: Seconds cancelled tasks get to finish when the loop is closed.
CANCEL_GRACE = 1.0
#: Seconds between two warnings about a coroutine holding the loop.
WARNING_INTERVAL = 60.0

#: The pool a worker thread belongs to (in the pool's own threads).
_worker = threading.local()


class State(enum.Enum):
    """What the loop thread does. Only the loop thread changes it."""

    #: Running the loop: calls are started.
    RUNNING = "running"
    #: ``close()`` began: calls in flight and background tasks are waited for,
    #: then cancelled; new calls are refused.
    CLOSING = "closing"
    #: The loop is closed: calls are refused.
    CLOSED = "closed"


def close_awaitable(awaitable: cabc.Awaitable[t.Any]) -> None:
    close = getattr(awaitable, "close", None)

    if close is not None:
        close()


class _WorkItem:
    """A sync function to run in a thread, and the future of its result."""

    __slots__ = ("args", "fn", "future", "kwargs")

    def __init__(
        self,
        future: concurrent.futures.Future[t.Any],
        fn: cabc.Callable[..., t.Any],
        args: tuple[t.Any, ...],
        kwargs: dict[str, t.Any],
    ) -> None:
        self.future = future
        self.fn = fn
        self.args = args
        self.kwargs = kwargs

    def run(self) -> None:
        if not self.future.set_running_or_notify_cancel():
            return

        try:
            result = self.fn(*self.args, **self.kwargs)
        except BaseException as e:
            self.future.set_exception(e)
        else:
            self.future.set_result(result)


class Waiter(concurrent.futures.Executor):
    """The thread waiting for a call, as an executor: the call's coroutine
    runs thread-sensitive sync work there, in the request's own thread.

    Installed as asgiref's ``AsyncToSync.executors.current`` in the call's
    context, which is where asgiref's ``sync_to_async`` looks for it. Work
    submitted after the caller stopped waiting (by a background task that
    inherited the context) runs in the loop thread's fallback thread.
    """

    # asgiref's CurrentThreadExecutor walks its parents through these when it
    # has quit; a Waiter is never walked into: asgiref then reports that the
    # executor "already quit or is broken" instead of an AttributeError.
    _broken = True
    _old_executor = None
    _work_ready = contextlib.nullcontext()

    def __init__(self, owner: LoopThread) -> None:
        self.owner = owner
        #: Work items, then ``None`` once the call is finished.
        self.queue: queue.SimpleQueue[_WorkItem | None] = queue.SimpleQueue()
        #: The caller stopped waiting.
        self.gone = False

    def submit(
        self, fn: cabc.Callable[..., t.Any], /, *args: t.Any, **kwargs: t.Any
    ) -> concurrent.futures.Future[t.Any]:
        future: concurrent.futures.Future[t.Any] = concurrent.futures.Future()
        self.queue.put(_WorkItem(future, fn, args, kwargs))

        # Checked after the put: either the caller still takes it, or one of
        # the two hands it on.
        if self.gone:
            self.hand_on()

        return future

    def wait(self) -> None:
        # Caller's thread: run work items until the call is finished.
        while True:
            item = self.queue.get()

            if item is None:
                return

            item.run()
            del item

    def wake(self) -> None:
        # Loop thread: the call is finished.
        self.queue.put(None)

    def leave(self) -> None:
        # Caller's thread: it stops waiting.
        self.gone = True
        self.hand_on()

    def hand_on(self) -> None:
        # Any thread: run the work nobody waits for in the fallback thread.
        while True:
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                return

            if item is not None:
                self.owner.fallback().submit(item.run)


class Call:
    """One coroutine a thread runs on the shared loop.

    The caller's thread runs :meth:`run`; the loop thread runs the rest.
    """

    __slots__ = (
        "abandoned",
        "awaitable",
        "context",
        "error",
        "finished",
        "handled",
        "owner",
        "result",
        "scheduled",
        "task",
        "waiter",
    )

    def __init__(
        self,
        owner: LoopThread,
        awaitable: cabc.Awaitable[t.Any],
        context: contextvars.Context,
        handled: BaseException | None,
    ) -> None:
        self.owner = owner
        self.awaitable = awaitable
        self.context = context
        self.handled = handled
        self.waiter = Waiter(owner)
        self.task: asyncio.Task[None] | None = None
        #: The caller stopped waiting before the call finished.
        self.abandoned = False
        #: The call is (about to be) handed to the loop, which closes the
        #: awaitable if it never starts it. Until then the caller closes it.
        self.scheduled = False
        #: The caller is (or will be) woken; result and error are final.
        self.finished = False
        self.result: t.Any = None
        self.error: BaseException | None = None

    # -- the caller's thread ----------------------------------------------------

    def run(self) -> t.Any:
        """Hand the call to the loop, wait for it, and return its result.

        An exception raised here at any point (a signal handler's) cancels
        the call: the loop is never left waiting for this thread.
        """
        owner = self.owner
        pool: Pool | None = None

        try:
            owner.calls.add(self)

            if getattr(_worker, "pool", None) is not None:
                # A worker of the loop's own pool gives up its place while it
                # waits, so the coroutine can use the pool too.
                _worker.pool.park()
                pool = _worker.pool

            self.scheduled = True

            try:
                owner.loop.call_soon_threadsafe(self.start)
            except RuntimeError:  # the loop is closed
                owner.calls.discard(self)
                close_awaitable(self.awaitable)
                raise RuntimeError(CLOSED) from None

            self.waiter.wait()
        except BaseException:
            if not self.scheduled:
                # The loop never saw the call: the caller closes the awaitable.
                owner.calls.discard(self)
            elif not self.finished:
                # A closed loop fails the call itself.
                with contextlib.suppress(RuntimeError):
                    owner.loop.call_soon_threadsafe(self.abandon)

            raise
        finally:
            self.waiter.leave()

            if pool is not None:
                pool.unpark()

        for var, value in self.context.items():
            if var.get(_MISSING) is not value:
                var.set(value)

        if self.error is not None:
            error = self.error
            self.error = None

            try:
                raise error
            finally:
                del error

        return self.result

    # -- the loop thread ----------------------------------------------------------

    def start(self) -> None:
        if self.abandoned:
            return

        if self.owner.state is not State.RUNNING:
            self.fail(RuntimeError(CLOSED))
            return

        try:
            task = self.context.run(
                _new_task, self.main(), loop=self.owner.loop, **_EAGER
            )
        except BaseException as e:  # the caller gets it
            self.fail(e)
            return

        self.task = task
        task.add_done_callback(self.task_done)

    async def main(self) -> None:
        # Runs as a task in a copy of the caller's context. The context the
        # coroutine leaves behind is handed back to the caller.
        executors = self.owner.executors

        if executors is not None:
            executors.current = self.waiter

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
            self.finish()

    def task_done(self, task: asyncio.Task[None]) -> None:
        # A task cancelled before its first step never ran main().
        if not self.finished:
            self.fail(asyncio.CancelledError())

    def abandon(self) -> None:
        # The caller stopped waiting (interrupted): cancel the coroutine.
        self.abandoned = True

        if self.task is not None:
            self.task.cancel()
        elif not self.finished:
            self.fail(asyncio.CancelledError())

    def fail(self, error: BaseException) -> None:
        # The awaitable was never awaited and never will be. Close it, so
        # that it is not reported as "never awaited".
        self.error = error
        close_awaitable(self.awaitable)
        self.finish()

    def finish(self) -> None:
        self.finished = True
        self.owner.calls.discard(self)
        self.waiter.wake()


class Pool(concurrent.futures.ThreadPoolExecutor):
    """The loop's default executor (:func:`asyncio.to_thread`,
    ``run_in_executor(None, ...)``, ``getaddrinfo``).

    Like :class:`concurrent.futures.ThreadPoolExecutor`, but a worker that
    waits in the bridge for a coroutine on the loop (sync code bridging back,
    nested) does not count against ``max_workers``: that coroutine may need
    the pool itself, and a full pool of such workers would wait forever.
    Workers are daemon threads, so a worker stuck in sync code does not hold
    up interpreter exit. (A ``ThreadPoolExecutor`` only in name: asyncio's
    ``set_default_executor`` requires one; none of its machinery is used.)
    """

    def __init__(self, max_workers: int | None = None) -> None:
        self.max_workers = max_workers or min(32, (os.cpu_count() or 1) + 4)
        super().__init__(self.max_workers)
        self.queue: queue.SimpleQueue[_WorkItem | None] = queue.SimpleQueue()
        #: Guards threads, idle, parked and shut.
        self.lock = threading.Lock()
        self.threads: set[threading.Thread] = set()
        #: Workers waiting for work (not yet promised an item).
        self.idle = 0
        #: Workers waiting in the bridge.
        self.parked = 0
        self.shut = False

    def submit(
        self, fn: cabc.Callable[..., t.Any], /, *args: t.Any, **kwargs: t.Any
    ) -> concurrent.futures.Future[t.Any]:
        future: concurrent.futures.Future[t.Any] = concurrent.futures.Future()

        with self.lock:
            if self.shut:
                raise RuntimeError("cannot schedule new futures after shutdown")

            self.queue.put(_WorkItem(future, fn, args, kwargs))

            if self.idle:
                self.idle -= 1
            elif len(self.threads) - self.parked < self.max_workers:
                self.spawn()

        return future

    def spawn(self) -> None:
        # Under the lock.
        thread = threading.Thread(
            target=self.work,
            name=f"flask-asyncext-shared-loop-worker-{len(self.threads)}",
            daemon=True,
        )
        self.threads.add(thread)
        thread.start()

    def work(self) -> None:
        _worker.pool = self
        me = threading.current_thread()

        while True:
            item = self.queue.get()

            if item is None:
                break

            item.run()
            del item

            with self.lock:
                if len(self.threads) - self.parked > self.max_workers:
                    break  # more workers than places, now that one unparked

                self.idle += 1

        with self.lock:
            self.threads.discard(me)

    def park(self) -> None:
        # A worker starts waiting in the bridge: let another thread take its
        # place if work is queued.
        with self.lock:
            self.parked += 1

            if self.queue.qsize() > self.idle and not self.shut:
                self.spawn()

    def unpark(self) -> None:
        with self.lock:
            self.parked -= 1

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self.lock:
            self.shut = True
            threads = list(self.threads)

        if cancel_futures:
            while True:
                try:
                    item = self.queue.get_nowait()
                except queue.Empty:
                    break

                if item is not None:
                    item.future.cancel()

        for _ in threads:
            self.queue.put(None)

        if wait:
            for thread in threads:
                thread.join()


def gevent_waker(loop: asyncio.AbstractEventLoop) -> cabc.Callable[[], None] | None:
    """Under gevent, a cheaper way for ``loop`` to wake from its own OS thread.

    With ``gevent.monkey.patch_all()``, the loop's selector is gevent's,
    which waits for an event of its own while gevent's hub watches the file
    descriptors. A greenlet of the loop's OS thread (a request's) can set
    that event instead of writing to the loop's self-pipe: no system call,
    no file descriptor to watch and read. The function returned takes the
    place of the loop's ``_write_to_self`` (what ``call_soon_threadsafe``
    calls): it sets the event from the loop's OS thread, and writes to the
    self-pipe from any other. ``None`` when the selector is not gevent's (or
    has no such event): the loop keeps its self-pipe.

    Called in the thread that runs the loop.
    """
    gevent_selectors = sys.modules.get("gevent.selectors")
    selector = getattr(loop, "_selector", None)

    if gevent_selectors is None or not isinstance(
        selector, gevent_selectors.GeventSelector
    ):
        return None

    set_ready = getattr(getattr(selector, "_ready", None), "set", None)

    if set_ready is None:
        return None

    stubless: t.Any = loop  # _write_to_self is not in the stubs
    write_to_self_pipe: cabc.Callable[[], None] = stubless._write_to_self
    # The OS thread's identity: patched, get_ident() tells greenlets apart.
    monkey = importlib.import_module("gevent.monkey")
    get_ident: cabc.Callable[[], int] = monkey.get_original("_thread", "get_ident")
    here = get_ident()

    def write_to_self() -> None:
        if get_ident() == here:
            set_ready()
        else:
            write_to_self_pipe()

    return write_to_self


class EventLoop(asyncio.SelectorEventLoop):
    """The shared loop. It keeps a strong reference to every task created
    with :func:`asyncio.create_task` until it is done (asyncio itself keeps
    only a weak one), whatever task factory the app sets.
    """

    owner: LoopThread

    def create_task(
        self,
        coro: cabc.Generator[t.Any, None, t.Any] | cabc.Coroutine[t.Any, t.Any, t.Any],
        **kwargs: t.Any,
    ) -> asyncio.Task[t.Any]:
        task = super().create_task(coro, **kwargs)

        if not task.done():  # an eager task factory may have finished it
            self.owner.tasks.add(task)
            task.add_done_callback(self.owner.tasks.discard)

        return task


class LoopThread:
    """The thread that owns the shared event loop and runs it until close.

    It runs the loop all the time, so timers, callbacks and tasks run on time
    whether or not a request waits. An exception that escapes the loop (a
    background task raising :exc:`SystemExit` or :exc:`KeyboardInterrupt`) is
    logged and the loop runs on: it stops only when closed.
    """

    def __init__(self, blocking_warning: float | None) -> None:
        self.loop = loop = EventLoop()
        loop.owner = self
        self.pool = Pool()
        loop.set_default_executor(self.pool)
        self.state = State.RUNNING
        #: Calls not finished yet (added by their callers, removed when
        #: finished), failed if the loop closes under them.
        self.calls: set[Call] = set()
        #: Tasks created with asyncio.create_task, not done yet.
        self.tasks: set[asyncio.Task[t.Any]] = set()
        #: The thread for thread-sensitive work whose caller has gone.
        self.sync_thread: concurrent.futures.ThreadPoolExecutor | None = None
        self.lock = threading.Lock()
        #: The last exception that escaped the loop (logged once).
        self.escaped: BaseException | None = None
        #: Set when close() may return: the loop is closed, or what is left
        #: ignored its cancellation.
        self.released = threading.Event()
        self.closer: asyncio.Task[None] | None = None

        try:
            from asgiref.sync import AsyncToSync
        except ImportError:
            self.executors: t.Any = None
        else:
            self.executors = AsyncToSync.executors

        self.thread = threading.Thread(
            target=self.serve, name="flask-asyncext-shared-loop", daemon=True
        )
        self.watchdog = (
            None if blocking_warning is None else Watchdog(self, blocking_warning)
        )
        self.thread.start()

    def in_loop_thread(self) -> bool:
        return threading.get_ident() == self.thread.ident

    def serve(self) -> None:
        loop = self.loop
        write_to_self = gevent_waker(loop)

        if write_to_self is not None:
            # An instance attribute: without gevent, nothing changes.
            vars(loop)["_write_to_self"] = write_to_self

        try:
            while True:
                try:
                    loop.run_forever()
                except BaseException as e:  # raised by a task or a callback
                    self.report(e)
                else:
                    break  # stopped by close()
        finally:
            self.finalize()

    def report(self, error: BaseException) -> None:
        # Loop thread: an exception escaped a task step or a callback.
        # (SystemExit raised in a gather() child escapes twice: once from the
        # child, once from the task awaiting the gather.)
        if error is not self.escaped:
            self.escaped = error
            logger.error(
                "%s escaped a task or callback on the shared event loop; the"
                " loop keeps running. Background tasks cannot stop the"
                " process: raise it in a request instead.",
                type(error).__name__,
                exc_info=error,
            )

        # Logged here: asyncio need not report it again when the task is
        # collected.
        for task in list(self.tasks):
            if task.done() and getattr(task, "_exception", None) is error:
                task.exception()

        del error

    def finalize(self) -> None:
        # Loop thread, once the loop stopped for good.
        with self.lock:
            self.state = State.CLOSED

        self.escaped = None
        self.loop.close()

        if self.sync_thread is not None:
            self.sync_thread.shutdown(wait=False)

        # Calls handed over after the loop's last iteration never started.
        for call in list(self.calls):
            if not call.finished:
                call.fail(RuntimeError(CLOSED))

        self.released.set()

    def fallback(self) -> concurrent.futures.Executor:
        with self.lock:
            if self.sync_thread is None:
                self.sync_thread = concurrent.futures.ThreadPoolExecutor(
                    max_workers=1,
                    thread_name_prefix="flask-asyncext-shared-loop-sync",
                )

            return self.sync_thread

    def others(self) -> set[asyncio.Task[t.Any]]:
        # Loop thread: every task but the running one.
        return asyncio.all_tasks(self.loop) - {asyncio.current_task(self.loop)}

    async def wait_tasks(self, limit: float | None) -> bool:
        # Loop thread: wait for the background tasks, and those they create.
        return await self.wait_for(lambda: set(self.tasks), limit)

    async def wait_for(
        self, tasks: cabc.Callable[[], set[asyncio.Task[t.Any]]], limit: float | None
    ) -> bool:
        loop = self.loop
        deadline = None if limit is None else loop.time() + limit

        while waiting := tasks():
            remaining = None if deadline is None else deadline - loop.time()

            if remaining is not None and remaining <= 0:
                return False

            await asyncio.wait(waiting, timeout=remaining)

        return True

    def close(self, timeout: float | None) -> None:
        # Any thread but the loop's: shut the loop down, within the bound.
        self.shut_down_soon(timeout)
        self.released.wait(None if timeout is None else timeout + CANCEL_GRACE + 1)

    def shut_down_soon(self, timeout: float | None) -> None:
        # Any thread but the loop's: have the loop shut down; do not wait.
        with contextlib.suppress(RuntimeError):  # already closed
            self.loop.call_soon_threadsafe(self.begin_shut_down, timeout)

        if self.watchdog is not None:
            self.watchdog.stop()

    def begin_shut_down(self, timeout: float | None) -> None:
        # Loop thread. A second close() finds it closing already.
        if self.state is State.RUNNING:
            self.state = State.CLOSING
            # Not a background task: created directly, referenced here.
            self.closer = asyncio.Task(self.shut_down(timeout), loop=self.loop)

    async def shut_down(self, timeout: float | None) -> None:
        # Loop thread: wait for the calls in flight and the background tasks,
        # cancel what is left, finalize async generators, stop the pool.
        loop = self.loop
        await self.wait_for(self.others, timeout)
        left = self.others()

        for task in left:
            task.cancel()

        if left:
            _, stuck = await asyncio.wait(left, timeout=CANCEL_GRACE)

            if stuck:
                logger.warning(
                    "%d task(s) still running on the shared event loop after"
                    " being cancelled: %s. close() returns; the loop thread"
                    " runs them until they end.",
                    len(stuck),
                    ", ".join(sorted(map(describe_task, stuck))),
                )
                self.released.set()
                await asyncio.wait(stuck)

        await loop.shutdown_asyncgens()
        self.pool.shutdown(wait=False, cancel_futures=True)
        loop.stop()


def describe_task(task: asyncio.Task[t.Any]) -> str:
    coro = task.get_coro()
    return getattr(coro, "__qualname__", repr(coro))


class Watchdog:
    """Warns when a coroutine holds the loop longer than ``threshold`` seconds
    (sync code that blocks inside ``async def``), naming it and its line.

    The loop thread records a heartbeat every half ``threshold``; a daemon
    thread checks it as often and, when it is late, looks at what the loop
    thread is running. At most one warning per :data:`WARNING_INTERVAL`.
    """

    def __init__(self, owner: LoopThread, threshold: float) -> None:
        self.owner = owner
        self.threshold = threshold
        self.beat = time.monotonic()
        self.quiet_until = 0.0
        #: The heartbeat last reported late.
        self.reported: float | None = None
        self.stopped = threading.Event()
        owner.loop.call_soon_threadsafe(self.heartbeat)
        self.thread = threading.Thread(
            target=self.watch, name="flask-asyncext-shared-loop-watchdog", daemon=True
        )
        self.thread.start()

    def heartbeat(self) -> None:
        # Loop thread.
        self.beat = time.monotonic()

        if not self.stopped.is_set():
            self.owner.loop.call_later(self.threshold / 2, self.heartbeat)

    def stop(self) -> None:
        self.stopped.set()

    def watch(self) -> None:
        while not self.stopped.wait(self.threshold / 2):
            self.check()

    def check(self) -> bool:
        """Warn if the loop is held now; return whether a warning was logged."""
        beat = self.beat
        now = time.monotonic()
        held = now - beat

        if held <= self.threshold or beat == self.reported or now < self.quiet_until:
            return False

        frame = sys._current_frames().get(self.owner.thread.ident or 0)

        # Waiting for I/O in the selector is not holding the loop: the
        # heartbeat is late because the machine is busy.
        if frame is None or frame.f_globals.get("__name__") == "selectors":
            return False

        self.reported = beat
        self.quiet_until = now + WARNING_INTERVAL
        self.warn(held, frame)
        return True

    def warn(self, held: float, frame: types.FrameType) -> None:
        # The innermost coroutine on the loop thread's stack, and the line
        # of Python code the thread is in.
        coroutine = None
        here = frame
        cursor: types.FrameType | None = frame

        while cursor is not None:
            if cursor.f_code.co_flags & inspect.CO_COROUTINE:
                coroutine = cursor
                break

            cursor = cursor.f_back

        where = f"{here.f_code.co_filename}:{here.f_lineno}"
        line = linecache.getline(here.f_code.co_filename, here.f_lineno).strip()
        name = "a callback"

        if coroutine is not None:
            code = coroutine.f_code
            name = f"coroutine {getattr(code, 'co_qualname', code.co_name)}()"

        logger.warning(
            "The shared event loop has been held for %.2f s by %s, at %s (%s):"
            " every other request on the loop waits. Run blocking code in a"
            " thread (await asyncio.to_thread(...)).",
            held,
            name,
            where,
            line,
        )
