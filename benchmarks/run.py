"""Measure what the toolkit and the shared loop cost, side by side.

Run from the repository root::

    python benchmarks/run.py            # full run (about five minutes)
    python benchmarks/run.py --quick    # every row, short (under a minute)
    python benchmarks/run.py --rst docs/_generated/performance-py{python}.inc

Every row is a ratio of two cases measured in the same round, one right
after the other in a shuffled order. Per-call and per-request cases are
measured in process CPU time (:func:`time.process_time`, which also counts
the event loop's and asgiref's threads), so time the process spends waiting
for a core on a busy machine is not counted. Rounds are short and many; a row
shows the median of the per-round ratios and their interquartile range (the
middle half of the rounds). A row whose range reaches a ratio its cases make
impossible (a case that does all of another's work and more, measured
faster) is flagged, not reported as a result. Nothing here is a test: nothing
fails on a slow or noisy machine.
"""

from __future__ import annotations

import argparse
import asyncio
import collections.abc as cabc
import contextlib
import dataclasses
import gc
import http.client
import importlib.util
import io
import json
import os
import platform
import queue
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import typing as t

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [HERE, ROOT]

import apps  # noqa: E402

from flask_asyncext.shared_loop import SharedLoop  # noqa: E402

#: Runs a case ``n`` times (about; a threaded case rounds to its thread
#: count) and returns how many calls it made.
Batch = cabc.Callable[[int], int]

#: The spread of per-round ratios wider than this (interquartile range over
#: median) is flagged as noisy.
NOISY = 0.15


# --- statistics ----------------------------------------------------------------


@dataclasses.dataclass
class Spread:
    """The distribution of one row's per-round values."""

    median: float
    q1: float
    q3: float
    low: float
    high: float
    rounds: int

    @classmethod
    def of(cls, values: cabc.Sequence[float]) -> Spread:
        if not values:
            raise ValueError("no values")
        ordered = sorted(values)
        if len(ordered) >= 4:
            q1, _, q3 = statistics.quantiles(ordered, n=4, method="inclusive")
        else:
            q1, q3 = ordered[0], ordered[-1]
        return cls(
            statistics.median(ordered), q1, q3, ordered[0], ordered[-1], len(ordered)
        )

    def overlaps(self, other: Spread) -> bool:
        return self.q1 <= other.q3 and other.q1 <= self.q3


@dataclasses.dataclass
class Target:
    """A goal for a row's ratio: ``op`` is ``"<="`` or ``">="``."""

    op: str
    value: float
    source: str = ""

    def met(self, ratio: float) -> bool:
        return ratio <= self.value if self.op == "<=" else ratio >= self.value

    def text(self, unicode: bool = False) -> str:
        op = {"<=": "≤", ">=": "≥"}[self.op] if unicode else self.op
        value = f"{self.value:.2f}".rstrip("0")
        return f"{op} {value}0x" if value.endswith(".") else f"{op} {value}x"


@dataclasses.dataclass
class Row:
    """One line of the table."""

    label: str
    ratio: Spread | None
    figures: str = ""
    target: Target | None = None
    #: The lowest ratio the two cases can produce (``a`` does all of ``b``'s
    #: work and more): a spread reaching below it is nonsense.
    floor: float | None = None
    #: The highest ratio the two cases can produce (``a`` serves fewer
    #: requests per second than ``b`` because it does more work).
    ceiling: float | None = None
    #: Why there is no ratio, or what went wrong (errors, timeouts).
    note: str = ""

    def verdict(self) -> str:
        """``met``, ``missed``, ``unclear`` (the spread straddles the
        target), or ``""`` without a target or a ratio.
        """
        if self.target is None or self.ratio is None:
            return ""
        low, high = self.target.met(self.ratio.q1), self.target.met(self.ratio.q3)
        if low and high:
            return "met"
        if not (low or high):
            return "missed"
        return "unclear"

    def flags(self) -> list[str]:
        """What makes this row's figure untrustworthy, if anything."""
        flags = []
        if self.note:
            flags.append(self.note)
        ratio = self.ratio
        if ratio is not None:
            if self.floor is not None and ratio.q1 < self.floor:
                if ratio.q3 < self.floor:
                    flags.append(f"IMPOSSIBLE: below {self.floor:g}x")
                else:
                    flags.append(f"SUSPECT: spread reaches below {self.floor:g}x")
            if self.ceiling is not None and ratio.q3 > self.ceiling:
                if ratio.q1 > self.ceiling:
                    flags.append(f"IMPOSSIBLE: above {self.ceiling:.2f}x")
                else:
                    flags.append(f"SUSPECT: spread reaches above {self.ceiling:.2f}x")
            if ratio.median > 0.05 and (ratio.q3 - ratio.q1) / ratio.median > NOISY:
                flags.append("noisy")
        return flags

    def result(self, unicode: bool = False) -> str:
        parts = []
        if self.target is not None:
            verdict = self.verdict() or "no figure"
            if verdict == "unclear" and self.ratio is not None:
                median = "meets" if self.target.met(self.ratio.median) else "misses"
                verdict += f" (median {median})"
            parts.append(f"{self.target.text(unicode)}: {verdict}")
        parts.extend(self.flags())
        return "; ".join(parts)

    def as_dict(self) -> dict[str, t.Any]:
        return {
            "label": self.label,
            "ratio": None if self.ratio is None else dataclasses.asdict(self.ratio),
            "figures": self.figures,
            "target": None if self.target is None else dataclasses.asdict(self.target),
            "floor": self.floor,
            "ceiling": self.ceiling,
            "note": self.note,
            "verdict": self.verdict(),
            "flags": self.flags(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, t.Any]) -> Row:
        return cls(
            label=data["label"],
            ratio=None if data["ratio"] is None else Spread(**data["ratio"]),
            figures=data["figures"],
            target=None if data["target"] is None else Target(**data["target"]),
            floor=data["floor"],
            ceiling=data.get("ceiling"),
            note=data["note"],
        )


