"""Start a real server in a subprocess and load it from many client threads.

Every server listens on 127.0.0.1 on a free port, is polled until it answers,
and is stopped in teardown: SIGTERM first (so the process exits cleanly and
writes its coverage data), then SIGKILL if it has not exited in time.
"""

from __future__ import annotations

import collections
import collections.abc as cabc
import contextlib
import dataclasses
import http.client
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import threading
import time
import typing as t

TESTS = pathlib.Path(__file__).parent.parent
#: Seconds a server may take to start answering, or to stop after SIGTERM.
START_TIMEOUT = 30
STOP_TIMEOUT = 15
#: Seconds one request may take before it counts as an error.
REQUEST_TIMEOUT = 30


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def command(server: str, port: int) -> list[str]:
    """The command line that serves :mod:`servers.app` with ``server``."""
    python = [sys.executable]
    bind = f"127.0.0.1:{port}"

    if server in ("werkzeug", "waitress", "gevent"):
        return [*python, "-m", "servers.serve", server, str(port)]

    if server == "gunicorn-gthread":
        return [
            *python, "-m", "gunicorn", "-k", "gthread", "--threads", "8",
            "-w", "1", "-b", bind, "--log-level", "warning", "servers.app:app",
        ]  # fmt: skip

    if server == "gunicorn-gevent":
        return [
            *python, "-m", "gunicorn", "-k", "gevent", "--worker-connections",
            "100", "-w", "1", "-b", bind, "--log-level", "warning",
            "servers.app:app",
        ]  # fmt: skip

    if server.startswith("uvicorn"):
        # uvicorn: the plain WsgiToAsgi app; uvicorn-reset-contextvars: with
        # uvicorn's option; uvicorn-fresh-context: with the app's middleware.
        extra = ["--reset-contextvars"] if server.endswith("contextvars") else []
        app = "fresh_asgi_app" if server.endswith("fresh-context") else "asgi_app"
        return [
            *python, "-m", "uvicorn", "--host", "127.0.0.1", "--port",
            str(port), "--no-access-log", "--log-level", "warning", *extra,
            f"servers.app:{app}",
        ]  # fmt: skip

    raise ValueError(f"unknown server {server!r}")


@dataclasses.dataclass
class Server:
    name: str
    bridge: str
    port: int
    process: subprocess.Popen[bytes]
    log: pathlib.Path
    #: Set in teardown: the server did not stop by itself and was killed.
    killed: bool | None = None

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def get(self, path: str, timeout: float = REQUEST_TIMEOUT) -> tuple[int, t.Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

        try:
            conn.request("GET", path)
            response = conn.getresponse()
            body = response.read()
        finally:
            conn.close()

        try:
            return response.status, json.loads(body)
        except ValueError:
            return response.status, body.decode(errors="replace")


@contextlib.contextmanager
def running(
    name: str, bridge: str, log_dir: pathlib.Path, **env: str
) -> cabc.Iterator[Server]:
    """Run ``name`` serving the test app with ``bridge`` until the block ends."""
    port = free_port()
    log = log_dir / f"{name}-{bridge}.log"
    environ = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(TESTS), *filter(None, [os.environ.get("PYTHONPATH")])]
        ),
        "ASYNCEXT_TEST_BRIDGE": bridge,
        **env,
    }

    with log.open("wb") as out:
        process = subprocess.Popen(
            command(name, port),
            env=environ,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=log_dir,
        )

    server = Server(name, bridge, port, process, log)

    try:
        wait_ready(server)
        yield server
    finally:
        # uvicorn re-raises the signal it stopped on once it is done: SIGINT
        # then ends the process with KeyboardInterrupt, through atexit.
        signum = signal.SIGINT if name.startswith("uvicorn") else signal.SIGTERM
        server.killed = stop(process, signum)


def wait_ready(server: Server) -> None:
    wait_ready_path(server, "/ready")


def wait_ready_path(server: Server, path: str) -> None:
    """Poll ``path`` until it answers 200, the process exits or time is up."""
    deadline = time.monotonic() + START_TIMEOUT

    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"{server.name} exited with {server.process.returncode}:\n"
                + server.output()
            )

        try:
            status, _ = server.get(path, timeout=2)
        except OSError:
            time.sleep(0.05)
        else:
            if status == 200:
                return

    raise RuntimeError(f"{server.name} did not answer:\n" + server.output())


def stop(process: subprocess.Popen[bytes], signum: int = signal.SIGTERM) -> bool:
    """Stop the server: ``signum``, then SIGKILL. Return whether it had to be
    killed.
    """
    if process.poll() is None:
        process.send_signal(signum)

        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            return True

    return False


@dataclasses.dataclass
class Load:
    """What a load run saw."""

    requests: int = 0
    statuses: collections.Counter[int] = dataclasses.field(
        default_factory=collections.Counter
    )
    #: Observations (or answers) naming another request's id.
    crosstalk: list[t.Any] = dataclasses.field(default_factory=list)
    #: Requests that failed: a transport error or a status that is not 200.
    errors: list[str] = dataclasses.field(default_factory=list)
    #: Process ids that answered.
    pids: set[int] = dataclasses.field(default_factory=set)
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    def summary(self) -> str:
        return (
            f"{self.requests} requests, statuses {dict(self.statuses)},"
            f" {len(self.crosstalk)} crosstalk, {len(self.errors)} errors"
            + ("; first errors: " + " | ".join(self.errors[:3]) if self.errors else "")
        )


def check_answer(ident: str, kind: str, status: int, body: bytes, load: Load) -> None:
    with load.lock:
        load.statuses[status] += 1

        if status != 200:
            load.errors.append(f"{kind} {status}: {body[:300]!r}")
            return

        data = json.loads(body)
        load.pids.add(data["pid"])
        answer = [data["id"], data["caller"], data["var"], data["kind"]]

        if answer != [ident, ident, ident, kind]:
            load.crosstalk.append(answer)

        # Each step of the decorators and the view: [where, g, var, request].
        expected_steps = 5 if kind == "sync" else 7

        if len(data["seen"]) != expected_steps:
            load.crosstalk.append(data["seen"])

        for where, *seen in data["seen"]:
            if seen != [ident, ident, ident]:
                load.crosstalk.append([where, *seen])


def load(
    port: int, total: int = 2000, clients: int = 16, time_limit: float = 120
) -> Load:
    """Send ``total`` requests from ``clients`` threads, each on one keep-alive
    connection (reopened when the server closes it), alternating the sync and
    the async view. Stops by itself after ``time_limit`` seconds.
    """
    result = Load()
    deadline = time.monotonic() + time_limit
    per_client = total // clients

    def client(number: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT)

        try:
            for i in range(per_client):
                if time.monotonic() > deadline:
                    with result.lock:
                        result.errors.append("time limit reached")
                    return

                kind = "sync" if (number + i) % 2 else "async"
                ident = f"c{number}-r{i}"

                try:
                    conn.request("GET", f"/{kind}?id={ident}")
                    response = conn.getresponse()
                    body = response.read()
                except (OSError, http.client.HTTPException) as e:
                    conn.close()

                    with result.lock:
                        result.requests += 1
                        result.errors.append(f"{kind}: {e!r}")

                    continue

                with result.lock:
                    result.requests += 1

                check_answer(ident, kind, response.status, body, result)
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]

    for thread in threads:
        thread.start()

    for thread in threads:
        thread.join(max(0, deadline - time.monotonic()) + REQUEST_TIMEOUT)

    return result
