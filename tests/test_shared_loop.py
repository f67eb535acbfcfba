from __future__ import annotations

import asyncio
import collections.abc as cabc
import contextvars
import gc
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import traceback
import typing as t
import weakref

import pytest
from flask import current_app
from flask import Flask
from flask import g
from flask import request
from flask import session

from flask_asyncext import _loop_runner as loop_runner
from flask_asyncext.shared_loop import SharedLoop

#: Upper bound for waits that only end when the code under test misbehaves.
PATIENCE = 30

cv: contextvars.ContextVar[str] = contextvars.ContextVar("cv")


class Interrupted(Exception):
    """Raised by a signal handler in the thread waiting for a coroutine."""


@pytest.fixture
def runner() -> cabc.Iterator[SharedLoop]:
    runner = SharedLoop()
    yield runner
    runner.close()


@pytest.fixture
def shared_app(app: Flask, runner: SharedLoop) -> Flask:
    runner.init_app(app)
    return app


@pytest.fixture
def asyncio_errors(
    caplog: pytest.LogCaptureFixture,
) -> cabc.Iterator[list[logging.LogRecord]]:
    """Errors asyncio logs ("Task was destroyed but it is pending!",
    "Task exception was never retrieved"); the test checks they are none.
    """
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        yield caplog.records


def loop_of(runner: SharedLoop) -> asyncio.AbstractEventLoop:
    return runner.loop


def test_init_app(app: Flask) -> None:
    runner = SharedLoop(app)
    assert app.extensions["flask_asyncext.shared_loop"] is runner
    assert app.async_to_sync == runner.async_to_sync
    other = Flask("other")
    runner.init_app(other)
    assert other.async_to_sync == runner.async_to_sync
    # Nothing runs until the first async call: no thread, no loop.
    assert runner._current is None
    runner.close()


def test_sync_views_start_nothing(shared_app: Flask, runner: SharedLoop) -> None:
    shared_app.add_url_rule("/", view_func=lambda: "sync")
    before = threading.active_count()
    assert shared_app.test_client().get("/").text == "sync"
    assert threading.active_count() == before
    assert runner._current is None


def test_every_async_hop_runs_on_one_loop(
    shared_app: Flask, runner: SharedLoop
) -> None:
    seen: list[tuple[str, asyncio.AbstractEventLoop, int]] = []

    def record(hop: str) -> None:
        seen.append((hop, asyncio.get_running_loop(), threading.get_ident()))

    @shared_app.before_request
    async def before() -> None:
        record("before_request")

    @shared_app.after_request
    async def after(response: t.Any) -> t.Any:
        record("after_request")
        return response

    @shared_app.teardown_request
    async def teardown(exc: BaseException | None) -> None:
        record("teardown_request")

    @shared_app.errorhandler(LookupError)
    async def handle(e: LookupError) -> tuple[str, int]:
        record("errorhandler")
        return "handled", 404

    @shared_app.route("/<int:n>")
    async def view(n: int) -> str:
        record("view")
        if n % 2:
            raise LookupError(n)
        return "ok"

    client = shared_app.test_client()
    for n in range(0, 10, 2):
        assert client.get(f"/{n}").status_code == 200

    assert len(seen) == 5 * 4

    for n in range(1, 10, 2):
        assert client.get(f"/{n}").status_code == 404

    hops = {hop for hop, _, _ in seen}
    assert hops == {
        "before_request",
        "view",
        "errorhandler",
        "after_request",
        "teardown_request",
    }
    assert len(seen) == 10 * 4 + 5
    assert {loop for _, loop, _ in seen} == {runner.loop}
    # Every hop ran in the loop's own thread, never in the request's.
    assert {ident for _, _, ident in seen} == {runner._current.thread.ident}  # type: ignore[union-attr]


def test_flask_context_visible(shared_app: Flask) -> None:
    @shared_app.before_request
    def before() -> None:
        g.user = "ada"
        session["visits"] = session.get("visits", 0) + 1
        cv.set("from-before")

    @shared_app.route("/<name>")
    async def view(name: str) -> dict[str, t.Any]:
        return {
            "app": current_app.name,
            "path": request.path,
            "name": name,
            "user": g.user,
            "visits": session["visits"],
            "cv": cv.get(),
        }

    client = shared_app.test_client()
    client.get("/x")
    assert client.get("/y").json == {
        "app": shared_app.name,
        "path": "/y",
        "name": "y",
        "user": "ada",
        "visits": 2,
        "cv": "from-before",
    }