@dataclasses.dataclass
class Section:
    title: str
    rows: list[Row]
    #: How the section was measured, one line.
    method: str = ""


def spread(values: cabc.Sequence[float]) -> Spread | None:
    return Spread.of(values) if values else None


def ratios(a: cabc.Sequence[float], b: cabc.Sequence[float]) -> list[float]:
    if not (a and b):  # a case was not measured
        return []
    return [x / y for x, y in zip(a, b, strict=True) if y > 0]


# --- CPU-time groups --------------------------------------------------------------


def repeat(func: cabc.Callable[[], object]) -> Batch:
    def batch(n: int) -> int:
        for _ in range(n):
            func()
        return n

    return batch


class ThreadPool:
    """``size`` long-lived request threads that run a batch together."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._job: tuple[cabc.Callable[[], object], int] | None = None
        self._errors: list[BaseException] = []
        self._start = threading.Barrier(size + 1)
        self._end = threading.Barrier(size + 1)
        self._threads = [
            threading.Thread(target=self._work, name=f"request-{i}", daemon=True)
            for i in range(size)
        ]
        for thread in self._threads:
            thread.start()

    def _work(self) -> None:
        while True:
            try:
                self._start.wait(120)
            except threading.BrokenBarrierError:
                return
            job = self._job
            if job is None:
                return
            func, n = job
            try:
                for _ in range(n):
                    func()
            except BaseException as e:
                self._errors.append(e)
            try:
                self._end.wait(120)
            except threading.BrokenBarrierError:
                return

    def batch(self, func: cabc.Callable[[], object]) -> Batch:
        def run(n: int) -> int:
            each = max(1, n // self.size)
            self._job = (func, each)
            self._start.wait(120)
            self._end.wait(120)
            if self._errors:
                raise self._errors[0]
            return each * self.size

        return run

    def close(self) -> None:
        self._job = None
        with contextlib.suppress(threading.BrokenBarrierError):
            self._start.wait(5)
        for thread in self._threads:
            thread.join(5)


class RoundTrip:
    """A thread that answers each call over a queue: what handing a call to
    another thread and waiting for it costs, with nothing else done there
    (the floor of the shared loop's hand-off).
    """

    def __init__(self) -> None:
        self._calls: queue.SimpleQueue[queue.SimpleQueue[bool] | None] = (
            queue.SimpleQueue()
        )
        self._thread = threading.Thread(target=self._answer, daemon=True)
        self._thread.start()

    def _answer(self) -> None:
        while (reply := self._calls.get()) is not None:
            reply.put(True)

    def before(self, func: cabc.Callable[[], object]) -> cabc.Callable[[], object]:
        calls = self._calls

        def call() -> object:
            reply: queue.SimpleQueue[bool] = queue.SimpleQueue()
            calls.put(reply)
            reply.get()
            return func()

        return call

    def close(self) -> None:
        self._calls.put(None)
        self._thread.join(5)


@contextlib.contextmanager
def one_core(pin: bool) -> cabc.Iterator[str]:
    """Run the CPU-time groups, and the threads they start, on one core.

    Otherwise their threads run on several cores at once when other
    processes leave them free, and contend for the GIL across cores: the
    multi-threaded rows would then measure how busy the machine is. Yields
    how the groups ran, for the table's header.
    """
    getaffinity = getattr(os, "sched_getaffinity", None)
    setaffinity = getattr(os, "sched_setaffinity", None)
    if not pin or getaffinity is None or setaffinity is None:
        yield "; all cores"
        return
    allowed = getaffinity(0)
    core = min(allowed)
    setaffinity(0, {core})
    try:
        yield f"; pinned to one core (CPU {core}) with its threads"
    finally:
        setaffinity(0, allowed)


def cpu_per_call(batch: Batch, n: int) -> float:
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.process_time()
        done = batch(n)
        elapsed = time.process_time() - start
    finally:
        if gc_was_enabled:
            gc.enable()
    return elapsed / done


def calibrate(batch: Batch, seconds: float) -> int:
    """How many calls of ``batch`` take about ``seconds`` of CPU time."""
    n = 1
    while True:
        start = time.process_time()
        done = batch(n)
        elapsed = time.process_time() - start
        if elapsed >= seconds / 4 or n >= 1 << 24:
            return max(1, int(done * seconds / max(elapsed, 1e-9)))
        n *= 4


class Group:
    """Cases timed in the same rounds, in a shuffled order each round."""

    def __init__(
        self,
        title: str,
        cases: dict[str, Batch],
        rows: list[tuple[str, str, str, Target | None, float | None]],
        method: str = "",
        scale: int = 1,
    ) -> None:
        self.title = title
        #: Batches ``scale`` times longer, in ``scale`` times fewer rounds
        #: (at least 4), for cases whose calls vary a lot (thread starts).
        self.scale = scale
        self.cases = cases
        #: (label, a, b, target, floor): the row is a / b.
        self.rows = rows
        self.method = method
        self.times: dict[str, list[float]] = {name: [] for name in cases}

    def run(self, rounds: int, seconds: float) -> None:
        rounds = max(4, rounds // self.scale)
        seconds *= self.scale
        measured = f"{rounds} rounds of about {seconds * 1e3:g} ms CPU time per case"
        self.method = f"{self.method}; {measured}" if self.method else measured
        counts = {name: calibrate(case, seconds) for name, case in self.cases.items()}
        names = list(self.cases)
        for name in names:  # warm up, not recorded
            cpu_per_call(self.cases[name], counts[name])
        for _ in range(rounds):
            gc.collect()
            random.shuffle(names)
            for name in names:
                self.times[name].append(cpu_per_call(self.cases[name], counts[name]))

    def section(self) -> Section:
        rows = []
        for label, a, b, target, floor in self.rows:
            ta, tb = self.times[a], self.times[b]
            figures = f"{_us(statistics.median(ta))} / {_us(statistics.median(tb))}"
            rows.append(Row(label, spread(ratios(ta, tb)), figures, target, floor))
        return Section(self.title, rows, self.method)


def _us(seconds: float) -> str:
    us = seconds * 1e6
    return f"{us:.2f} µs" if us < 10 else f"{us:.1f} µs" if us < 100 else f"{us:.0f} µs"


def wsgi_call(app: t.Any) -> cabc.Callable[[], object]:
    """One request through ``app(environ, start_response)``, no server."""
    base = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/",
        "QUERY_STRING": "",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }

    def start_response(status: str, headers: t.Any, exc_info: t.Any = None) -> t.Any:
        return None

    def call() -> object:
        environ = dict(base)
        environ["wsgi.input"] = io.BytesIO()
        body = b"".join(app(environ, start_response))
        assert body == b"Hello, World!", body
        return body

    call()
    return call


def awaited(
    func: cabc.Callable[[], cabc.Awaitable[object]], loop: asyncio.AbstractEventLoop
) -> Batch:
    """``await func()`` ``n`` times inside one run of ``loop``."""

    async def many(n: int) -> None:
        for _ in range(n):
            await func()

    def batch(n: int) -> int:
        loop.run_until_complete(many(n))
        return n

    batch(1)
    return batch


#: Close these after the CPU-time groups (loops, runners, thread pools).
cleanups: list[cabc.Callable[[], object]] = []

ISSUE_DRIVER = "issue 11 §1"
ISSUE_SHARED = "issue 11 §3"
ISSUE_SERVERS = "issue 11 §4"
#: "a does all of b's work and more": a ratio below this is nonsense.
MORE_WORK = 0.95


#: The row both request-thread groups read their SharedLoop target against.
HANDOFF_FLOOR = (
    "sync view + one round trip to another thread (the floor of any hand-off)"
    " / sync view",
    "floor",
    "sync",
    None,
    MORE_WORK,
)


def cpu_groups() -> list[Group]:
    groups = []
    sync_direct = {
        "hand-written": repeat(apps.handwritten_sync(apps.sync_view)),
        "toolkit plain": repeat(apps.toolkit_plain(apps.sync_view)),
        "toolkit generator": repeat(apps.toolkit_generator(apps.sync_view)),
        "minimal": repeat(apps.minimal_driver(apps.sync_view)),
    }
    groups.append(
        Group(
            "Per call, sync view, direct call (no request)",
            sync_direct,
            [
                (
                    "toolkit generator body / hand-written functools.wraps",
                    "toolkit generator",
                    "hand-written",
                    Target("<=", 6.0, ISSUE_DRIVER),
                    MORE_WORK,
                ),
                (
                    "generator body run by a minimal driver (send and"
                    " StopIteration, nothing checked) / hand-written"
                    " functools.wraps",
                    "minimal",
                    "hand-written",
                    None,
                    MORE_WORK,
                ),
                (
                    "toolkit plain body / hand-written functools.wraps",
                    "toolkit plain",
                    "hand-written",
                    Target("<=", 2.2, ISSUE_DRIVER),
                    MORE_WORK,
                ),
            ],
        )
    )

    loop = asyncio.new_event_loop()
    cleanups.append(loop.close)
    groups.append(
        Group(
            "Per call, async view, awaited in one running loop (no request)",
            {
                "hand-written": awaited(
                    apps.handwritten_async_passthrough(apps.async_view), loop
                ),
                "toolkit plain": awaited(apps.toolkit_plain(apps.async_view), loop),
                "toolkit generator": awaited(
                    apps.toolkit_generator(apps.async_view), loop
                ),
                "minimal": awaited(apps.async_minimal_driver(apps.async_view), loop),
            },
            [
                (
                    "toolkit generator body / hand-written async def",
                    "toolkit generator",
                    "hand-written",
                    Target("<=", 3.9, ISSUE_DRIVER),
                    MORE_WORK,
                ),
                (
                    "generator body run by a minimal driver (send, await and"
                    " StopIteration, nothing checked) / hand-written async def",
                    "minimal",
                    "hand-written",
                    None,
                    MORE_WORK,
                ),
                (
                    "toolkit plain body / hand-written async def",
                    "toolkit plain",
                    "hand-written",
                    Target("<=", 2.2, ISSUE_DRIVER),
                    MORE_WORK,
                ),
            ],
        )
    )

    def app(view: t.Any, **kwargs: t.Any) -> cabc.Callable[[], object]:
        return wsgi_call(apps.make_app(view, **kwargs))

    groups.append(
        Group(
            "Per request (WSGI call), sync view",
            {
                "bare": repeat(app(apps.sync_view)),
                "3 hand-written": repeat(
                    app(apps.stack(apps.handwritten_sync, apps.sync_view))
                ),
                "3 toolkit plain": repeat(
                    app(apps.stack(apps.toolkit_plain, apps.sync_view))
                ),
                "3 toolkit generator": repeat(
                    app(apps.stack(apps.toolkit_generator, apps.sync_view))
                ),
            },
            [
                (
                    "3 toolkit generator decorators / 3 hand-written",
                    "3 toolkit generator",
                    "3 hand-written",
                    Target("<=", 1.05, ISSUE_DRIVER),
                    MORE_WORK,
                ),
                (
                    "3 toolkit plain decorators / 3 hand-written",
                    "3 toolkit plain",
                    "3 hand-written",
                    None,
                    MORE_WORK,
                ),
                (
                    "3 hand-written decorators / bare view",
                    "3 hand-written",
                    "bare",
                    None,
                    MORE_WORK,
                ),
            ],
        )
    )

    groups.append(
        Group(
            "Per request (WSGI call), async view + 3 async checks, Flask's bridge",
            {
                "bare": repeat(app(apps.async_view)),
                "3 hand-written": repeat(
                    app(apps.stack(apps.handwritten_async, apps.async_view))
                ),
                "3 toolkit": repeat(
                    app(apps.stack(apps.toolkit_async_check, apps.async_view))
                ),
                "3 ensure_sync": repeat(
                    app(apps.stack(apps.ensure_sync_way, apps.async_view))
                ),
            },
            [
                (
                    "3 toolkit decorators / 3 hand-written async def",
                    "3 toolkit",
                    "3 hand-written",
                    Target("<=", 1.05),
                    None,
                ),
                (
                    "3 ensure_sync recipe decorators / 3 toolkit",
                    "3 ensure_sync",
                    "3 toolkit",
                    Target(">=", 3.0),
                    None,
                ),
                (
                    "3 toolkit decorators / bare async view",
                    "3 toolkit",
                    "bare",
                    None,
                    MORE_WORK,
                ),
            ],
            method="each request starts a thread and an event loop per async call",
            scale=4,
        )
    )

    shared = SharedLoop()
    cleanups.append(shared.close)
    local = apps.ThreadLocalLoop()
    cleanups.append(local.close)
    round_trip = RoundTrip()
    cleanups.append(round_trip.close)
    sync_call = app(apps.sync_view)
    shared_call = app(apps.async_view, shared=shared)
    local_call = app(apps.async_view, shared=local)
    floor_call = round_trip.before(sync_call)
    groups.append(
        Group(
            "Per request (WSGI call), 1 request thread: async view / sync view",
            {
                "sync": repeat(sync_call),
                "shared": repeat(shared_call),
                "local": repeat(local_call),
                "floor": repeat(floor_call),
                "default": repeat(app(apps.async_view)),
                "shared + 3": repeat(
                    app(
                        apps.stack(apps.toolkit_async_check, apps.async_view),
                        shared=shared,
                    )
                ),
            },
            [
                (
                    "async view on SharedLoop / sync view",
                    "shared",
                    "sync",
                    Target("<=", 1.4, ISSUE_SHARED),
                    MORE_WORK,
                ),
                (
                    "async view on a thread-local loop (baseline) / sync view",
                    "local",
                    "sync",
                    None,
                    MORE_WORK,
                ),
                HANDOFF_FLOOR,
                (
                    "async view on Flask's bridge / sync view",
                    "default",
                    "sync",
                    None,
                    MORE_WORK,
                ),
                (
                    "async view + 3 toolkit async checks on SharedLoop / sync view",
                    "shared + 3",
                    "sync",
                    None,
                    MORE_WORK,
                ),
            ],
        )
    )

    pool = ThreadPool(8)
    cleanups.insert(0, pool.close)
    groups.append(
        Group(
            "Per request (WSGI call), 8 request threads: async view / sync view",
            {
                "sync": pool.batch(sync_call),
                "shared": pool.batch(shared_call),
                "local": pool.batch(local_call),
                "floor": pool.batch(floor_call),
            },
            [
                (
                    "async view on SharedLoop / sync view",
                    "shared",
                    "sync",
                    Target("<=", 1.45, ISSUE_SHARED),
                    MORE_WORK,
                ),
                (
                    "async view on a thread-local loop (baseline) / sync view",
                    "local",
                    "sync",
                    None,
                    MORE_WORK,
                ),
                HANDOFF_FLOOR,
                (
                    "async view, SharedLoop / thread-local loop",
                    "shared",
                    "local",
                    None,
                    None,
                ),
            ],
            method="8 threads call the app at once; CPU time of the whole process",
            scale=4,
        )
    )
    return groups


# --- real servers ----------------------------------------------------------------


@dataclasses.dataclass
class Load:
    """What one load run measured."""

    #: Successful (2xx or 3xx) responses per second.
    rps: float
    p99: float | None  # seconds
    #: Responses that were not 2xx or 3xx.
    failed: int = 0
    #: Connect, read and write errors and timeouts.
    socket_errors: int = 0
    #: Responses received, successful or not.
    requests: int = 0
    #: CPU time the server's processes spent per response, in seconds.
    cpu: float | None = None


@dataclasses.dataclass
class Server:
    name: str
    command: list[str]
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    workdir: str = ""
    #: The last exception the server logged, if any.
    logged: str = ""
    #: Why the server is not measured (it did not start).
    failed: str = ""
    #: The most requests it can serve at once (threads), if capped.
    cap: int | None = None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def gunicorn_quiet() -> list[str]:
    """Options that keep gunicorn's control socket out of the way: off where
    the installed gunicorn can turn it off, else one path per server (a
    ``{workdir}`` placeholder).
    """
    from gunicorn.config import KNOWN_SETTINGS  # type: ignore[import-untyped]

    names = {setting.name for setting in KNOWN_SETTINGS}
    if "control_socket_disable" in names:
        return ["--no-control-socket"]
    if "control_socket" in names:
        return ["--control-socket", "{workdir}/gunicorn.ctl"]
    return []


def gunicorn(app: str, worker: str, workers: int, threads: int = 8) -> list[str]:
    command = [sys.executable, "-m", "gunicorn", "-k", worker, "-w", str(workers)]
    if worker == "gthread":
        command += ["--threads", str(threads)]
    else:
        command += ["--worker-connections", "1000"]
    return [
        *command,
        "-b",
        "127.0.0.1:{port}",
        "--log-level",
        "warning",
        *gunicorn_quiet(),
        f"apps:{app}",
    ]


def uvicorn(app: str, http: str, loop: str, workers: int = 1) -> list[str]:
    command = [sys.executable, "-m", "uvicorn", "--http", http, "--loop", loop]
    if workers > 1:
        command += ["--workers", str(workers)]
    return [
        *command,
        "--host",
        "127.0.0.1",
        "--port",
        "{port}",
        "--log-level",
        "warning",
        "--no-access-log",
        f"apps:{app}",
    ]


UVICORN_FLAVOURS = (("h11", "asyncio"), ("httptools", "uvloop"))


def quart_name(http: str, loop: str) -> str:
    return f"Quart, uvicorn {http} + {loop}"


def start(servers: list[Server]) -> None:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([HERE, ROOT]))
    for server in servers:
        server.port = free_port()
        server.workdir = tempfile.mkdtemp(prefix="asyncext-bench-")
        command = [
            part.format(port=server.port, workdir=server.workdir)
            for part in server.command
        ]
        with open(os.path.join(server.workdir, "server.log"), "wb") as log:
            server.process = subprocess.Popen(
                command, cwd=server.workdir, env=env, stdout=log, stderr=log
            )
    for server in servers:
        try:
            wait_for_port(server)
        except RuntimeError as e:
            # Report it in the server's rows; measure the others.
            server.failed = str(e)
            logged = last_exception(os.path.join(server.workdir, "server.log"))
            if logged:
                server.failed += f" ({logged})"


def stop(servers: list[Server]) -> None:
    for server in servers:
        if server.process is not None and server.process.poll() is None:
            server.process.terminate()
    for server in servers:
        if server.process is not None:
            try:
                server.process.wait(15)
            except subprocess.TimeoutExpired:
                server.process.kill()
                server.process.wait()
        if server.workdir:
            server.logged = last_exception(os.path.join(server.workdir, "server.log"))
            shutil.rmtree(server.workdir, ignore_errors=True)


def last_exception(path: str) -> str:
    """The last ``SomeError: message`` line of a server's log."""
    found = ""
    with contextlib.suppress(OSError), open(path, errors="replace") as f:
        for line in f:
            if re.match(r"\w+(\.\w+)*(Error|Exception|Exit|Interrupt)\b.*: ", line):
                found = line.strip()
    return found


def load_note(
    loads: cabc.Sequence[Load], server: Server, sleep: float | None = None
) -> str:
    """What went wrong in these loads, if anything. With ``sleep``, each
    request sleeps that long: a server capped at ``cap`` threads cannot
    sustain more sleepers.
    """
    if server.failed:
        return f"not measured: {server.failed}"
    if sleep is not None and server.cap is not None and loads:
        sleepers = statistics.median(x.rps for x in loads) * sleep
        if sleepers > server.cap / MORE_WORK:
            return f"IMPOSSIBLE: {sleepers:.1f} sleepers on {server.cap} threads"
    failed = sum(x.failed for x in loads)
    socket_errors = sum(x.socket_errors for x in loads)
    parts = []
    if failed:
        parts.append(f"{failed} failed responses")
    if socket_errors:
        parts.append(f"{socket_errors} socket errors or timeouts")
    if parts and server.logged:
        logged = re.sub(r" at 0x[0-9a-f]+", "", server.logged)
        if len(logged) > 70:
            logged = logged[:67] + "..."
        parts.append(f"server logged {logged}")
    return ", ".join(parts)


def wait_for_port(server: Server, limit: float = 30) -> None:
    assert server.process is not None
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"exited with {server.process.returncode}")
        with contextlib.suppress(OSError):
            connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
            try:
                connection.request("GET", "/")
                connection.getresponse()  # any answer: the server is up
                return
            finally:
                connection.close()
        time.sleep(0.1)
    raise RuntimeError(f"did not answer within {limit:g}s")


