"""The shared loop survives what a request, a signal or a task does to it.

Every test here is bounded: a runner that wedges fails the test (a call that
does not return in time, a subprocess that has to be killed) instead of
hanging the test run.
"""

from __future__ import annotations

import asyncio
import collections.abc as cabc
import dis
import importlib
import inspect
import itertools
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import types
import typing as t

import pytest
from flask import Flask

from flask_asyncext.shared_loop import SharedLoop

#: Upper bound for waits that only end when the code under test misbehaves.
PATIENCE = 30
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def runner() -> cabc.Iterator[SharedLoop]:
    runner = SharedLoop()
    yield runner
    runner.close(timeout=PATIENCE)


def bounded(func: cabc.Callable[[], t.Any], timeout: float = PATIENCE) -> t.Any:
    """Call ``func`` in another thread; fail if it has not returned in time."""
    outcome: list[t.Any] = []

    def target() -> None:
        try:
            outcome.append((True, func()))
        except BaseException as e:
            outcome.append((False, e))

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    assert outcome, f"{func!r} did not return within {timeout} s"
    ok, value = outcome[0]
    if not ok:
        raise value
    return value


def run_script(
    source: str,
    timeout: float = PATIENCE,
    env: dict[str, str] | None = None,
    *,
    measured: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run ``source`` in a new interpreter, killed after ``timeout``.

    With ``measured=False`` coverage does not follow it there.
    """
    child_env = {**os.environ, "PYTHONPATH": ROOT, **(env or {})}

    if not measured:
        for name in ("COVERAGE_PROCESS_CONFIG", "COVERAGE_PROCESS_START"):
            child_env.pop(name, None)

    try:
        return subprocess.run(
            [sys.executable, "-W", "error", "-c", textwrap.dedent(source)],
            capture_output=True,
            text=True,
            env=child_env,
            timeout=timeout,
            check=False,
            cwd=ROOT,
        )
    except subprocess.TimeoutExpired as e:
        pytest.fail(
            f"still running after {timeout} s (wedged): {e.stdout!r} {e.stderr!r}"
        )


async def answer(n: int = 42) -> int:
    await asyncio.sleep(0)
    return n


# --- 1. interrupts at any statement ------------------------------------------


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs setitimer")
@pytest.mark.parametrize(
    "seed",
    [
        1,
        pytest.param(2, marks=pytest.mark.slow),
        pytest.param(3, marks=pytest.mark.slow),
    ],
)
def test_signals_never_wedge_the_runner(seed: int) -> None:
    """SIGALRM every 1-5 ms raises in the main thread wherever it is (in the
    runner's submit, wait, or cancel code) while nine other threads call the
    runner in a loop. Every thread finishes, and afterwards a call works and
    close() returns.
    """
    result = run_script(
        f"""
        import asyncio, faulthandler, random, signal, threading, time
        from flask_asyncext.shared_loop import SharedLoop

        class Alarm(Exception):
            pass

        # The handler raises only while armed, and disarms itself: the except
        # clause and the loop's own back-edge lie outside the try.
        armed = False

        def handler(signum, frame):
            global armed
            if armed:
                armed = False
                raise Alarm

        runner = SharedLoop()

        async def work(n):
            await asyncio.sleep(0)
            return n

        call = runner.async_to_sync(work)
        # At least 2 s and at least 10 interrupts (a loaded machine fires
        # fewer alarms in 2 s), at most 20 s. A wedge dumps every thread.
        faulthandler.dump_traceback_later(50, exit=True)
        begin = time.monotonic()
        deadline, limit = begin + 2, begin + 20
        stop = threading.Event()
        done = []

        def going():
            now = time.monotonic()
            return (now < deadline or interrupts < 10) and now < limit

        def caller():
            n = 0
            while not stop.is_set():
                assert call(n) == n
                n += 1
            done.append(n)

        threads = [threading.Thread(target=caller, daemon=True) for _ in range(9)]
        for thread in threads:
            thread.start()
        signal.signal(signal.SIGALRM, handler)
        rng = random.Random({seed})
        interrupts = calls = 0

        def calling():
            # No loop inside the try below: Python 3.13 checks for signals at
            # a loop's backward jump, which the try's handler does not cover
            # (python/cpython#130279). An alarm that landed in a weak
            # reference callback or a finalizer was swallowed there ("Exception
            # ignored in"), but disarmed the handler: return, to arm it again.
            global calls
            while armed and going():
                call(calls)
                calls += 1

        while going():
            try:
                # Armed, an alarm may land anywhere in here, the test included.
                armed = True
                signal.setitimer(signal.ITIMER_REAL, rng.uniform(0.001, 0.005))
                calling()
                armed = False
            except Alarm:
                interrupts += 1
        signal.setitimer(signal.ITIMER_REAL, 0)
        armed = False
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        stop.set()
        for thread in threads:
            thread.join(10)
        assert len(done) == 9, "a caller thread hangs"
        assert call(-1) == -1
        start = time.monotonic()
        runner.close(timeout=1)
        assert time.monotonic() - start < 10
        print(interrupts, calls, sum(done))
        """,
        timeout=60,
        # Coverage's tracer takes a lock of its own around its bookkeeping,
        # which an exception from a signal handler can leave held: on Python
        # 3.10 every thread then waits in coverage's lock_data(), the runner
        # none the wiser. The runner's interrupt paths are measured by the
        # in-process tests.
        measured=False,
    )
    assert result.returncode == 0, result.stderr
    interrupts, _, others = map(int, result.stdout.split())
    # The main thread competes for the GIL with ten others: on a busy machine
    # few alarms are handled in 20 s. At least one must have landed.
    assert interrupts >= 1
    assert others > 0


INTERRUPT_SWEEP = """
    import asyncio, dis, gc, sys, threading, time
    from flask_asyncext import _loop_runner, shared_loop
    from flask_asyncext.shared_loop import SharedLoop

    class Interrupted(Exception):
        pass

    unraisable = []
    sys.unraisablehook = lambda u: unraisable.append(repr(u.exc_value))
    # A signal handler runs where the interpreter checks for one: when a
    # function starts, after a call returns, at a loop's backward jump.
    CALLS = {
        code for name, code in dis.opmap.items()
        if name.startswith("CALL") and "INTRINSIC" not in name
    }
    JUMPS = {dis.opmap[name] for name in ("JUMP_BACKWARD", "JUMP_ABSOLUTE")
             if name in dis.opmap}
    STARTS = {dis.opmap[name] for name in ("RESUME",) if name in dis.opmap}
    hit = set()
    problems = []
    me = threading.get_ident()

    def raise_at(k, targets, action):
        # Run action(), raising Interrupted at the k-th place this thread
        # checks for signals in the targets; return where, or None if it
        # checked fewer times.
        count = 0
        where = None
        previous = {}

        def instruction(code, offset):
            nonlocal count, where
            if threading.get_ident() != me or where is not None:
                return
            op = code.co_code[offset]
            before = previous.get(code) if offset else None
            previous[code] = op
            if not (
                offset == 0 or op in STARTS or op in JUMPS
                or before in CALLS or before in JUMPS
            ):
                return
            count += 1
            if count == k:
                name = getattr(code, "co_qualname", code.co_name)
                where = f"{name} at offset {offset}"
                hit.add(code)
                raise Interrupted

        if hasattr(sys, "monitoring"):
            monitoring = sys.monitoring
            tool = monitoring.DEBUGGER_ID
            monitoring.use_tool_id(tool, "interrupt sweep")
            monitoring.register_callback(
                tool, monitoring.events.INSTRUCTION, instruction
            )
            for code in targets:
                monitoring.set_local_events(
                    tool, code, monitoring.events.INSTRUCTION
                )
        else:
            def local(frame, event, arg):
                if event == "opcode":
                    instruction(frame.f_code, frame.f_lasti)
                return local

            def tracer(frame, event, arg):
                if frame.f_code in targets:
                    frame.f_trace_opcodes = True
                    return local
                return None

            sys.settrace(tracer)

        try:
            action()
        except Interrupted:
            pass
        finally:
            if hasattr(sys, "monitoring"):
                for code in targets:
                    monitoring.set_local_events(tool, code, 0)
                monitoring.free_tool_id(tool)
            else:
                sys.settrace(None)

        return where

    def sweep(targets, setup, action, check):
        # Interrupt each place of the targets in turn.
        positions = 0
        while True:
            state = setup()
            where = raise_at(positions + 1, targets, lambda: action(state))
            if where is None:
                break
            positions += 1
            gc.collect()
            for problem in check(state):
                problems.append(f"{where}: {problem}")
            if unraisable:
                problems.append(f"{where}: {unraisable}")
                unraisable.clear()
        print(positions, len(hit), len(targets))
        for problem in problems:
            print(problem)

    async def work(n):
        await asyncio.sleep(0)
        return n

    def eventually(condition):
        deadline = time.monotonic() + 10
        while not condition() and time.monotonic() < deadline:
            time.sleep(0.001)
        return condition()
"""

CALL_SWEEP = """
    from asgiref.sync import sync_to_async

    def double(n):
        return 2 * n

    async def bridged(n):
        # Hands sync work back to the waiting caller, which runs it.
        return await sync_to_async(double)(n) // 2

    runner = SharedLoop()
    call = runner.async_to_sync(bridged if sync_work else work)
    assert call(0) == 0  # the loop is running

    def check_call(_):
        if not eventually(lambda: not runner._current.calls):
            yield "the call stays in the runner"
        if call(-1) != -1:
            yield "the next call fails"

    # The caller's side of a call: from the call until the loop has the
    # coroutine, and the wait that follows.
    targets = {
        call.__code__,
        SharedLoop._run.__code__,
        _loop_runner.Call.run.__code__,
        _loop_runner.Waiter.wait.__code__,
        _loop_runner.Waiter.leave.__code__,
        _loop_runner.Waiter.hand_on.__code__,
    }
    if sync_work:
        targets.add(_loop_runner._WorkItem.run.__code__)
    sweep(targets, lambda: None, lambda _: call(1), check_call)
    runner.close(timeout=1)
"""

CLOSE_SWEEP = """
    def started():
        runner = SharedLoop()
        assert runner.async_to_sync(work)(0) == 0
        return runner, runner._current

    def check_close(state):
        runner, owner = state
        if runner._current is owner:  # still attached: close it again
            runner.close(timeout=1)
        owner.thread.join(3)
        if owner.thread.is_alive() or not owner.loop.is_closed():
            yield "the loop is left running"
        if runner.async_to_sync(work)(1) != 1:
            yield "a new loop does not start"
        runner.close(timeout=1)

    sweep(
        {
            SharedLoop.close.__code__,
            _loop_runner.LoopThread.close.__code__,
            _loop_runner.LoopThread.shut_down_soon.__code__,
        },
        started,
        lambda state: state[0].close(timeout=1),
        check_close,
    )
"""


@pytest.mark.parametrize(
    ("script", "least"),
    [
        ("\n    sync_work = False" + CALL_SWEEP, 15),
        ("\n    sync_work = True" + CALL_SWEEP, 25),
        (CLOSE_SWEEP, 8),
    ],
    ids=["call", "call-running-sync-work", "close"],
)
def test_an_interrupt_wherever_signals_are_checked_leaves_nothing_behind(
    script: str, least: int
) -> None:
    """An exception raised at each place in turn where the caller's thread
    checks for signals (a function's start, the return of a call, a loop's
    backward jump), as a signal handler's would be.

    In a call, from the call until the loop has the coroutine and while it
    waits (running sync work the coroutine hands back, in one case): each
    time, the coroutine is run or closed (never reported as "never
    awaited"), the call leaves the runner, and the next call works.
    In ``close()``: the loop still closes (at once, or when ``close()`` is
    called again), and the next call starts a new one.
    """
    source = textwrap.dedent(INTERRUPT_SWEEP) + textwrap.dedent(script)
    result = run_script(source, timeout=120, measured=False)
    assert result.returncode == 0, result.stderr
    counts, *problems = result.stdout.splitlines()
    positions, hit, targets = map(int, counts.split())
    assert problems == []
    # Every function swept was interrupted somewhere in it.
    assert hit == targets
    assert positions >= least


def uncovered_back_edges(code: types.CodeType) -> cabc.Iterator[str]:
    """Loops in ``code`` (and the functions it defines) whose backward jump
    lies outside the ``try`` the loop body is in.

    Python 3.13 checks for pending signals at that jump, so an exception from
    a signal handler raised there skips the handler (python/cpython#130279).
    """
    instructions = {i.offset: i for i in dis.get_instructions(code)}
    handlers = [
        entry
        for entry in dis.Bytecode(code).exception_entries
        if instructions[entry.target].opname == "PUSH_EXC_INFO"
    ]

    def in_try(offset: int) -> bool:
        return any(entry.start <= offset < entry.end for entry in handlers)

    for instruction in instructions.values():
        if (
            instruction.opname == "JUMP_BACKWARD"
            and in_try(instruction.argval)
            and not in_try(instruction.offset)
        ):
            yield f"{code.co_qualname} (line {instruction.positions.lineno})"

    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from uncovered_back_edges(const)


@pytest.mark.skipif(
    sys.version_info < (3, 13), reason="earlier versions check after the jump"
)
def test_no_interrupt_escapes_a_try_at_a_loops_back_edge() -> None:
    """The runner's own handlers cover every loop inside them, so a signal
    handler's exception is caught wherever it lands.
    """

    def exposed() -> None:
        try:
            while time.monotonic() < 0:
                pass
        except BaseException:
            pass

    # The check finds the pattern it looks for, on a Python that has it ...
    if not list(uncovered_back_edges(exposed.__code__)):
        pytest.skip("this Python's handlers cover a loop's backward jump")
    # ... and the code under every request has none of it.
    for name in (
        "_loop_runner",
        "bridges",
        "callbacks",
        "decorators",
        "generators",
        "portal",
        "shared_loop",
    ):
        module = importlib.import_module(f"flask_asyncext.{name}")
        source = inspect.getsource(module)
        code = compile(source, module.__file__ or name, "exec")
        assert not list(uncovered_back_edges(code)), name


# --- 2. background tasks raising SystemExit or KeyboardInterrupt ------------


@pytest.mark.parametrize("exc_type", [SystemExit, KeyboardInterrupt])
@pytest.mark.parametrize("how", ["task", "gather"])
def test_background_task_cannot_kill_the_loop(
    runner: SharedLoop,
    caplog: pytest.LogCaptureFixture,
    exc_type: type[BaseException],
    how: str,
) -> None:
    raised = threading.Event()

    async def die() -> None:
        await asyncio.sleep(0)
        raised.set()
        raise exc_type

    async def gather_dying() -> None:
        await asyncio.gather(asyncio.sleep(0.01), die())

    async def start() -> None:
        # No reference kept: the runner keeps the task alive.
        asyncio.create_task(die() if how == "task" else gather_dying())  # noqa: RUF006

    with caplog.at_level(logging.ERROR):
        bounded(runner.async_to_sync(start))
        assert raised.wait(PATIENCE)
        for n in range(20):  # the loop keeps serving
            assert bounded(lambda n=n: runner.async_to_sync(answer)(n)) == n
        assert bounded(lambda: runner.wait_tasks(PATIENCE)) is True

    logged = [r for r in caplog.records if r.exc_info and r.exc_info[0] is exc_type]
    assert len(logged) == 1, caplog.records
    assert logged[0].name == "flask_asyncext.shared_loop"


def test_request_raising_system_exit_reaches_its_caller(runner: SharedLoop) -> None:
    """A request's own coroutine raising SystemExit raises it in that
    request's thread, as a sync view would, and the loop keeps serving.
    """

    async def exit_now() -> None:
        raise SystemExit(3)

    with pytest.raises(SystemExit) as info:
        bounded(runner.async_to_sync(exit_now))
    assert info.value.code == 3
    assert bounded(runner.async_to_sync(answer)) == 42


# --- 3. nested bridging from the loop's thread pool --------------------------


def test_nested_bridging_cannot_wedge_the_pool(runner: SharedLoop) -> None:
    """Sync code in the loop's default executor bridges back to the loop,
    whose coroutine needs the executor too. More such requests than the pool
    has workers all complete, and the pool still works afterwards.
    """
    workers = min(32, (os.cpu_count() or 1) + 4)  # ThreadPoolExecutor's default
    n = workers + 2
    pool_full = threading.Barrier(workers, timeout=PATIENCE)
    arrived = itertools.count()

    async def inner(i: int) -> int:
        return await asyncio.to_thread(lambda: i)

    def helper(i: int) -> int:
        if next(arrived) < workers:
            pool_full.wait()  # every worker of the pool holds a helper at once
        return runner.async_to_sync(inner)(i)

    async def view(i: int) -> int:
        return await asyncio.to_thread(helper, i)

    results: list[int] = []
    threads = [
        threading.Thread(
            target=lambda i=i: results.append(runner.async_to_sync(view)(i)),
            daemon=True,
        )
        for i in range(n)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(PATIENCE)
    assert sorted(results) == list(range(n))

    async def pool_works() -> str:
        return await asyncio.to_thread(lambda: "ok")

    assert bounded(runner.async_to_sync(pool_works)) == "ok"


# --- 4. close(timeout) is bounded ---------------------------------------------


def test_close_timeout_bounds_close_with_a_request_in_flight(
    runner: SharedLoop,
) -> None:
    """A request whose coroutine never ends is in flight: close(timeout)
    still returns (the request is cancelled), within the documented bound.
    """
    inside = threading.Event()

    async def forever() -> None:
        inside.set()
        await asyncio.Event().wait()

    outcome: list[BaseException] = []

    def request() -> None:
        try:
            runner.async_to_sync(forever)()
        except BaseException as e:
            outcome.append(e)

    thread = threading.Thread(target=request, daemon=True)
    thread.start()
    assert inside.wait(PATIENCE)
    start = time.monotonic()
    bounded(lambda: runner.close(timeout=0.5))
    # timeout + the documented cancellation grace, with room for a slow machine
    assert time.monotonic() - start < 0.5 + 1 + 5
    thread.join(PATIENCE)
    assert len(outcome) == 1
    assert isinstance(outcome[0], asyncio.CancelledError)


def test_close_timeout_bounds_a_task_ignoring_cancellation(
    runner: SharedLoop, caplog: pytest.LogCaptureFixture
) -> None:
    release = threading.Event()

    async def stubborn() -> None:
        while not release.is_set():
            try:
                await asyncio.sleep(0.01)
            except asyncio.CancelledError:
                continue

    async def start() -> None:
        asyncio.create_task(stubborn())  # noqa: RUF006

    bounded(runner.async_to_sync(start))
    loop = runner.loop
    with caplog.at_level(logging.WARNING):
        start_time = time.monotonic()
        bounded(lambda: runner.close(timeout=0))
        assert time.monotonic() - start_time < 1 + 5
    assert "still running" in caplog.text
    release.set()
    # The loop thread finishes the task and closes the loop by itself.
    for _ in range(PATIENCE * 100):
        if loop.is_closed():
            break
        time.sleep(0.01)
    assert loop.is_closed()


# --- 5. liveness while idle -----------------------------------------------------


def test_timers_run_while_no_request_is_in_flight(runner: SharedLoop) -> None:
    fired = threading.Event()

    async def schedule() -> None:
        asyncio.get_running_loop().call_later(0.05, fired.set)

    bounded(runner.async_to_sync(schedule))
    assert fired.wait(PATIENCE)


@pytest.mark.skipif(sys.version_info < (3, 12), reason="eager_task_factory: 3.12+")
def test_tasks_run_with_an_app_set_task_factory(runner: SharedLoop) -> None:
    finished = threading.Event()

    async def background() -> None:
        await asyncio.sleep(0.05)
        finished.set()

    async def start() -> None:
        loop = asyncio.get_running_loop()
        loop.set_task_factory(asyncio.eager_task_factory)  # type: ignore[attr-defined,unused-ignore]
        asyncio.create_task(background())  # noqa: RUF006

    bounded(runner.async_to_sync(start))
    assert finished.wait(PATIENCE)
    assert bounded(lambda: runner.wait_tasks(PATIENCE)) is True


def test_app_set_task_factory_tasks_are_waited_for(runner: SharedLoop) -> None:
    finished: list[str] = []

    def factory(loop: asyncio.AbstractEventLoop, coro: t.Any, **kwargs: t.Any) -> t.Any:
        return asyncio.Task(coro, loop=loop, **kwargs)

    async def background() -> None:
        await asyncio.sleep(0.05)
        finished.append("done")

    async def start() -> None:
        asyncio.get_running_loop().set_task_factory(factory)
        asyncio.create_task(background())  # noqa: RUF006

    bounded(runner.async_to_sync(start))
    assert bounded(lambda: runner.wait_tasks(PATIENCE)) is True
    assert finished == ["done"]


# --- 7. a coroutine holding the loop is reported -------------------------------


def blocking_view_app(runner: SharedLoop) -> Flask:
    app = Flask(__name__)
    runner.init_app(app)

    @app.route("/block")
    async def hold_the_loop() -> str:
        time.sleep(0.5)  # noqa: ASYNC251 (the point of the test)
        return "done"

    return app


def test_blocking_coroutine_is_reported(caplog: pytest.LogCaptureFixture) -> None:
    runner = SharedLoop(blocking_warning=0.1)
    client = blocking_view_app(runner).test_client()
    try:
        with caplog.at_level(logging.WARNING, logger="flask_asyncext.shared_loop"):
            assert client.get("/block").text == "done"
            # Rate-limited: the next two blocks are not reported again.
            assert client.get("/block").text == "done"
            assert client.get("/block").text == "done"
    finally:
        runner.close()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, caplog.text
    message = warnings[0].getMessage()
    assert "hold_the_loop" in message
    assert "time.sleep(0.5)" in message or "test_shared_loop_robustness.py" in message


def test_blocking_warning_can_be_switched_off(
    caplog: pytest.LogCaptureFixture,
) -> None:
    runner = SharedLoop(blocking_warning=None)
    client = blocking_view_app(runner).test_client()
    try:
        with caplog.at_level(logging.WARNING, logger="flask_asyncext.shared_loop"):
            assert client.get("/block").text == "done"
    finally:
        runner.close()
    assert not caplog.records


def test_blocking_warning_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="blocking_warning"):
        SharedLoop(blocking_warning=0)
    with pytest.raises(ValueError, match="exit_timeout"):
        SharedLoop(exit_timeout=-1)


# --- 9. thread-sensitive sync_to_async does not serialise the process ---------


def test_thread_sensitive_sync_to_async_runs_in_the_waiting_thread(
    runner: SharedLoop,
) -> None:
    from asgiref.sync import sync_to_async

    n, pause = 16, 0.2
    everyone_in = threading.Barrier(n, timeout=PATIENCE)
    threads_used: set[int] = set()
    callers: set[int] = set()

    def blocking() -> None:
        threads_used.add(threading.get_ident())
        time.sleep(pause)

    async def view() -> None:
        await sync_to_async(blocking)()  # thread_sensitive=True, the default

    def request() -> None:
        callers.add(threading.get_ident())
        everyone_in.wait()
        runner.async_to_sync(view)()

    threads = [threading.Thread(target=request, daemon=True) for _ in range(n)]
    start = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(PATIENCE)
    elapsed = time.monotonic() - start
    # Each call ran in its own request's thread, not in one global thread.
    assert threads_used == callers
    assert len(threads_used) == n
    serial = n * pause
    assert elapsed < serial / 3, f"{elapsed:.2f} s for {n} calls of {pause} s"


# --- 10. bounded exit -------------------------------------------------------------

EXIT_SCRIPT = """
    import asyncio, time
    from flask_asyncext.shared_loop import SharedLoop

    runner = SharedLoop({arguments})

    async def periodic():
        while True:
            await asyncio.sleep(0.01)

    async def start():
        asyncio.create_task(periodic())

    runner.async_to_sync(start)()
    print(runner.exit_timeout, time.monotonic(), flush=True)
"""


def exit_duration(arguments: str) -> tuple[float, float]:
    result = run_script(EXIT_SCRIPT.format(arguments=arguments))
    assert result.returncode == 0, result.stderr
    exit_timeout, printed = map(float, result.stdout.split())
    return exit_timeout, time.monotonic() - printed


def test_exit_is_bounded_with_a_never_ending_task() -> None:
    exit_timeout, duration = exit_duration("exit_timeout=0.2")
    assert exit_timeout == 0.2
    assert duration < PATIENCE


@pytest.mark.slow
def test_exit_is_bounded_by_default() -> None:
    exit_timeout, duration = exit_duration("")
    assert exit_timeout == 5.0  # the documented default
    assert exit_timeout <= duration < exit_timeout + PATIENCE


def test_blocking_warning_names_the_coroutine_calling_sync_code(
    caplog: pytest.LogCaptureFixture,
) -> None:
    runner = SharedLoop(blocking_warning=0.1)

    def legacy() -> None:
        time.sleep(0.5)

    async def calls_legacy() -> None:
        legacy()

    try:
        with caplog.at_level(logging.WARNING, logger="flask_asyncext.shared_loop"):
            bounded(runner.async_to_sync(calls_legacy))
    finally:
        runner.close()
    (record,) = caplog.records
    message = record.getMessage()
    assert "calls_legacy()" in message  # the coroutine...
    assert "time.sleep(0.5)" in message  # ...and the line it is held at


def test_blocking_warning_for_a_callback(caplog: pytest.LogCaptureFixture) -> None:
    runner = SharedLoop(blocking_warning=0.1)
    done = threading.Event()

    def callback() -> None:
        time.sleep(0.5)
        done.set()

    try:
        with caplog.at_level(logging.WARNING, logger="flask_asyncext.shared_loop"):
            runner.loop.call_soon_threadsafe(callback)
            assert done.wait(PATIENCE)
            bounded(runner.async_to_sync(answer))
    finally:
        runner.close()
    (record,) = caplog.records
    assert "held for" in record.getMessage()
    assert "by a callback" in record.getMessage()


def test_blocking_warning_ignores_an_idle_loop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A late heartbeat while the loop waits for I/O (a busy machine) is not
    reported; nor is anything once the loop's thread has ended.
    """
    runner = SharedLoop(blocking_warning=PATIENCE)  # the watchdog stays asleep
    owner = runner._current or runner._start()
    watchdog = owner.watchdog
    assert watchdog is not None
    with caplog.at_level(logging.WARNING, logger="flask_asyncext.shared_loop"):
        for _ in range(PATIENCE * 100):  # until the loop thread waits for I/O
            watchdog.beat = time.monotonic() - 2 * PATIENCE
            if not watchdog.check():
                break
            # The loop was busy at that instant (a loaded machine): that report
            # was right; try again.
            caplog.clear()  # pragma: no cover
            watchdog.reported = watchdog.quiet_until = 0  # pragma: no cover
            time.sleep(0.01)  # pragma: no cover
        runner.close()
        watchdog.beat = time.monotonic() - 2 * PATIENCE
        assert not watchdog.check()
        # A fresh heartbeat is not reported either.
        watchdog.beat = time.monotonic()
        assert not watchdog.check()
    assert not caplog.records


# --- the machinery's corners --------------------------------------------------


def test_thread_sensitive_work_after_its_request_runs_in_a_fallback_thread(
    runner: SharedLoop,
) -> None:
    """A background task inherits its request's context, so its
    thread-sensitive sync work names the request's thread, which is gone by
    then: that work runs in the loop's fallback thread instead.
    """
    from asgiref.sync import sync_to_async

    threads: list[str] = []
    finished = threading.Event()

    async def later() -> None:
        await asyncio.sleep(0.05)  # the request has returned by now
        await sync_to_async(lambda: threads.append(threading.current_thread().name))()
        await sync_to_async(lambda: threads.append(threading.current_thread().name))()
        finished.set()

    async def view() -> None:
        asyncio.create_task(later())  # noqa: RUF006

    bounded(runner.async_to_sync(view))
    assert finished.wait(PATIENCE)
    assert len(threads) == 2

    if _asgiref_version() >= (3, 8):
        assert set(threads) == {"flask-asyncext-shared-loop-sync_0"}
    else:
        # Before asgiref 3.8 a task does not inherit the request's executor
        # (its Local is not carried into new tasks): asgiref's own single
        # thread runs the work, one thread for both calls all the same.
        assert len(set(threads)) == 1
        assert threads[0] != threading.current_thread().name
        assert not threads[0].startswith("flask-asyncext-shared-loop")


def _asgiref_version() -> tuple[int, ...]:
    from importlib.metadata import version

    return tuple(int(part) for part in version("asgiref").split(".")[:2])


def test_runs_without_asgiref() -> None:
    result = run_script(
        """
        import sys
        sys.modules["asgiref"] = sys.modules["asgiref.sync"] = None
        import asyncio
        from flask_asyncext.shared_loop import SharedLoop

        runner = SharedLoop()

        async def work():
            await asyncio.sleep(0)
            return "ok"

        print(runner.async_to_sync(work)())
        runner.close()
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "ok\n"


def test_pool_refuses_work_after_shutdown_and_cancels_queued_work() -> None:
    from flask_asyncext._loop_runner import Pool

    pool = Pool(max_workers=1)
    release = threading.Event()
    busy = pool.submit(release.wait, PATIENCE)
    queued = pool.submit(lambda: "never")
    pool.shutdown(wait=False, cancel_futures=True)
    assert queued.cancelled()
    with pytest.raises(RuntimeError, match="after shutdown"):
        pool.submit(lambda: None)
    pool.shutdown(wait=False, cancel_futures=True)  # again: nothing left
    release.set()
    assert busy.result(PATIENCE) is True
    # An idle worker is joined.
    idle = Pool(max_workers=1)
    assert idle.submit(lambda: 1).result(PATIENCE) == 1
    assert len(idle.threads) == 1
    idle.shutdown(wait=True)
    assert not idle.threads


def test_task_factory_returning_a_finished_task_is_not_tracked(
    runner: SharedLoop,
) -> None:
    async def start() -> bool:
        loop = asyncio.get_running_loop()
        finished = asyncio.ensure_future(answer())
        await finished

        def factory(loop: asyncio.AbstractEventLoop, coro: t.Any, **kw: t.Any) -> t.Any:
            coro.close()  # as if it ran to completion at once (eagerly)
            return finished

        loop.set_task_factory(factory)
        try:
            task = asyncio.create_task(answer())
        finally:
            loop.set_task_factory(None)
        return task is finished and task not in runner._current.tasks  # type: ignore[union-attr]

    assert bounded(runner.async_to_sync(start)) is True


def test_shut_down_is_started_once(runner: SharedLoop) -> None:
    owner = runner._current or runner._start()
    runner._current = None
    closers: list[object] = []

    def twice() -> None:
        # Both in one pass of the loop: the first may otherwise have closed
        # the loop before the second is handed over.
        owner.begin_shut_down(PATIENCE)
        closers.append(owner.closer)
        owner.begin_shut_down(PATIENCE)
        closers.append(owner.closer)

    owner.loop.call_soon_threadsafe(twice)
    assert owner.released.wait(PATIENCE)
    assert len(closers) == 2
    assert closers[0] is closers[1] is not None
    assert owner.loop.is_closed()


def test_parked_worker_gives_its_place_to_queued_work() -> None:
    """With one worker, busy: work queued behind it runs as soon as that
    worker parks (waits in the bridge), not after it returns.
    """
    from flask_asyncext._loop_runner import Pool

    pool = Pool(max_workers=1)
    queued = threading.Event()

    def bridging() -> str:
        assert queued.wait(PATIENCE)
        pool.park()  # what a worker does while it waits for the loop
        try:
            return t.cast(str, behind.result(PATIENCE))
        finally:
            pool.unpark()

    first = pool.submit(bridging)
    behind = pool.submit(lambda: "ran meanwhile")
    assert len(pool.threads) == 1  # no place for it yet
    queued.set()
    assert first.result(PATIENCE) == "ran meanwhile"
    pool.shutdown(wait=True)
