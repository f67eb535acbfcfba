"""SharedLoop under gevent: gevent's WSGI server and gunicorn's gevent worker.

Each server runs in its own process (``gevent.monkey.patch_all()`` must come
first there) and serves 20 concurrent requests to async views, which await
on the shared loop while the other requests' greenlets run.
"""

from __future__ import annotations

import concurrent.futures
import http.client
import os
import socket
import subprocess
import sys
import time

import pytest

pytest.importorskip("gevent")

pytestmark = pytest.mark.slow

PATIENCE = 60
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONCURRENT = 20

#: The app both servers serve (the recipe the docs include).
EXAMPLES = os.path.join(ROOT, "examples", "shared_loop")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + PATIENCE
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    pytest.fail(f"nothing listens on port {port}")


def get(port: int, path: str) -> tuple[int, str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=PATIENCE)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


def hammer(port: int) -> list[tuple[int, str]]:
    """20 requests at once, from 20 client threads."""
    with concurrent.futures.ThreadPoolExecutor(CONCURRENT) as pool:
        return list(pool.map(lambda n: get(port, f"/{n}"), range(CONCURRENT)))


def check(results: list[tuple[int, str]], port: int) -> None:
    statuses = [status for status, _ in results]
    assert statuses == [200] * CONCURRENT, results
    bodies = [body.split() for _, body in results]
    assert [int(n) for n, _, _ in bodies] == list(range(CONCURRENT))
    # One process, one loop, every request on it.
    assert len({(loop, pid) for _, loop, pid in bodies}) == 1
    # The requests overlapped on the loop (they did not queue one by one).
    status, most = get(port, "/most-in-flight")
    assert status == 200
    assert int(most) > 1


def start(command: list[str], port: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        command,
        cwd=EXAMPLES,
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join([EXAMPLES, ROOT]),
            "PORT": str(port),
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def stop(process: subprocess.Popen[str]) -> str:
    process.terminate()
    try:
        _, stderr = process.communicate(timeout=PATIENCE)
    except subprocess.TimeoutExpired:  # pragma: no cover (a wedged server)
        process.kill()
        _, stderr = process.communicate()
    return stderr


def test_gevent_pywsgi() -> None:
    port = free_port()
    server = start([sys.executable, "gevent_app.py"], port)
    try:
        wait_for_port(port, server)
        check(hammer(port), port)
        check(hammer(port), port)  # and again, on the same loop
    finally:
        stderr = stop(server)
    assert "Traceback" not in stderr, stderr


def test_gunicorn_gevent_worker() -> None:
    pytest.importorskip("gunicorn")
    port = free_port()
    server = start(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--worker-class",
            "gevent",
            "--workers",
            "1",
            "--bind",
            f"127.0.0.1:{port}",
            "--graceful-timeout",
            "5",
            "gevent_app:app",
        ],
        port,
    )
    try:
        wait_for_port(port, server)
        check(hammer(port), port)
        check(hammer(port), port)
    finally:
        stderr = stop(server)
    assert "Traceback" not in stderr, stderr


#: Run under gevent.monkey.patch_all(): requests' greenlets wake the loop
#: without its self-pipe; another OS thread wakes it through the self-pipe.
WAKE_SCRIPT = """
from gevent import monkey

monkey.patch_all()

import asyncio
import selectors
import sys
import threading
import types
from asyncio import selector_events

import gevent
import gevent.event
import gevent.selectors

from flask_asyncext._loop_runner import gevent_waker
from flask_asyncext.shared_loop import SharedLoop

writes = []
write_to_self = selector_events.BaseSelectorEventLoop._write_to_self


def counting(self):
    writes.append(monkey.get_original("_thread", "get_ident")())
    write_to_self(self)


selector_events.BaseSelectorEventLoop._write_to_self = counting


async def answer(n):
    await asyncio.sleep(0)
    return n


shared = SharedLoop()
run = shared.async_to_sync(answer)
assert run(-1) == -1  # the loop thread has started
del writes[:]



def requests(k):
    return [run(k * 100 + n) for n in range(100)]


greenlets = [gevent.spawn(requests, k) for k in range(4)]
gevent.joinall(greenlets, timeout=30, raise_error=True)
assert [g.value for g in greenlets] == [
    [k * 100 + n for n in range(100)] for k in range(4)
]
print("self-pipe writes from greenlets:", len(writes))

called = gevent.event.Event()
start_new_thread = monkey.get_original("_thread", "start_new_thread")
trace = threading.gettrace()  # coverage's, as threading.Thread would install


def from_another_thread():
    sys.settrace(trace)
    shared.loop.call_soon_threadsafe(called.set)


start_new_thread(from_another_thread, ())
assert called.wait(30), "the loop was not woken from another OS thread"
print("self-pipe writes from another OS thread:", len(writes))

without_gevent = asyncio.SelectorEventLoop(selectors.SelectSelector())
assert gevent_waker(without_gevent) is None
without_gevent.close()


class NoEvent(gevent.selectors.GeventSelector):
    def __init__(self):
        pass


assert gevent_waker(types.SimpleNamespace(_selector=NoEvent())) is None
shared.close(5)
print("done")
"""


def test_greenlets_wake_the_loop_without_its_self_pipe() -> None:
    result = subprocess.run(
        [sys.executable, "-c", WAKE_SCRIPT],
        env={**os.environ, "PYTHONPATH": ROOT},
        capture_output=True,
        text=True,
        timeout=PATIENCE,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "self-pipe writes from greenlets: 0",
        "self-pipe writes from another OS thread: 1",
        "done",
    ], result.stderr