_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


def load_wrk(port: int, seconds: float, connections: int) -> Load:
    threads = 2 if connections > 16 else 1
    out = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "5s",
            "--latency",
            f"http://127.0.0.1:{port}/",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
    ).stdout
    match = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)\b", out)
    if match is None:
        raise RuntimeError(out)
    requests = int(match.group(1))
    elapsed = float(match.group(2)) * _UNITS[match.group(3)]
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s|m)\b", out)
    socket_errors = sum(
        int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out)
    )
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", out)
    failed = 0 if non_2xx is None else int(non_2xx.group(1))
    return Load(
        (requests - failed) / elapsed,
        None if p99 is None else float(p99.group(1)) * _UNITS[p99.group(2)],
        failed,
        socket_errors,
        requests,
    )


def load_python(port: int, seconds: float, connections: int) -> Load:
    """A bounded keep-alive asyncio client, for machines without ``wrk``
    (slower, so its figures compare only with each other).
    """

    failed = 0
    socket_errors = 0

    async def client(deadline: float, latencies: list[float]) -> None:
        nonlocal failed, socket_errors
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            socket_errors += 1
            return
        request = f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
        try:
            while time.monotonic() < deadline:
                begin = time.perf_counter()
                writer.write(request)
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
                length = re.search(rb"(?i)content-length:\s*(\d+)", head)
                await reader.readexactly(int(length.group(1)) if length else 0)
                latencies.append(time.perf_counter() - begin)
                if not head.startswith((b"HTTP/1.1 2", b"HTTP/1.1 3")):
                    failed += 1
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError):
            socket_errors += 1
        finally:
            writer.close()

    async def main() -> Load:
        latencies: list[float] = []
        begin = time.monotonic()
        deadline = begin + seconds
        await asyncio.gather(*(client(deadline, latencies) for _ in range(connections)))
        elapsed = time.monotonic() - begin
        p99 = statistics.quantiles(latencies, n=100)[98] if len(latencies) > 1 else None
        return Load(
            (len(latencies) - failed) / elapsed,
            p99,
            failed,
            socket_errors,
            len(latencies),
        )

    return asyncio.run(main())


