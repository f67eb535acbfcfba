from __future__ import annotations

import asyncio
import collections.abc as cabc
import contextvars
import gc
import inspect
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import traceback
import typing as t

import pytest
from flask import current_app
from flask import Flask
from flask import g
from flask import request
from flask import session

from flask_asyncext import shared_loop as shared_loop_module
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
    # Requests that succeed first: nothing else is on the loop, so the
    # request thread drives every hop itself, with no hand-off.
    for n in range(0, 10, 2):
        assert client.get(f"/{n}").status_code == 200

    assert {ident for _, _, ident in seen} == {threading.get_ident()}
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
    # An error handler runs while an exception is handled: on the idle driver
    # (the hops right after it may find that driver still running the loop).
    handled_by = {ident for hop, _, ident in seen if hop == "errorhandler"}
    assert handled_by == {runner._current.thread.ident}  # type: ignore[union-attr]


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


def test_calls_arriving_together_share_one_wake_up(runner: SharedLoop) -> None:
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
    for _ in range(PATIENCE * 1000):  # all three queued while the loop is busy
        if len(state.pending) == 3:
            break
        threading.Event().wait(0.001)
    assert len(state.pending) == 3
    assert state.wake_scheduled
    release.set()
    for thread in threads:
        thread.join()
    assert sorted(results) == [0, 1, 2]
    assert not state.pending
    assert not state.wake_scheduled


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

    with pytest.raises(RuntimeError, match="thread that is running an event loop"):
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


def interrupt_wait_soon(main: int) -> threading.Thread:
    """Signal the main thread until it is interrupted in the runner's wait
    (the handler installed by ``interruptible`` raises only there).
    """

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


interrupted = threading.Event()
run_code = SharedLoop._run.__code__
#: The line where the calling thread waits for the loop (read at import time,
#: with the code that runs).
WAIT_LINE = next(
    number
    for number, line in enumerate(
        inspect.getsourcelines(SharedLoop._run)[0], run_code.co_firstlineno
    )
    if line.strip() == "call.done.acquire()"
)
senders: list[threading.Thread] = []


@pytest.fixture
def interruptible() -> cabc.Iterator[None]:
    def handler(signum: int, frame: t.Any) -> None:
        waiting = frame.f_code is run_code and frame.f_lineno == WAIT_LINE
        if waiting and not interrupted.is_set():
            interrupted.set()
            raise Interrupted

    previous = signal.signal(signal.SIGUSR1, handler)
    yield
    while senders:
        senders.pop().join()
    signal.signal(signal.SIGUSR1, previous)


def drive_elsewhere(runner: SharedLoop) -> tuple[threading.Thread, threading.Event]:
    """Make another thread drive the loop (it waits in a coroutine until the
    returned event is set), so that calls from this thread are handed over.
    """
    driving = threading.Event()
    release = threading.Event()

    async def hold() -> None:
        driving.set()
        for _ in range(PATIENCE * 1000):
            if release.is_set():
                return
            await asyncio.sleep(0.001)

    thread = threading.Thread(target=runner.async_to_sync(hold))
    thread.start()
    assert driving.wait(PATIENCE)
    return thread, release


@pytest.mark.usefixtures("interruptible")
def test_interrupted_wait_cancels_coroutine(
    runner: SharedLoop, asyncio_errors: list[logging.LogRecord]
) -> None:
    main = threading.get_ident()
    cancelled = threading.Event()
    driver, release = drive_elsewhere(runner)

    async def forever() -> None:
        interrupt_wait_soon(main)
        try:  # bounded: a broken runner fails the test instead of hanging it
            await asyncio.wait_for(asyncio.Event().wait(), PATIENCE)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with pytest.raises(Interrupted):
        runner.async_to_sync(forever)()

    assert cancelled.wait(PATIENCE)
    release.set()
    driver.join()

    # The loop is not wedged: the next call runs on the same loop.
    async def loop_now() -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    assert runner.async_to_sync(loop_now)() is runner.loop
    assert not asyncio_errors


def in_selector(frame: t.Any) -> bool:
    return bool(
        frame.f_code.co_name == "select"
        and frame.f_globals.get("__name__") == "selectors"
    )


@pytest.fixture
def interruptible_driver() -> cabc.Iterator[None]:
    """Like ``interruptible``, but raises while this thread drives the loop
    and waits for events in the loop's selector.
    """

    def handler(signum: int, frame: t.Any) -> None:
        if in_selector(frame) and not interrupted.is_set():
            interrupted.set()
            raise Interrupted

    previous = signal.signal(signal.SIGUSR1, handler)
    yield
    while senders:
        senders.pop().join()
    signal.signal(signal.SIGUSR1, previous)


