"""Measure what the toolkit and the shared loop cost, side by side.

Run from the repository root::

    python benchmarks/run.py           # full run (several minutes)
    python benchmarks/run.py --quick   # smoke run, under a minute

Every comparison is a ratio of two cases measured in the same round, one
after the other; rounds are repeated and the table shows the median ratio.
Absolute times depend on the machine; ratios much less so. Nothing here is a
test: nothing fails on a slow or noisy machine.
"""

from __future__ import annotations

import argparse
import asyncio
import collections.abc as cabc
import contextlib
import http.client
import io
import os
import platform
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
import typing as t

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [HERE, ROOT]

import apps  # noqa: E402
import flask  # noqa: E402

Case = cabc.Callable[[], object]

#: Run at the end of the micro-benchmarks (loops and runners to close).
cleanups: list[cabc.Callable[[], object]] = []


# --- timing ------------------------------------------------------------------


def calibrate(case: Case, seconds: float) -> int:
    """How many calls of ``case`` take about ``seconds``."""
    n = 1
    while True:
        start = time.perf_counter()
        for _ in range(n):
            case()
        elapsed = time.perf_counter() - start
        if elapsed >= seconds / 4:
            return max(1, int(n * seconds / elapsed))
        n *= 4


def per_call(case: Case, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        case()
    return (time.perf_counter() - start) / n


class Group:
    """Cases timed in the same rounds, in a shuffled order each round."""

    def __init__(self, title: str, cases: dict[str, Case]) -> None:
        self.title = title
        self.cases = cases
        self.times: dict[str, list[float]] = {name: [] for name in cases}

    def run(self, rounds: int, seconds: float) -> None:
        counts = {name: calibrate(case, seconds) for name, case in self.cases.items()}
        names = list(self.cases)
        for _ in range(rounds):
            random.shuffle(names)
            for name in names:
                self.times[name].append(per_call(self.cases[name], counts[name]))

    def median(self, name: str) -> float:
        return statistics.median(self.times[name])

    def ratio(self, a: str, b: str) -> float:
        """Median over rounds of time(a) / time(b)."""
        return statistics.median(
            x / y for x, y in zip(self.times[a], self.times[b], strict=True)
        )


# --- cases -------------------------------------------------------------------


def wsgi_case(app: flask.Flask) -> Case:
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
        body = b"".join(app(environ, start_response))  # type: ignore[arg-type]
        assert body == b"Hello, World!", body
        return body

    call()
    return call


def async_case(
    func: cabc.Callable[[], cabc.Awaitable[object]], loop: asyncio.AbstractEventLoop
) -> Case:
    """Time ``await func()`` inside one running loop, batched."""
    batch = 100

    async def many() -> None:
        for _ in range(batch):
            await func()

    def call() -> object:
        loop.run_until_complete(many())
        return None

    call()
    return call


def build_groups() -> list[tuple[Group, list[tuple[str, str, str, float | None, str]]]]:
    """Each group with its rows: (label, a, b, target, how the target reads)."""
    groups = []

    # Per call, direct, sync: the wrapper alone, no Flask request.
    g = Group(
        "per call, sync view, direct",
        {
            "hand-written wraps": apps.handwritten_sync(apps.sync_view),
            "toolkit plain body": apps.toolkit_plain(apps.sync_view),
            "toolkit generator body": apps.toolkit_generator(apps.sync_view),
        },
    )
    groups.append(
        (
            g,
            [
                (
                    "toolkit plain body / hand-written wraps",
                    "toolkit plain body",
                    "hand-written wraps",
                    2.0,
                    "<=",
                ),
                (
                    "toolkit generator body / hand-written wraps",
                    "toolkit generator body",
                    "hand-written wraps",
                    4.0,
                    "<=",
                ),
            ],
        )
    )

    # Per call, direct, async: awaited inside one running loop (100 per batch).
    loop = asyncio.new_event_loop()
    cleanups.append(loop.close)
    g = Group(
        "per call, async view, direct (100 awaits per sample)",
        {
            "hand-written async def": async_case(
                apps.handwritten_async_passthrough(apps.async_view), loop
            ),
            "toolkit plain body": async_case(apps.toolkit_plain(apps.async_view), loop),
            "toolkit generator body": async_case(
                apps.toolkit_generator(apps.async_view), loop
            ),
        },
    )
    groups.append(
        (
            g,
            [
                (
                    "toolkit plain body / hand-written async def",
                    "toolkit plain body",
                    "hand-written async def",
                    2.0,
                    "<=",
                ),
                (
                    "toolkit generator body / hand-written async def",
                    "toolkit generator body",
                    "hand-written async def",
                    4.0,
                    "<=",
                ),
            ],
        )
    )

    # Per request, direct WSGI call, sync view.
    g = Group(
        "per request (WSGI call), sync view",
        {
            "bare": wsgi_case(apps.make_app(apps.sync_view)),
            "3 hand-written": wsgi_case(
                apps.make_app(apps.stack(apps.handwritten_sync, apps.sync_view))
            ),
            "3 toolkit plain": wsgi_case(
                apps.make_app(apps.stack(apps.toolkit_plain, apps.sync_view))
            ),
            "3 toolkit generator": wsgi_case(
                apps.make_app(apps.stack(apps.toolkit_generator, apps.sync_view))
            ),
        },
    )
    groups.append(
        (
            g,
            [
                (
                    "3 toolkit plain / 3 hand-written",
                    "3 toolkit plain",
                    "3 hand-written",
                    1.03,
                    "<=",
                ),
                (
                    "3 toolkit generator / 3 hand-written",
                    "3 toolkit generator",
                    "3 hand-written",
                    1.03,
                    "<=",
                ),
                ("3 hand-written / bare view", "3 hand-written", "bare", None, ""),
            ],
        )
    )

    # Per request, direct WSGI call, async view, Flask's default bridge.
    g = Group(
        "per request (WSGI call), async view + 3 async checks, default bridge",
        {
            "bare async view": wsgi_case(apps.make_app(apps.async_view)),
            "3 hand-written async def": wsgi_case(
                apps.make_app(apps.stack(apps.handwritten_async, apps.async_view))
            ),
            "3 toolkit": wsgi_case(
                apps.make_app(apps.stack(apps.toolkit_async_check, apps.async_view))
            ),
            "3 ensure_sync way": wsgi_case(
                apps.make_app(apps.stack(apps.ensure_sync_way, apps.async_view))
            ),
        },
    )
    groups.append(
        (
            g,
            [
                (
                    "3 toolkit / 3 hand-written async def",
                    "3 toolkit",
                    "3 hand-written async def",
                    1.05,
                    "<=",
                ),
                (
                    "3 ensure_sync way / 3 toolkit",
                    "3 ensure_sync way",
                    "3 toolkit",
                    3.0,
                    ">=",
                ),
                (
                    "3 toolkit / bare async view",
                    "3 toolkit",
                    "bare async view",
                    None,
                    "",
                ),
            ],
        )
    )

    # Per request: the shared loop against the default bridge and a sync view.
    shared = apps.SharedLoop()
    cleanups.append(shared.close)
    g = Group(
        "per request (WSGI call), shared loop",
        {
            "sync view": wsgi_case(apps.make_app(apps.sync_view)),
            "async view, default bridge": wsgi_case(apps.make_app(apps.async_view)),
            "async view, shared loop": wsgi_case(
                apps.make_app(apps.async_view, shared=shared)
            ),
            "async view + 3 toolkit, shared loop": wsgi_case(
                apps.make_app(
                    apps.stack(apps.toolkit_async_check, apps.async_view), shared=shared
                )
            ),
        },
    )
    groups.append(
        (
            g,
            [
                (
                    "async view, shared loop / sync view",
                    "async view, shared loop",
                    "sync view",
                    1.5,
                    "<=",
                ),
                (
                    "async view, default bridge / sync view",
                    "async view, default bridge",
                    "sync view",
                    None,
                    "",
                ),
                (
                    "default bridge / shared loop",
                    "async view, default bridge",
                    "async view, shared loop",
                    None,
                    "",
                ),
                (
                    "async + 3 toolkit, shared loop / sync view",
                    "async view + 3 toolkit, shared loop",
                    "sync view",
                    None,
                    "",
                ),
            ],
        )
    )
    return groups


# --- real servers ----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(
    port: int, process: subprocess.Popen[bytes], limit: float = 30
) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"server on port {port} exited with {process.returncode}"
            )
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", port), 0.2),
        ):
            return
        time.sleep(0.05)
    raise RuntimeError(f"server on port {port} did not start")