def tree_cpu(pid: int) -> float | None:
    """CPU time (user + system, in seconds) of process ``pid`` and all its
    descendants, from ``/proc``; None where there is no ``/proc``.
    """
    stats: dict[int, tuple[int, float]] = {}  # pid: (parent, seconds)
    try:
        ticks = os.sysconf("SC_CLK_TCK")
        entries = os.listdir("/proc")
    except (OSError, ValueError, AttributeError):
        return None
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                # The command name is in parentheses and may contain spaces.
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # exited meanwhile
        stats[int(entry)] = (
            int(fields[1]),
            (int(fields[11]) + int(fields[12])) / ticks,
        )
    if pid not in stats:
        return None
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        total += stats[current][1]
        todo += [p for p, (parent, _) in stats.items() if parent == current]
    return total


def measure(
    server: Server,
    load: cabc.Callable[[int, float, int], Load],
    seconds: float,
    connections: int,
) -> Load:
    """Load ``server`` and add the CPU time its processes spent per response."""
    assert server.process is not None
    before = tree_cpu(server.process.pid)
    result = load(server.port, seconds, connections)
    after = tree_cpu(server.process.pid)
    if before is not None and after is not None and result.requests:
        result.cpu = (after - before) / result.requests
    return result


def _importable(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def run_servers(
    servers: list[Server],
    connections: cabc.Sequence[int],
    rounds: int,
    seconds: float,
    warm: float,
) -> dict[tuple[str, int], list[Load]]:
    """Start ``servers``, load each at every connection count for ``rounds``
    interleaved rounds, stop them.
    """
    load = load_wrk if shutil.which("wrk") else load_python
    results: dict[tuple[str, int], list[Load]] = {}
    try:
        start(servers)
        running = [server for server in servers if not server.failed]
        for server in running:
            if warm:
                load(server.port, warm, connections[0])
        for server in servers:
            for c in connections:
                results[server.name, c] = []
        order = list(running)
        for _ in range(rounds):
            for c in connections:
                random.shuffle(order)
                for server in order:
                    results[server.name, c].append(measure(server, load, seconds, c))
    finally:
        stop(servers)
    return results


def _cpu(*runs: cabc.Sequence[Load]) -> str:
    """The servers' median CPU time per response, ``"; 250 / 180 µs CPU"``."""
    medians = []
    for loads in runs:
        cpu = [x.cpu for x in loads if x.cpu is not None]
        if not cpu:
            return ""
        medians.append(f"{statistics.median(cpu) * 1e6:.0f}")
    return f"; {' / '.join(medians)} µs CPU"


def _median(values: cabc.Sequence[float], spec: str) -> str:
    return format(statistics.median(values), spec)


def client_name(seconds: float, connections: int) -> str:
    if shutil.which("wrk"):
        threads = 2 if connections > 16 else 1
        return f"wrk -t{threads} -c{connections} -d{max(1, round(seconds))}s"
    return f"Python asyncio client, {connections} connections, {seconds:g}s"


def missing_server_modules() -> list[str]:
    needed = ("gunicorn", "uvicorn", "quart", "h11", "httptools", "uvloop", "gevent")
    return [name for name in needed if not _importable(name)]


def hello_section(rounds: int, seconds: float, warm: float) -> Section:
    connections = 16
    quarts = [quart_name(h, lp) for h, lp in UVICORN_FLAVOURS]
    servers = [
        Server("Flask sync", gunicorn("sync_app", "gthread", 1)),
        Server("Flask async, Flask's bridge", gunicorn("async_app", "gthread", 1)),
        Server("Flask async, SharedLoop", gunicorn("shared_app", "gthread", 1)),
    ] + [
        Server(name, uvicorn("quart_app", h, lp))
        for name, (h, lp) in zip(quarts, UVICORN_FLAVOURS, strict=True)
    ]
    results = run_servers(servers, [connections], rounds, seconds, warm)
    rps = {s.name: [x.rps for x in results[s.name, connections]] for s in servers}
    by_name = {s.name: s for s in servers}

    def row(
        a: str, b: str, target: Target | None = None, ceiling: float | None = None
    ) -> Row:
        figures = (
            f"{_median(rps[a], ',.0f')} / {_median(rps[b], ',.0f')} req/s"
            + _cpu(results[a, connections], results[b, connections])
            if rps[a] and rps[b]
            else ""
        )
        return Row(
            f"{a} / {b}",
            spread(ratios(rps[a], rps[b])),
            figures,
            target,
            ceiling=ceiling,
            note=load_note(results[a, connections], by_name[a]),
        )

    rows = [row("Flask async, SharedLoop", q, Target(">=", 1.0)) for q in quarts] + [
        row("Flask sync", q) for q in quarts
    ]
    rows += [
        # The same app and server, with an async view: more work per request.
        row("Flask async, SharedLoop", "Flask sync", ceiling=1 / MORE_WORK),
        row("Flask async, Flask's bridge", "Flask sync", ceiling=1 / MORE_WORK),
        row(quarts[1], quarts[0]),
    ]

    # The same pairs in the servers' CPU time per response, which the
    # machine's load moves much less than requests per second.
    cpu = {
        s.name: [x.cpu for x in results[s.name, connections] if x.cpu is not None]
        for s in servers
    }

    def cpu_row(a: str, b: str, floor: float | None = None) -> Row:
        figures = (
            f"{statistics.median(cpu[a]) * 1e6:.0f} / "
            f"{statistics.median(cpu[b]) * 1e6:.0f} µs"
            if cpu[a] and cpu[b]
            else ""
        )
        return Row(
            f"CPU per response: {a} / {b}",
            spread(ratios(cpu[a], cpu[b]) if len(cpu[a]) == len(cpu[b]) else []),
            figures,
            floor=floor,
            note=load_note(results[a, connections], by_name[a]),
        )

    rows += [
        cpu_row("Flask async, SharedLoop", "Flask sync", MORE_WORK),
        cpu_row("Flask async, Flask's bridge", "Flask sync", MORE_WORK),
        *(cpu_row("Flask async, SharedLoop", q) for q in quarts),
    ]
    return Section(
        f'Real servers, "Hello, World!", requests/s ({client_name(seconds, 16)})',
        rows,
        "Flask under gunicorn gthread, 1 process x 8 threads;"
        " Quart under uvicorn, 1 process; all on 127.0.0.1",
    )


def sleep_sections(rounds: int, seconds: float, warm: float) -> list[Section]:
    counts = (64, 256)
    quarts = [quart_name(h, lp) for h, lp in UVICORN_FLAVOURS]
    gevent = "Flask async, SharedLoop, gunicorn gevent 2 processes"
    servers = [
        Server(
            "Flask sync (time.sleep), gunicorn gthread 2x8",
            gunicorn("sync_sleep_app", "gthread", 2),
            cap=16,
        ),
        Server(
            "Flask async, Flask's bridge, gunicorn gthread 2x8",
            gunicorn("async_sleep_app", "gthread", 2),
            cap=16,
        ),
        Server(
            "Flask async, SharedLoop, gunicorn gthread 2x8",
            gunicorn("shared_sleep_app", "gthread", 2),
            cap=16,
        ),
        Server(gevent, gunicorn("shared_sleep_app", "gevent", 2)),
        # The ceiling of the row above: the same worker without any event
        # loop (the gevent worker makes time.sleep cooperative).
        Server(
            "Flask sync (time.sleep), gunicorn gevent 2 processes",
            gunicorn("sync_sleep_app", "gevent", 2),
        ),
    ] + [
        Server(f"{name}, 2 processes", uvicorn("quart_sleep_app", h, lp, workers=2))
        for name, (h, lp) in zip(quarts, UVICORN_FLAVOURS, strict=True)
    ]
    reference = servers[-1].name
    results = run_servers(servers, counts, rounds, seconds, warm)
    sections = []
    for c in counts:
        ref = [x.rps for x in results[reference, c]]
        rows = []
        for server in servers:
            loads = results[server.name, c]
            rps = [x.rps for x in loads]
            p99s = [x.p99 for x in loads if x.p99 is not None]
            figures = ""
            if rps:
                sleepers = statistics.median(rps) * apps.SLEEP
                figures = f"{sleepers:.1f} sleepers, {_median(rps, ',.0f')} req/s"
            if p99s:
                figures += f", p99 {statistics.median(p99s) * 1e3:.0f} ms"
            figures += _cpu(loads)
            rows.append(
                Row(
                    f"{server.name} (reference)"
                    if server.name == reference
                    else f"{server.name} / Quart",
                    spread(ratios(rps, ref)),
                    figures,
                    Target(">=", 1.0, ISSUE_SERVERS) if server.name == gevent else None,
                    note=load_note(loads, server, apps.SLEEP),
                )
            )
        sections.append(
            Section(
                f"I/O-bound view (await asyncio.sleep({apps.SLEEP:g})),"
                f" {c} connections: concurrent sleepers / Quart"
                f" ({client_name(seconds, c)})",
                rows,
                f"the ratio is of sleepers sustained (requests/s x {apps.SLEEP:g} s);"
                f" Quart is {reference}",
            )
        )
    return sections


# --- report ----------------------------------------------------------------------


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version

    found = {
        "Python": f"{platform.python_implementation()} {platform.python_version()}"
    }
    for name in (
        "Flask",
        "Werkzeug",
        "asgiref",
        "gunicorn",
        "gevent",
        "uvicorn",
        "h11",
        "httptools",
        "uvloop",
        "Quart",
    ):
        with contextlib.suppress(PackageNotFoundError):
            found[name] = version(name)
    return found


def machine() -> str:
    model = "unknown CPU"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} CPUs ({model}), {platform.system()} {platform.release()}"