def test_contextvar_changes_come_back(runner: SharedLoop) -> None:
    other: contextvars.ContextVar[int] = contextvars.ContextVar("other")
    token = cv.set("caller")

    async def change() -> str:
        seen = cv.get()
        cv.set("coroutine")
        other.set(1)
        return seen

    try:
        assert runner.async_to_sync(change)() == "caller"
        assert cv.get() == "coroutine"
        assert other.get() == 1
    finally:
        cv.reset(token)


def test_contextvar_changes_come_back_to_view(shared_app: Flask) -> None:
    async def load() -> None:
        g.loaded = True
        cv.set("loaded")

    @shared_app.route("/")
    def view() -> str:
        current_app.ensure_sync(load)()
        return f"{g.loaded} {cv.get()}"

    assert shared_app.test_client().get("/").text == "True loaded"


class _Marker:
    """Something a request leaves in ``g``."""


@pytest.mark.parametrize("blocking_warning", [1.0, None])
def test_the_request_that_starts_the_loop_is_freed(
    app: Flask, blocking_warning: float | None
) -> None:
    """The loop (its self-pipe reader) and the watchdog's heartbeat are made
    outside the request that starts them, so they do not hold on to its
    context: once a request ends, its ``g`` is freed, the first one's too.
    """
    runner = SharedLoop(app, blocking_warning=blocking_warning)
    markers: list[weakref.ref[_Marker]] = []

    @app.route("/")
    async def view() -> str:
        marker = _Marker()
        g.marker = marker
        markers.append(weakref.ref(marker))
        await asyncio.sleep(0)
        return "ok"

    try:
        client = app.test_client()

        for _ in range(3):
            assert client.get("/").text == "ok"

        deadline = time.monotonic() + 5

        # The loop thread lets go of a finished call's task on its next pass.
        while any(ref() is not None for ref in markers):
            assert time.monotonic() < deadline, [ref() for ref in markers]
            gc.collect()
            time.sleep(0.01)
    finally:
        runner.close()