def server_commands(port: int) -> dict[str, list[str]]:
    gunicorn = [
        sys.executable,
        "-m",
        "gunicorn",
        "-k",
        "gthread",
        "--threads",
        "8",
        "-w",
        "1",
        "-b",
        f"127.0.0.1:{port}",
        "--log-level",
        "warning",
    ]
    return {
        "Flask sync, gunicorn gthread": [*gunicorn, "apps:sync_app"],
        "Flask async, default bridge, gunicorn gthread": [*gunicorn, "apps:async_app"],
        "Flask async, shared loop, gunicorn gthread": [*gunicorn, "apps:shared_app"],
        "Quart, uvicorn": [
            sys.executable,
            "-m",
            "uvicorn",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
            "apps:quart_app",
        ],
    }


def load_wrk(port: int, seconds: float, connections: int) -> float:
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{round(seconds)}s",
            f"http://127.0.0.1:{port}/",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 30,
    ).stdout
    match = re.search(r"Requests/sec:\s*([\d.]+)", out)
    assert match is not None, out
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(out)
    return float(match.group(1))


def load_python(port: int, seconds: float, connections: int) -> float:
    """A bounded keep-alive client for machines without wrk (slower, so its
    numbers are comparable only with each other).
    """
    deadline = time.monotonic() + seconds
    counts = [0] * connections

    def worker(i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while time.monotonic() < deadline:
            conn.request("GET", "/")
            response = conn.getresponse()
            assert response.status == 200
            response.read()
            counts[i] += 1
        conn.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts) / seconds