def load_average() -> str:
    with contextlib.suppress(OSError, AttributeError):
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    return "unknown"


def header_lines(meta: dict[str, t.Any]) -> list[str]:
    names = ", ".join(f"{k} {v}" for k, v in meta["versions"].items())
    return [
        f"Machine: {meta['machine']}; load average {meta['load_before']} before,"
        f" {meta['load_after']} after",
        f"Versions: {names}",
        f"Servers: {meta['servers']}",
        f"Per call and per request: {meta['cpu_method']}",
        "Spread: the interquartile range of the per-round ratios"
        " (their whole range with fewer than 4 rounds)",
    ]


def format_text(meta: dict[str, t.Any], sections: list[Section]) -> str:
    lines = header_lines(meta)
    head = ("comparison", "ratio", "spread", "medians, a / b", "target, checks")
    for section in sections:
        table = [head] + [
            (
                row.label,
                _ratio(row),
                _iqr(row),
                row.figures,
                row.result(),
            )
            for row in section.rows
        ]
        widths = [max(len(r[i]) for r in table) for i in range(len(head))]
        lines += ["", section.title]
        if section.method:
            lines.append(f"  ({section.method})")
        rule = "  ".join("-" * w for w in widths)
        lines.append(rule)
        for i, r in enumerate(table):
            lines.append(
                "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
            )
            if i == 0:
                lines.append(rule)
    return "\n".join(lines)