@pytest.mark.usefixtures("interruptible_driver")
def test_interrupted_driver_hands_loop_over(
    runner: SharedLoop, asyncio_errors: list[logging.LogRecord]
) -> None:
    """The thread driving the loop is interrupted mid-drive: its coroutine is
    cancelled, and the calls of other threads still complete.
    """
    main = threading.get_ident()
    cancelled = threading.Event()
    waiting: asyncio.Event | None = None
    gate: asyncio.Event | None = None
    results: list[str] = []

    async def other() -> str:
        assert waiting is not None
        waiting.set()
        assert gate is not None
        await asyncio.wait_for(gate.wait(), PATIENCE)
        return "other"

    def other_thread() -> None:
        results.append(runner.async_to_sync(other)())

    follower = threading.Thread(target=other_thread)

    async def forever() -> None:
        nonlocal waiting, gate
        waiting, gate = asyncio.Event(), asyncio.Event()
        follower.start()
        await asyncio.wait_for(waiting.wait(), PATIENCE)
        interrupt_wait_soon(main)
        try:
            await asyncio.wait_for(asyncio.Event().wait(), PATIENCE)
        except asyncio.CancelledError:
            cancelled.set()
            gate.set()
            raise

    with pytest.raises(Interrupted):
        runner.async_to_sync(forever)()

    follower.join()
    assert results == ["other"]
    assert cancelled.is_set()

    async def where() -> tuple[asyncio.AbstractEventLoop, int]:
        return asyncio.get_running_loop(), threading.get_ident()

    assert runner.async_to_sync(where)() == (runner.loop, main)
    assert not asyncio_errors


@pytest.mark.usefixtures("interruptible")
@pytest.mark.parametrize("closing", [False, True])
def test_interrupted_before_task_started(
    runner: SharedLoop, closing: bool, asyncio_errors: list[logging.LogRecord]
) -> None:
    """The waiting thread is interrupted while the loop is busy, so the task
    is cancelled before it starts (or, while closing, never created): the
    coroutine is closed, never left un-awaited. (Python >= 3.12 runs the first
    step at once: the coroutine is then cancelled at its first await.)
    """
    loop = runner.loop
    state = runner._current
    assert state is not None
    busy = threading.Event()
    release = threading.Event()

    def block() -> None:
        busy.set()
        release.wait(PATIENCE)
        state.closing = closing

    loop.call_soon_threadsafe(block)
    assert busy.wait(PATIENCE)
    started = 0

    async def never_started() -> None:
        # Python >= 3.12 starts the task eagerly, before the cancellation.
        nonlocal started  # pragma: no cover
        started += 1  # pragma: no cover
        await asyncio.wait_for(asyncio.Event().wait(), PATIENCE)  # pragma: no cover

    interrupt_wait_soon(threading.get_ident())
    with pytest.raises(Interrupted):
        runner.async_to_sync(never_started)()
    release.set()

    async def noop() -> None:
        pass

    if closing:
        # The idle driver shut the loop down.
        state.thread.join(PATIENCE)
        assert not state.thread.is_alive()
        with pytest.raises(RuntimeError, match="closed"):
            runner.async_to_sync(noop)()
        runner._current = None
    runner.async_to_sync(noop)()
    gc.collect()
    eager = bool(shared_loop_module._EAGER)
    assert started == (1 if eager and not closing else 0)
    assert not asyncio_errors


def test_driver_interrupted_before_task_created(
    runner: SharedLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The driving thread is interrupted before its task exists: the
    coroutine is closed, never left un-awaited, and the loop still works.
    """
    runner.loop  # noqa: B018

    def interrupted_task(coro: t.Any, **kwargs: t.Any) -> t.NoReturn:
        coro.close()  # the runner's own wrapper, never started
        raise Interrupted

    async def never_started() -> None:
        pass  # pragma: no cover

    monkeypatch.setattr(shared_loop_module, "_new_task", interrupted_task)
    with pytest.raises(Interrupted):
        runner.async_to_sync(never_started)()
    monkeypatch.undo()
    gc.collect()

    async def answer() -> int:
        return 42

    assert runner.async_to_sync(answer)() == 42
    state = runner._current
    assert state is not None
    assert not state.calls


def test_call_racing_with_close_is_refused(runner: SharedLoop) -> None:
    """A thread that takes the idle loop just as it starts closing is refused
    with a clear error, and the loop shuts down.
    """
    runner.loop  # noqa: B018
    state = runner._current
    assert state is not None
    state.closing = True  # as set by close() from another thread

    async def refused() -> None:
        pass  # pragma: no cover

    with pytest.raises(RuntimeError, match="event loop was closed"):
        runner.async_to_sync(refused)()
    state.thread.join(PATIENCE)
    assert not state.thread.is_alive()
    assert state.loop.is_closed()
    runner._current = None
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
    for _ in range(PATIENCE * 1000):  # both closers wait for the task
        if len(state.calls) == 2:
            break
        threading.Event().wait(0.001)
    assert len(state.calls) == 2
    assert release is not None
    state.loop.call_soon_threadsafe(release.set)
    for closer in closers:
        closer.join()
    assert not state.thread.is_alive()
    assert runner._current is None


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
    """A call scheduled after the loop's last iteration is failed, not left
    waiting forever.
    """
    runner.loop  # noqa: B018
    state = runner._current
    assert state is not None

    async def coroutine() -> None:
        pass  # pragma: no cover

    call = shared_loop_module._Call(
        state, coroutine(), contextvars.copy_context(), None
    )
    state.calls.add(call)
    # A call already finished, whose caller has not woken up yet, is left be.
    finished = shared_loop_module._Call(
        state, coroutine(), contextvars.copy_context(), None
    )
    finished.finished = True
    finished.result = "result"
    state.calls.add(finished)
    runner.close()
    assert call.done.acquire(timeout=PATIENCE)
    assert isinstance(call.error, RuntimeError)
    assert call.finished
    assert finished.done.locked()
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
    # Nobody drives an idle loop; work scheduled from another thread wakes
    # the idle driver.
    assert not loop.is_running()

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