def run_servers(
    rounds: int, seconds: float, connections: int
) -> tuple[dict[str, list[float]], str] | None:
    missing = [m for m in ("gunicorn", "uvicorn", "quart") if not _importable(m)]
    if missing:
        print(
            f"skipping real servers: install {', '.join(missing)} (the 'bench' group)"
        )
        return None
    load = load_wrk if shutil.which("wrk") else load_python
    client = (
        f"wrk -t1 -c{connections} -d{seconds:g}s"
        if load is load_wrk
        else f"Python keep-alive client, {connections} connections, {seconds:g}s"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([HERE, ROOT]))
    processes: dict[str, tuple[int, subprocess.Popen[bytes]]] = {}
    rps: dict[str, list[float]] = {}
    try:
        for name, command in server_commands(0).items():
            port = free_port()
            command = [str(port) if part == "0" else part for part in command]
            command = [
                f"127.0.0.1:{port}" if part == "127.0.0.1:0" else part
                for part in command
            ]
            process = subprocess.Popen(command, cwd=HERE, env=env)
            processes[name] = (port, process)
        for name, (port, process) in processes.items():
            wait_for_port(port, process)
            load(port, 1, connections)  # warm up
            rps[name] = []
        names = list(processes)
        for _ in range(rounds):
            random.shuffle(names)
            for name in names:
                rps[name].append(load(processes[name][0], seconds, connections))
    finally:
        for _, process in processes.values():
            process.terminate()
        for _, process in processes.values():
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    return rps, client


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


# --- report ----------------------------------------------------------------------


def machine() -> str:
    model = "unknown CPU"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    from importlib.metadata import version

    return (
        f"{os.cpu_count()} CPUs ({model}), {platform.system()} {platform.release()},"
        f" Python {platform.python_version()}, Flask {version('flask')},"
        f" Werkzeug {version('werkzeug')}, asgiref {version('asgiref')}"
        + "".join(
            f", {name} {version(name)}"
            for name in ("gunicorn", "uvicorn", "quart")
            if _importable(name)
        )
    )


def status(value: float, target: float | None, how: str) -> str:
    if target is None:
        return ""
    ok = value <= target if how == "<=" else value >= target
    return ("met" if ok else "MISSED") + f" ({how} {target:g}x)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="a short smoke run (< 1 min)"
    )
    parser.add_argument("--rounds", type=int, help="rounds per group")
    parser.add_argument(
        "--no-servers", action="store_true", help="skip the real-server runs"
    )
    options = parser.parse_args(argv)
    rounds = options.rounds or (5 if options.quick else 25)
    seconds = 0.01 if options.quick else 0.03
    server_rounds = 1 if options.quick else 12
    server_seconds = 2.0
    connections = 16

    print(machine())
    print(
        f"{rounds} rounds per group; each row is the median over rounds of a ratio"
        " measured within one round\n"
    )
    rows: list[tuple[str, str, str, str]] = []

    for group, comparisons in build_groups():
        group.run(rounds, seconds)
        rows.append((f"**{group.title}**", "", "", ""))
        for label, a, b, target, how in comparisons:
            ratio = group.ratio(a, b)
            times = f"{group.median(a) * 1e6:.1f} / {group.median(b) * 1e6:.1f} us"
            rows.append((label, f"{ratio:.2f}x", times, status(ratio, target, how)))

    for cleanup in cleanups:
        cleanup()

    if not options.no_servers:
        result = run_servers(server_rounds, server_seconds, connections)
        if result is not None:
            rps, client = result
            rows.append(
                (f"**real servers on 127.0.0.1 ({client}), requests/s**", "", "", "")
            )
            quart = "Quart, uvicorn"
            for name, values in rps.items():
                median = statistics.median(values)
                ratio = statistics.median(
                    x / y for x, y in zip(values, rps[quart], strict=True)
                )
                target = 1.0 if "shared loop" in name else None
                rows.append(
                    (
                        f"{name} / Quart",
                        f"{ratio:.2f}x",
                        f"{median:,.0f} req/s",
                        status(ratio, target, ">="),
                    )
                )
            sync = "Flask sync, gunicorn gthread"
            for name in (n for n in rps if n.startswith("Flask async")):
                ratio = statistics.median(
                    x / y for x, y in zip(rps[name], rps[sync], strict=True)
                )
                rows.append((f"{name} / Flask sync", f"{ratio:.2f}x", "", ""))

    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    header = ("comparison", "ratio", "medians (a / b)", "target")
    widths = [max(w, len(h)) for w, h in zip(widths, header, strict=True)]
    line = "  ".join("=" * w for w in widths)
    print(line)
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print(line)
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
