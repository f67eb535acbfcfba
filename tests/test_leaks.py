"""Nothing leaks after 5,000 requests through async views behind stacked
toolkit decorators, on Flask's default bridge and on SharedLoop.

Measured after a warm-up (which starts what is started once: the shared
loop, its thread, executors) and again at the end: live threads, open file
descriptors (``/proc/self/fd``), live event loops and the package's own
objects (found with the garbage collector), each back to where it started
within the tolerance below; and the memory ``tracemalloc`` sees allocated
over the second half of the run.
"""

from __future__ import annotations

import asyncio
import collections
import gc
import os
import threading
import time
import tracemalloc
import typing as t

import pytest
from flask import Flask
from servers.app import create_app

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc"),
]

REQUESTS = 5000
WARM_UP = 200
CLIENTS = 4
#: Tolerances: threads and fds may differ by this much from the start (a
#: worker thread of an executor, which asyncio starts and stops on demand).
THREADS_TOLERANCE = 1
FDS_TOLERANCE = 2
#: Live objects of the package's own types beyond the starting count.
OBJECTS_TOLERANCE = 10
#: Net memory allocated (and still held) over the second half: 2,500
#: requests. A leak of one small object per request is already ~250 KiB.
MEMORY_BOUND = 256 * 1024
#: Under coverage only: coverage.py keeps one tracer per thread ever started
#: (about 1.7 KiB each, measured), and Flask's default bridge starts a thread
#: per async call. That much is allowed per thread started.
COVERAGE_PER_THREAD = 2 * 1024


def measured_by_coverage() -> bool:
    try:
        import coverage
    except ImportError:
        return False

    return coverage.Coverage.current() is not None


class ThreadStarts:
    """Counts the threads started while it is active."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        original = threading.Thread.start

        def start(thread: threading.Thread) -> None:
            self.count += 1
            original(thread)

        monkeypatch.setattr(threading.Thread, "start", start)


class Counts(t.NamedTuple):
    threads: int
    fds: int
    open_loops: int
    all_loops: int
    own_objects: collections.Counter[str]


def counts() -> Counts:
    gc.collect()
    loops = [o for o in gc.get_objects() if isinstance(o, asyncio.AbstractEventLoop)]
    own = collections.Counter(
        type(o).__qualname__
        for o in gc.get_objects()
        if str(type(o).__dict__.get("__module__", "")).startswith("flask_asyncext")
    )
    return Counts(
        threading.active_count(),
        len(os.listdir("/proc/self/fd")),
        sum(not loop.is_closed() for loop in loops),
        len(loops),
        own,
    )


def settled(before: Counts, timeout: float = 10) -> Counts:
    """The counts once threads and fds are back within tolerance, or after
    ``timeout`` seconds (threads of finished calls may still be exiting).
    """
    deadline = time.monotonic() + timeout

    while True:
        now = counts()

        if (
            now.threads <= before.threads + THREADS_TOLERANCE
            and now.fds <= before.fds + FDS_TOLERANCE
        ) or time.monotonic() > deadline:
            return now

        time.sleep(0.05)


def send(app: Flask, total: int, offset: int) -> list[str]:
    """``total`` requests to the async view from CLIENTS threads; return the
    problems seen (none expected).
    """
    problems: list[str] = []

    def client(number: int) -> None:
        with app.test_client() as client:
            for i in range(number, total, CLIENTS):
                ident = f"r{offset + i}"
                response = client.get(f"/async?id={ident}")
                data = response.get_json()

                if response.status_code != 200 or data["var"] != ident:
                    problems.append(f"{ident}: {response.status_code} {data}")

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]

    for thread in threads:
        thread.start()

    for thread in threads:
        thread.join(300)

    return problems


@pytest.mark.parametrize("bridge", ["default", "shared"])
def test_nothing_leaks(bridge: str, monkeypatch: pytest.MonkeyPatch) -> None:
    app = create_app(bridge)
    runner = app.extensions.get("flask_asyncext.shared_loop")

    try:
        assert send(app, WARM_UP, 0) == []
        before = settled(counts())
        half = (REQUESTS - WARM_UP) // 2
        assert send(app, half, WARM_UP) == []

        tracemalloc.start()

        try:
            start = tracemalloc.take_snapshot()

            with monkeypatch.context() as patch:
                starts = ThreadStarts(patch)
                assert send(app, REQUESTS - WARM_UP - half, WARM_UP + half) == []

            gc.collect()
            end = tracemalloc.take_snapshot()
        finally:
            tracemalloc.stop()

        after = settled(before)
    finally:
        if runner is not None:
            runner.close(timeout=5)

    growth = sum(stat.size_diff for stat in end.compare_to(start, "filename"))
    top = end.compare_to(start, "lineno")[:5]
    bound = MEMORY_BOUND

    if measured_by_coverage():
        bound += COVERAGE_PER_THREAD * starts.count

    print(
        f"{bridge}: before {before[:4]}, after {after[:4]}, growth {growth} B"
        f" (bound {bound} B, {starts.count} threads started)"
    )
    print("\n".join(map(str, top)))
    assert after.threads <= before.threads + THREADS_TOLERANCE, (before, after)
    assert after.fds <= before.fds + FDS_TOLERANCE, (before, after)
    # Flask's default bridge closes each call's loop; the shared loop is one.
    assert after.open_loops == before.open_loops == (bridge == "shared")
    assert after.all_loops <= before.all_loops + 1, (before, after)
    grown = after.own_objects - before.own_objects
    assert sum(grown.values()) <= OBJECTS_TOLERANCE, grown

    if runner is not None:
        loop = runner.loop
        assert asyncio.all_tasks(loop) == set()

    assert growth < bound, "\n".join(map(str, top))