def _ratio(row: Row) -> str:
    return "-" if row.ratio is None else f"{row.ratio.median:.2f}x"


def _iqr(row: Row, dash: str = "-") -> str:
    if row.ratio is None:
        return "-"
    return f"{row.ratio.q1:.2f}{dash}{row.ratio.q3:.2f}x"


def _rst_cell(text: str) -> str:
    text = re.sub(r"([\\*`|]|_(?=\W|$))", r"\\\1", text)
    # "--http", not an en dash.
    text = text.replace("--", "\\-\\-")
    return text or "\\ "


def format_rst(meta: dict[str, t.Any], sections: list[Section]) -> str:
    """The table as reST, one ``list-table`` per section."""
    out = [
        ".. This file is written by benchmarks/run.py --rst; do not edit it by hand.",
        "",
    ]
    for line in header_lines(meta):
        key, _, value = line.partition(": ")
        out.append(f":{key}: {_rst_cell(value)}")
    for section in sections:
        out += [
            "",
            f".. list-table:: {_rst_cell(section.title)}",
            "   :header-rows: 1",
            "   :widths: 34 8 13 19 26",
            "   :class: benchmark-table",
            "",
        ]
        cells = [("Comparison", "Ratio", "Spread", "Medians, a / b", "Target, checks")]
        cells += [
            (
                row.label,
                _ratio(row),
                _iqr(row, "\N{EN DASH}"),
                row.figures,
                row.result(unicode=True),
            )
            for row in section.rows
        ]
        for cell_row in cells:
            first, *rest = (_rst_cell(c) for c in cell_row)
            out.append(f"   * - {first}")
            out += [f"     - {c}" for c in rest]
        if section.method:
            out += ["", f"{_rst_cell(section.method[0].upper() + section.method[1:])}."]
    return "\n".join(out) + "\n"