def test_concurrent_requests_interleave(shared_app: Flask, runner: SharedLoop) -> None:
    n = 8
    inside = 0
    everyone_in: asyncio.Event | None = None
    loops = set()

    @shared_app.route("/")
    async def view() -> str:
        nonlocal inside, everyone_in
        if everyone_in is None:
            everyone_in = asyncio.Event()
        loops.add(asyncio.get_running_loop())
        inside += 1
        if inside == n:
            everyone_in.set()
        # Returns only once all n requests are inside the view at once.
        await asyncio.wait_for(everyone_in.wait(), PATIENCE)
        return "ok"

    results: list[str] = []

    def request_once() -> None:
        results.append(shared_app.test_client().get("/").text)

    threads = [threading.Thread(target=request_once) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert results == ["ok"] * n
    assert loops == {runner.loop}


def test_calls_queued_while_loop_is_busy_all_complete(runner: SharedLoop) -> None:
    loop = runner.loop
    state = runner._current
    assert state is not None
    busy = threading.Event()
    release = threading.Event()

    def block() -> None:
        busy.set()
        release.wait(PATIENCE)

    loop.call_soon_threadsafe(block)
    assert busy.wait(PATIENCE)

    async def answer(n: int) -> int:
        return n

    results: list[int] = []
    threads = [
        threading.Thread(
            target=lambda n=n: results.append(runner.async_to_sync(answer)(n))
        )
        for n in range(3)
    ]
    for thread in threads:
        thread.start()
    for _ in range(PATIENCE * 1000):  # all three handed over while the loop is busy
        if len(state.calls) == 3:
            break
        threading.Event().wait(0.001)
    assert len(state.calls) == 3
    assert results == []
    release.set()
    for thread in threads:
        thread.join()
    assert sorted(results) == [0, 1, 2]
    assert not state.calls


def test_threads_race_on_one_lock(shared_app: Flask) -> None:
    lock: asyncio.Lock | None = None
    queue: asyncio.Queue[int] | None = None
    inside = 0
    most_inside = 0
    entered = 0

    @shared_app.route("/<int:n>")
    async def view(n: int) -> str:
        nonlocal lock, queue, inside, most_inside, entered
        if lock is None:  # created on first use, bound to the first loop
            lock = asyncio.Lock()
            queue = asyncio.Queue()
        assert queue is not None
        async with lock:
            inside += 1
            most_inside = max(most_inside, inside)
            entered += 1
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            inside -= 1
        queue.put_nowait(n)
        return str(await queue.get())

    rounds = 50
    statuses: list[int] = []

    def hammer() -> None:
        client = shared_app.test_client()
        for n in range(rounds):
            statuses.append(client.get(f"/{n}").status_code)

    threads = [threading.Thread(target=hammer) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert statuses == [200] * (2 * rounds)
    assert entered == 2 * rounds
    assert most_inside == 1


def test_default_bridge_breaks_loop_bound_objects(
    app: Flask, asyncext_shared_loop: SharedLoop | None
) -> None:
    """The same view without the runner: a queue bound to the first request's
    loop fails in the second. This is what the runner fixes.
    """
    if asyncext_shared_loop is not None:
        pytest.skip("Flask's default bridge is replaced in this run")

    queue: asyncio.Queue[int] | None = None

    @app.route("/")
    async def view() -> str:
        nonlocal queue
        if queue is None:
            queue = asyncio.Queue()
        waiter = asyncio.ensure_future(queue.get())
        await asyncio.sleep(0)
        queue.put_nowait(1)
        return str(await waiter)

    client = app.test_client()
    assert client.get("/").text == "1"
    with pytest.raises(RuntimeError, match="different event loop"):
        client.get("/")


def test_call_from_loop_thread_raises(runner: SharedLoop) -> None:
    created = 0

    async def inner() -> None:
        nonlocal created
        created += 1

    async def outer() -> None:
        runner.async_to_sync(inner)()

    with pytest.raises(RuntimeError, match="this thread is running an event loop"):
        runner.async_to_sync(outer)()
    assert created == 0


def test_call_from_other_running_loop_raises(runner: SharedLoop) -> None:
    async def inner() -> None:
        pass  # pragma: no cover

    async def main() -> None:
        runner.async_to_sync(inner)()

    with pytest.raises(RuntimeError, match="Await it instead"):
        asyncio.run(main())


def test_exception_type_and_traceback(runner: SharedLoop) -> None:
    class Failed(Exception):
        pass

    async def failing_coroutine() -> None:
        await asyncio.sleep(0)
        raise Failed("boom")

    with pytest.raises(Failed, match="boom") as info:
        runner.async_to_sync(failing_coroutine)()

    names = [frame.name for frame in traceback.extract_tb(info.value.__traceback__)]
    assert names[-1] == "failing_coroutine"
    assert "test_exception_type_and_traceback" in names


def test_exception_chains_to_handled_exception(runner: SharedLoop) -> None:
    async def handler() -> None:
        assert isinstance(sys.exc_info()[1], KeyError)
        raise ValueError("while handling")

    def call_while_handling() -> None:
        try:
            raise KeyError("original")
        except KeyError:
            runner.async_to_sync(handler)()

    with pytest.raises(ValueError, match="while handling") as info:
        call_while_handling()

    assert isinstance(info.value.__context__, KeyError)


def test_async_error_handler_sees_exception(shared_app: Flask) -> None:
    class Custom(Exception):
        pass

    @shared_app.errorhandler(Custom)
    async def handle(e: Custom) -> tuple[str, int]:
        return type(e).__name__, 418

    @shared_app.route("/")
    async def view() -> str:
        raise Custom

    response = shared_app.test_client().get("/")
    assert (response.status_code, response.text) == (418, "Custom")


interrupted = threading.Event()
senders: list[threading.Thread] = []


def no_calls_left(runner: SharedLoop) -> bool:
    """Whether the runner's record of calls in flight empties within
    ``PATIENCE``. A cancelled call leaves it when its task has finished
    cancelling, which may take one more pass of the loop than a later call
    that starts eagerly (Python >= 3.12) and finishes at once.
    """
    calls = runner._current.calls  # type: ignore[union-attr]
    deadline = time.monotonic() + PATIENCE

    while calls and time.monotonic() < deadline:
        time.sleep(0.001)

    return not calls


#: Raise only while the main thread runs code of this file (None: anywhere).
raise_in: list[str | None] = [None]


def interrupt_soon(main: int, where: str | None = None) -> threading.Thread:
    """Signal the main thread until the handler installed by
    ``interruptible`` has raised there (in a function of file ``where``).
    """
    raise_in[0] = where

    def send() -> None:
        for _ in range(PATIENCE * 1000):
            if interrupted.is_set():
                return
            signal.pthread_kill(main, signal.SIGUSR1)
            interrupted.wait(0.001)

    interrupted.clear()
    thread = threading.Thread(target=send)
    senders.append(thread)
    thread.start()
    return thread


@pytest.fixture
def interruptible() -> cabc.Iterator[None]:
    """SIGUSR1 raises ``Interrupted`` in the main thread, once per
    ``interrupt_soon``, wherever the main thread is.
    """

    def handler(signum: int, frame: t.Any) -> None:
        where = raise_in[0]
        filename = frame.f_code.co_filename
        # Never inside coverage's tracer: its lock would stay held.
        if (
            not interrupted.is_set()
            and where in (None, filename)
            and f"{os.sep}coverage{os.sep}" not in filename
        ):
            interrupted.set()
            raise Interrupted

    previous = signal.signal(signal.SIGUSR1, handler)
    yield
    while senders:
        senders.pop().join()
    signal.signal(signal.SIGUSR1, previous)


@pytest.mark.usefixtures("interruptible")
def test_interrupted_wait_cancels_coroutine(
    runner: SharedLoop, asyncio_errors: list[logging.LogRecord]
) -> None:
    main = threading.get_ident()
    cancelled = threading.Event()

    async def forever() -> None:
        # The main thread is waiting for this coroutine from now on.
        interrupt_soon(main)
        try:  # bounded: a broken runner fails the test instead of hanging it
            await asyncio.wait_for(asyncio.Event().wait(), PATIENCE)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with pytest.raises(Interrupted):
        runner.async_to_sync(forever)()

    assert cancelled.wait(PATIENCE)

    # The loop is not wedged: the next call runs on the same loop.
    async def loop_now() -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    assert runner.async_to_sync(loop_now)() is runner.loop
    assert no_calls_left(runner)
    assert not asyncio_errors


@pytest.mark.usefixtures("interruptible")
def test_interrupted_while_running_sync_work(runner: SharedLoop) -> None:
    """The waiting thread runs the coroutine's thread-sensitive sync work and
    is interrupted there: the sync function raises, the coroutine sees it.
    """
    from asgiref.sync import sync_to_async

    main = threading.get_ident()

    def blocking() -> None:
        interrupt_soon(main)
        interrupted.wait(PATIENCE)  # raises Interrupted here, in this thread
        threading.Event().wait(PATIENCE)  # pragma: no cover

    seen: list[BaseException] = []

    async def coroutine() -> str:
        try:
            await sync_to_async(blocking)()
        except Interrupted as e:
            seen.append(e)
        return "went on"

    assert runner.async_to_sync(coroutine)() == "went on"
    assert len(seen) == 1


@pytest.mark.usefixtures("interruptible")
def test_interrupted_before_task_started(
    runner: SharedLoop, asyncio_errors: list[logging.LogRecord]
) -> None:
    """The waiting thread is interrupted while the loop is busy, so the task
    is cancelled before it starts: the coroutine is closed, never left
    un-awaited. (Python >= 3.12 runs the first step at once: the coroutine is
    then cancelled at its first await.)
    """
    loop = runner.loop
    busy = threading.Event()
    release = threading.Event()

    def block() -> None:
        busy.set()
        release.wait(PATIENCE)

    loop.call_soon_threadsafe(block)
    assert busy.wait(PATIENCE)
    started = 0

    async def never_started() -> None:
        # Python >= 3.12 starts the task eagerly, before the cancellation.
        nonlocal started  # pragma: no cover
        started += 1  # pragma: no cover
        await asyncio.wait_for(asyncio.Event().wait(), PATIENCE)  # pragma: no cover

    # Raised while the main thread waits in the runner's code.
    interrupt_soon(threading.get_ident(), loop_runner.__file__)
    with pytest.raises(Interrupted):
        runner.async_to_sync(never_started)()
    release.set()

    async def noop() -> None:
        pass

    runner.async_to_sync(noop)()
    gc.collect()
    eager = bool(loop_runner._EAGER)
    assert started == (1 if eager else 0)
    assert no_calls_left(runner)
    assert not asyncio_errors


def test_abandoned_before_started(runner: SharedLoop) -> None:
    """A call whose caller gave up before the loop started it is closed and
    never started.
    """
    state = runner._current or runner._start()

    async def never_started() -> None:
        pass  # pragma: no cover

    call = loop_runner.Call(state, never_started(), contextvars.copy_context(), None)
    state.calls.add(call)
    state.loop.call_soon_threadsafe(call.abandon)
    state.loop.call_soon_threadsafe(call.start)
    assert call.waiter.queue.get(timeout=PATIENCE) is None
    assert isinstance(call.error, asyncio.CancelledError)
    assert call.task is None
    assert not state.calls
    # A late abandon() does nothing more.
    call.error = None
    state.loop.call_soon_threadsafe(call.abandon)
    assert runner.async_to_sync(answer)() == 42
    assert call.error is None


async def answer() -> int:
    return 42


def test_task_creation_failure_reaches_caller(
    runner: SharedLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Creating the call's task fails on the loop: the caller gets the
    error, the coroutine is closed, and the loop still works.
    """
    runner.loop  # noqa: B018

    def failing_task(coro: t.Any, **kwargs: t.Any) -> t.NoReturn:
        coro.close()  # the runner's own wrapper, never started
        raise Interrupted

    async def never_started() -> None:
        pass  # pragma: no cover

    monkeypatch.setattr(loop_runner, "_new_task", failing_task)
    with pytest.raises(Interrupted):
        runner.async_to_sync(never_started)()
    monkeypatch.undo()
    gc.collect()

    assert runner.async_to_sync(answer)() == 42
    state = runner._current
    assert state is not None
    assert not state.calls


def test_call_racing_with_close_is_refused(runner: SharedLoop) -> None:
    """A call that reaches the loop while it is closing is refused with a
    clear error.
    """
    state = runner._current or runner._start()
    state.state = loop_runner.State.CLOSING  # as set by close()

    async def refused() -> None:
        pass  # pragma: no cover

    try:
        with pytest.raises(RuntimeError, match="event loop was closed"):
            runner.async_to_sync(refused)()
    finally:
        state.state = loop_runner.State.RUNNING
    gc.collect()


def test_background_tasks_outlive_response(
    shared_app: Flask, runner: SharedLoop, asyncio_errors: list[logging.LogRecord]
) -> None:
    go: asyncio.Event | None = None
    finished: list[str] = []

    async def work(name: str) -> None:
        assert go is not None
        await go.wait()
        await asyncio.sleep(0)
        finished.append(name)

    @shared_app.route("/<name>")
    async def view(name: str) -> str:
        nonlocal go
        go = go or asyncio.Event()
        # No reference kept: the runner must keep the task alive.
        asyncio.create_task(work(name))  # noqa: RUF006
        return "sent"

    client = shared_app.test_client()
    assert client.get("/a").text == "sent"
    assert client.get("/b").text == "sent"
    gc.collect()
    assert runner.wait_tasks(timeout=0) is False
    assert finished == []
    assert go is not None
    runner.loop.call_soon_threadsafe(go.set)
    assert runner.wait_tasks() is True
    assert sorted(finished) == ["a", "b"]
    assert not asyncio_errors


def test_wait_tasks_waits_for_tasks_they_create(runner: SharedLoop) -> None:
    finished: list[int] = []

    async def child(n: int) -> None:
        await asyncio.sleep(0)
        finished.append(n)
        if n < 3:
            asyncio.create_task(child(n + 1))  # noqa: RUF006

    async def start() -> None:
        asyncio.create_task(child(0))  # noqa: RUF006

    runner.async_to_sync(start)()
    assert runner.wait_tasks(timeout=PATIENCE) is True
    assert finished == [0, 1, 2, 3]


def test_wait_tasks_before_start(runner: SharedLoop) -> None:
    assert runner.wait_tasks() is True
    assert runner._current is None


def test_close_waits_for_background_tasks(
    runner: SharedLoop, asyncio_errors: list[logging.LogRecord]
) -> None:
    finished: list[str] = []

    async def work() -> None:
        for _ in range(5):
            await asyncio.sleep(0)
        finished.append("work")

    async def start() -> None:
        asyncio.create_task(work())  # noqa: RUF006

    runner.async_to_sync(start)()
    loop = runner.loop
    thread = runner._current.thread  # type: ignore[union-attr]
    runner.close()
    assert finished == ["work"]
    assert loop.is_closed()
    # close() returns once the loop is released; the thread ends right after.
    thread.join(PATIENCE)
    assert not thread.is_alive()
    assert runner._current is None
    assert not asyncio_errors


def test_close_timeout_cancels_cleanly(
    runner: SharedLoop, asyncio_errors: list[logging.LogRecord]
) -> None:
    cancelled: list[str] = []
    finalized: list[str] = []

    async def stuck() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append("stuck")
            raise

    async def agen() -> cabc.AsyncIterator[int]:
        try:
            yield 1
            yield 2  # pragma: no cover
        finally:
            finalized.append("agen")

    async def start() -> None:
        asyncio.create_task(stuck())  # noqa: RUF006
        iterator = agen()
        await iterator.__anext__()
        asyncio.get_running_loop().__dict__.setdefault("keep", iterator)

    runner.async_to_sync(start)()
    loop = runner.loop
    runner.close(timeout=0)
    gc.collect()
    assert cancelled == ["stuck"]
    assert finalized == ["agen"]
    assert loop.is_closed()
    assert not asyncio_errors


def test_close_from_loop_thread_raises(runner: SharedLoop) -> None:
    async def close_here() -> None:
        runner.close()

    with pytest.raises(RuntimeError, match="running an event loop"):
        runner.async_to_sync(close_here)()


def test_close_twice_and_restart(runner: SharedLoop) -> None:
    runner.close()  # not started: nothing to do

    async def loop_now() -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    first = runner.async_to_sync(loop_now)()
    assert runner.loop is first
    runner.close()
    runner.close()
    second = runner.async_to_sync(loop_now)()
    assert second is not first
    assert first.is_closed()
    assert not second.is_closed()


def test_concurrent_close(runner: SharedLoop) -> None:
    release: asyncio.Event | None = None

    async def start() -> None:
        nonlocal release
        release = asyncio.Event()
        asyncio.create_task(release.wait())  # noqa: RUF006

    runner.async_to_sync(start)()
    state = runner._current
    assert state is not None
    closers = [threading.Thread(target=runner.close) for _ in range(2)]
    for closer in closers:
        closer.start()
    for _ in range(PATIENCE * 1000):  # the first closer waits for the task
        if state.state is loop_runner.State.CLOSING:
            break
        threading.Event().wait(0.001)
    assert state.state is loop_runner.State.CLOSING
    assert runner._current is None
    assert release is not None
    state.loop.call_soon_threadsafe(release.set)
    for closer in closers:
        closer.join()
    state.thread.join(PATIENCE)
    assert not state.thread.is_alive()
    assert state.state is loop_runner.State.CLOSED


def test_close_twice_on_one_loop_thread(runner: SharedLoop) -> None:
    """The loop thread itself ignores a second request to shut down."""
    state = runner._current or runner._start()
    runner._current = None
    state.close(PATIENCE)
    state.close(PATIENCE)
    assert state.loop.is_closed()


def test_call_after_loop_closed(runner: SharedLoop) -> None:
    """A call that read the loop just before close() finished is refused
    with a clear error; its coroutine and awaitable are closed.
    """
    runner.loop  # noqa: B018
    state = runner._current
    runner.close()
    runner._current = state

    class Awaitable:
        def __await__(self) -> cabc.Generator[t.Any, None, None]:
            yield  # pragma: no cover

    async def coroutine() -> None:
        pass  # pragma: no cover

    try:
        with pytest.raises(RuntimeError, match="event loop was closed"):
            runner.async_to_sync(coroutine)()
        with pytest.raises(RuntimeError, match="event loop was closed"):
            runner.async_to_sync(Awaitable)()
    finally:
        runner._current = None
    gc.collect()


def test_calls_left_at_loop_exit_fail(runner: SharedLoop) -> None:
    """A call handed over after the loop's last iteration is failed, not
    left waiting forever.
    """
    runner.loop  # noqa: B018
    state = runner._current
    assert state is not None

    async def coroutine() -> None:
        pass  # pragma: no cover

    call = loop_runner.Call(state, coroutine(), contextvars.copy_context(), None)
    state.calls.add(call)
    # A call already finished, whose caller has not woken up yet, is left be.
    finished = loop_runner.Call(state, coroutine(), contextvars.copy_context(), None)
    finished.finished = True
    finished.result = "result"
    state.calls.add(finished)
    runner.close()
    assert call.waiter.queue.get(timeout=PATIENCE) is None
    assert isinstance(call.error, RuntimeError)
    assert call.finished
    assert finished.waiter.queue.empty()
    assert (finished.error, finished.result) == (None, "result")
    finished.awaitable.close()  # type: ignore[attr-defined]


def test_start_race_keeps_first_loop(runner: SharedLoop) -> None:
    """Two threads start the loop at once: the one that loses the race uses
    the winner's loop instead of starting a second one.
    """
    loop = runner.loop
    state = runner._current
    threads = threading.active_count()

    class LostRace:
        """The runner's lock, acquired just after the winner released it."""

        def __enter__(self) -> None:
            runner._current = state

        def __exit__(self, *exc_info: object) -> None:
            pass

    runner._current = None
    runner._lock = LostRace()  # type: ignore[assignment]
    try:
        assert runner.loop is loop
    finally:
        runner._lock = threading.Lock()
    assert runner._current is state
    assert threading.active_count() == threads


def test_loop_property_starts_loop(runner: SharedLoop) -> None:
    loop = runner.loop
    state = runner._current
    assert state is not None
    assert state.thread.is_alive()
    # Its own thread runs it, whether or not a call is in flight.
    assert loop.is_running()

    async def answer() -> int:
        return 42

    assert asyncio.run_coroutine_threadsafe(answer(), loop).result(PATIENCE) == 42


def save_coverage() -> None:  # pragma: no cover (runs in a forked child)
    """Save what coverage measured in a forked child (os._exit skips it)."""
    try:
        import coverage
    except ImportError:
        return
    cov = coverage.Coverage.current()
    if cov is not None:
        cov.stop()
        cov.save()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings(
    "ignore:This process .* is multi-threaded:DeprecationWarning"
)
def test_forked_child_gets_its_own_loop(shared_app: Flask, runner: SharedLoop) -> None:
    idle = SharedLoop()  # never started: the fork hook leaves it alone

    @shared_app.route("/")
    async def view() -> str:
        return f"{os.getpid()} {id(asyncio.get_running_loop())}"

    client = shared_app.test_client()
    parent_loop = runner.loop
    assert client.get("/").text == f"{os.getpid()} {id(parent_loop)}"
    read_end, write_end = os.pipe()
    pid = os.fork()

    if pid == 0:  # pragma: no cover (child; its coverage is not collected)
        status = 1
        try:
            os.close(read_end)
            text = shared_app.test_client().get("/").text
            child_loop = runner.loop
            ok = (
                text == f"{os.getpid()} {id(child_loop)}"
                and child_loop is not parent_loop
                and idle._current is None
            )
            runner.close()
            os.write(write_end, b"ok" if ok else text.encode())
            status = 0
        finally:
            save_coverage()
            os._exit(status)

    os.close(write_end)
    with os.fdopen(read_end, "rb") as reader:
        report = reader.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert report == b"ok"
    # The parent's loop is untouched.
    assert runner.loop is parent_loop
    assert client.get("/").text == f"{os.getpid()} {id(parent_loop)}"
    assert idle._current is None


def test_interpreter_exit_waits_and_closes(tmp_path: t.Any) -> None:
    script = tmp_path / "app.py"
    script.write_text(
        textwrap.dedent(
            """
            import asyncio
            import threading
            from flask import Flask
            from flask_asyncext.shared_loop import SharedLoop

            app = Flask(__name__)
            SharedLoop(app)

            gate = threading.Event()

            async def later():
                while not gate.is_set():  # set once "sent" is printed
                    await asyncio.sleep(0.001)
                print("background task finished", flush=True)

            @app.route("/")
            async def view():
                asyncio.create_task(later())
                # The loop's thread pool is shut down at exit too, without
                # starting a thread (Python 3.12 refuses one then).
                return await asyncio.get_running_loop().run_in_executor(
                    None, lambda: "sent"
                )

            print(app.test_client().get("/").text, flush=True)
            gate.set()  # the task finishes at interpreter exit, not before
            """
        )
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root, PYTHONDEVMODE="1")
    result = subprocess.run(
        [sys.executable, "-W", "error", str(script)],
        capture_output=True,
        text=True,
        env=env,
        timeout=PATIENCE * 2,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["sent", "background task finished"]
    assert result.stderr == ""


class _InterruptingSet(set):  # type: ignore[type-arg]
    """The runner's set of calls, with a signal handler's exception landing
    when a call is added to it: before the call is handed to the loop.
    """

    def add(self, item: object) -> None:
        raise Interrupted


def test_interrupt_before_handover_closes_the_coroutine(
    runner: SharedLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An interrupt after the coroutine was made but before the loop saw the
    call: the caller closes it (no "never awaited" warning, warnings being
    errors) and the loop never hears of the call.
    """
    state = runner._current or runner._start()
    created: list[cabc.Coroutine[t.Any, t.Any, int]] = []

    def make() -> cabc.Coroutine[t.Any, t.Any, int]:
        created.append(answer())
        return created[-1]

    monkeypatch.setattr(state, "calls", _InterruptingSet())

    with pytest.raises(Interrupted):
        runner.async_to_sync(make)()

    assert len(created) == 1
    assert created[0].cr_frame is None  # closed here, at once
    assert not state.calls
    monkeypatch.undo()
    assert runner.async_to_sync(answer)() == 42


def test_interrupt_after_the_call_finished_leaves_it_be(
    runner: SharedLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An interrupt landing once the loop has finished the call, before the
    caller saw it: nothing is cancelled (there is nothing left to cancel),
    and the runner goes on serving.
    """
    runner._current or runner._start()
    wait = loop_runner.Waiter.wait
    abandoned: list[object] = []

    def wait_then_interrupted(self: loop_runner.Waiter) -> None:
        wait(self)
        raise Interrupted

    monkeypatch.setattr(loop_runner.Waiter, "wait", wait_then_interrupted)
    monkeypatch.setattr(loop_runner.Call, "abandon", abandoned.append)

    with pytest.raises(Interrupted):
        runner.async_to_sync(answer)()

    monkeypatch.undo()
    assert abandoned == []
    assert runner.async_to_sync(answer)() == 42


def test_interrupted_close_still_shuts_the_loop_down(
    runner: SharedLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An interrupt in ``close()`` once the loop is detached from the runner:
    the loop shuts down by itself, and the runner starts a new one.
    """
    assert runner.async_to_sync(answer)() == 42
    owner = runner._current
    assert owner is not None

    def interrupted(self: loop_runner.LoopThread, timeout: float | None) -> None:
        raise Interrupted

    monkeypatch.setattr(loop_runner.LoopThread, "close", interrupted)

    with pytest.raises(Interrupted):
        runner.close(timeout=1)

    monkeypatch.undo()
    owner.thread.join(PATIENCE)
    assert not owner.thread.is_alive()
    assert owner.loop.is_closed()
    assert runner.async_to_sync(answer)() == 42
    assert runner._current is not owner


class _InterruptingLock:
    """The runner's lock, with a signal handler's exception landing as
    ``close()`` takes it.
    """

    def __enter__(self) -> None:
        raise Interrupted

    def __exit__(self, *exc_info: object) -> None:
        pass  # pragma: no cover


def test_close_interrupted_before_detaching_leaves_the_loop_running(
    runner: SharedLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An interrupt before ``close()`` detached the loop: the loop serves on,
    and the next ``close()`` closes it.
    """
    assert runner.async_to_sync(answer)() == 42
    owner = runner._current
    assert owner is not None
    monkeypatch.setattr(runner, "_lock", _InterruptingLock())

    with pytest.raises(Interrupted):
        runner.close(timeout=1)

    monkeypatch.undo()
    assert runner._current is owner
    assert runner.async_to_sync(answer)() == 42
    runner.close(timeout=1)
    assert owner.loop.is_closed()


def test_hand_on_skips_the_finished_marker(runner: SharedLoop) -> None:
    """Work handed on after the caller left goes to the fallback thread; the
    "call finished" marker the loop may have queued meanwhile is dropped.
    """
    owner = runner._current or runner._start()
    waiter = loop_runner.Waiter(owner)
    waiter.wake()  # the marker, ahead of the work
    waiter.gone = True
    future = waiter.submit(threading.current_thread)
    assert future.result(PATIENCE) is not threading.current_thread()
    assert waiter.queue.empty()
