"""Measure what the portal (``flask_asyncext.portal.SyncPortal``) costs a
request.

Run from the repository root::

    python benchmarks/portal.py           # about a minute
    python benchmarks/portal.py --quick   # a smoke run

Each case is a WSGI request to an in-process app, timed in process CPU time
(every thread counts: Flask's default bridge runs the loop in another one).
The cases of a table run interleaved, in a new random order each round; the
table shows the median time per request over the rounds and the median over
rounds of each case's ratio to the first one. Nothing here is a test.
"""

from __future__ import annotations

import argparse
import asyncio
import collections.abc as cabc
import io
import os
import random
import statistics
import sys
import time
import typing as t

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from flask import Flask  # noqa: E402
from flask import g  # noqa: E402

from flask_asyncext import ensure_sync  # noqa: E402
from flask_asyncext.portal import SyncPortal  # noqa: E402
from flask_asyncext.shared_loop import SharedLoop  # noqa: E402

Case = cabc.Callable[[], object]


async def load_user(user_id: str) -> str:
    await asyncio.sleep(0)  # a database query that suspends once
    return f"user {user_id}"


def current_user() -> str:
    """Sync code, like a ``current_user`` proxy: waits for the loader."""
    if "user" not in g:
        g.user = ensure_sync(load_user)("1")

    return t.cast(str, g.user)


def make_app(portal: bool, shared_loop: SharedLoop | None) -> Flask:
    app = Flask(__name__)

    if portal:
        SyncPortal(app)

    if shared_loop is not None:
        shared_loop.init_app(app)

    @app.get("/async")
    async def plain() -> str:
        return "ok"

    @app.get("/async/await")
    async def awaits() -> str:
        # The same work as below, written as async code.
        return await load_user("1")

    @app.get("/async/sync-code")
    async def sync_code() -> str:
        return current_user()

    @app.get("/sync")
    def sync() -> str:
        return "ok"

    return app


def wsgi_case(app: Flask, path: str) -> Case:
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }

    def start_response(status: str, headers: t.Any, exc_info: t.Any = None) -> t.Any:
        assert status.startswith("200"), status
        return None

    def call() -> object:
        body = app.wsgi_app(dict(environ), start_response)
        b"".join(body)  # type: ignore[arg-type]
        return body

    return call


def per_request(case: Case, n: int) -> float:
    start = time.process_time()

    for _ in range(n):
        case()

    return (time.process_time() - start) / n


def run_table(
    title: str, cases: dict[str, Case], rounds: int, n: int
) -> list[tuple[str, float, float]]:
    for case in cases.values():
        case()  # warm up

    times: dict[str, list[float]] = {name: [] for name in cases}
    order = list(cases)

    for _ in range(rounds):
        random.shuffle(order)

        for name in order:
            times[name].append(per_request(cases[name], n))

    base = next(iter(cases))
    rows = []

    for name in cases:
        ratio = statistics.median(
            a / b for a, b in zip(times[name], times[base], strict=True)
        )
        rows.append((name, statistics.median(times[name]), ratio))

    print(f"\n{title}")
    print(f"  {'case':<44} {'us/request':>11} {'ratio':>7}")

    for name, median, ratio in rows:
        print(f"  {name:<44} {median * 1e6:>11.1f} {ratio:>7.2f}")

    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    args = parser.parse_args(argv)
    rounds, n = (3, 20) if args.quick else (15, 200)
    print(
        f"Python {sys.version.split()[0]}; process CPU time, median of {rounds}"
        f" rounds of {n} requests per case."
    )

    shared_loop = SharedLoop()

    try:
        for bridge, runner in (
            ("Flask's default bridge", None),
            ("SharedLoop", shared_loop),
        ):
            without = make_app(portal=False, shared_loop=runner)
            with_portal = make_app(portal=True, shared_loop=runner)
            run_table(
                f"{bridge}: what SyncPortal adds to a request",
                {
                    "async view, no portal": wsgi_case(without, "/async"),
                    "async view, SyncPortal": wsgi_case(with_portal, "/async"),
                    "sync view, no portal": wsgi_case(without, "/sync"),
                    "sync view, SyncPortal": wsgi_case(with_portal, "/sync"),
                },
                rounds,
                n,
            )
            run_table(
                f"{bridge}: waiting for a loader from sync code",
                {
                    "async view awaits the loader, no portal": wsgi_case(
                        without, "/async/await"
                    ),
                    "async view awaits the loader, SyncPortal": wsgi_case(
                        with_portal, "/async/await"
                    ),
                    "sync code waits (current_user), SyncPortal": wsgi_case(
                        with_portal, "/async/sync-code"
                    ),
                },
                rounds,
                n,
            )
    finally:
        shared_loop.close(timeout=10)

    return 0


if __name__ == "__main__":
    sys.exit(main())