def compare(paths: cabc.Sequence[str]) -> int:
    """Print, row by row, whether two runs agree within their spread."""
    runs = []
    for path in paths:
        with open(path) as f:
            runs.append(json.load(f))
    first, second = runs
    rows_b = {
        (s["title"], r["label"]): Row.from_dict(r)
        for s in second["sections"]
        for r in s["rows"]
    }
    disagree = 0
    for section in first["sections"]:
        print(f"\n{section['title']}")
        for data in section["rows"]:
            a = Row.from_dict(data)
            b = rows_b.get((section["title"], a.label))
            if a.ratio is None or b is None or b.ratio is None:
                print(f"  {a.label}: not in both runs")
                continue
            agree = a.ratio.overlaps(b.ratio)
            disagree += not agree
            print(
                f"  {'agree   ' if agree else 'DISAGREE'}  {a.label}:"
                f" {a.ratio.median:.2f}x ({_iqr(a)}) vs"
                f" {b.ratio.median:.2f}x ({_iqr(b)})"
            )
    print(f"\n{disagree} rows whose spreads do not overlap")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--quick", action="store_true", help="every row, short (under a minute)"
    )
    mode.add_argument(
        "--smoke",
        action="store_true",
        help="the smallest run that fills every row (for tests; figures meaningless)",
    )
    parser.add_argument("--rounds", type=int, help="rounds per CPU-time group")
    parser.add_argument(
        "--no-servers", action="store_true", help="skip the real-server rows"
    )
    parser.add_argument(
        "--all-cores",
        action="store_true",
        help="do not pin the CPU-time groups to one core",
    )
    parser.add_argument(
        "--only",
        metavar="WORDS",
        help="run only the sections whose title contains WORDS (case-insensitive)",
    )
    parser.add_argument(
        "--rst",
        metavar="PATH",
        help="also write the table as reST to PATH ({python} becomes e.g. 313)",
    )
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument(
        "--render",
        metavar="JSON",
        help="print (and --rst) the tables of a --json result, run nothing",
    )
    parser.add_argument(
        "--compare",
        nargs=2,
        metavar="JSON",
        help="compare two --json results row by row, run nothing",
    )
    options = parser.parse_args(argv)
    if options.compare:
        return compare(options.compare)
    if options.render:
        with open(options.render) as f:
            data = json.load(f)
        saved = [
            Section(s["title"], [Row.from_dict(r) for r in s["rows"]], s["method"])
            for s in data["sections"]
        ]
        write(data["meta"], saved, options)
        return 0

    if options.smoke:
        rounds, batch, server_rounds, seconds, warm = 4, 0.001, 1, 1.0, 0.0
    elif options.quick:
        rounds, batch, server_rounds, seconds, warm = 20, 0.002, 1, 1.0, 0.0
    else:
        rounds, batch, server_rounds, seconds, warm = 150, 0.008, 6, 1.0, 1.0
    rounds = options.rounds or rounds
    only = (options.only or "").lower()

    servers = "not run"
    if not options.no_servers:
        missing = missing_server_modules()
        if missing:
            print(f"skipping the server rows: install {', '.join(missing)}")
            options.no_servers = True
        else:
            servers = (
                "gunicorn gthread and gevent workers; uvicorn pinned to --http h11"
                " --loop asyncio and to --http httptools --loop uvloop; load from "
                + ("wrk" if shutil.which("wrk") else "a Python asyncio client")
            )

    meta: dict[str, t.Any] = {
        "machine": machine(),
        "versions": versions(),
        "servers": servers,
        "cpu_method": (
            "process CPU time (time.process_time), in short interleaved rounds"
        ),
        "load_before": load_average(),
    }
    started = time.monotonic()
    print(*header_lines({**meta, "load_after": "-"})[1:], sep="\n", flush=True)

    sections: list[Section] = []
    with one_core(not options.all_cores) as core:
        meta["cpu_method"] += core
        for group in cpu_groups():
            if only in group.title.lower():
                group.run(rounds, batch)
                sections.append(group.section())
                print(f"  done: {group.title}", flush=True)
        for cleanup in cleanups:
            cleanup()

    if not options.no_servers:
        if only in 'real servers, "hello, world!", requests/s':
            sections.append(hello_section(server_rounds, seconds, warm))
            print("  done: real servers, Hello, World!", flush=True)
        if only in "i/o-bound view (await asyncio.sleep), connections, sleepers":
            sections += sleep_sections(server_rounds, seconds, warm)
            print("  done: I/O-bound view", flush=True)

    meta["load_after"] = load_average()
    meta["seconds"] = round(time.monotonic() - started, 1)
    print()
    write(meta, sections, options)
    return 0


def write(
    meta: dict[str, t.Any], sections: list[Section], options: argparse.Namespace
) -> None:
    print(format_text(meta, sections))
    print(f"\n{meta['seconds']:g} s")

    if options.json:
        with open(options.json, "w") as f:
            json.dump(
                {
                    "meta": meta,
                    "sections": [
                        {
                            "title": s.title,
                            "method": s.method,
                            "rows": [r.as_dict() for r in s.rows],
                        }
                        for s in sections
                    ],
                },
                f,
                indent=1,
            )
    if options.rst:
        version = meta["versions"]["Python"].split()[-1]  # "CPython 3.13.0"
        path = options.rst.format(python="".join(version.split(".")[:2]))
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(format_rst(meta, sections))


if __name__ == "__main__":
    sys.exit(main())
