"""The ``examples/shared_db`` recipe: one SQLAlchemy asyncio engine (on
aiosqlite) per process, its pool shared by concurrent requests from many
server threads under SharedLoop, a session per request, a clean close; and
the same app failing on Flask's default bridge.
"""

from __future__ import annotations

import collections
import collections.abc as cabc
import http.client
import json
import pathlib
import subprocess
import sys
import threading
import time
import typing as t

import pytest
from flask import Flask
from flask import got_request_exception
from servers import harness
from werkzeug.serving import make_server

# In the "servers" dependency group: only the slow test env installs them.
pytest.importorskip("sqlalchemy.ext.asyncio")
pytest.importorskip("aiosqlite")

from servers.shared_db_app import add_check_view
from servers.shared_db_app import load_recipe

pytestmark = pytest.mark.slow

CLIENTS = 12
PER_CLIENT = 25
#: Fewer pooled connections than concurrent requests: requests wait for one.
POOL = {"pool_size": 3, "max_overflow": 0, "pool_timeout": 5}


def config(tmp_path: pathlib.Path) -> dict[str, t.Any]:
    return {
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'notes.sqlite'}",
        "DATABASE_ENGINE_OPTIONS": POOL,
    }


class Served(t.NamedTuple):
    app: Flask
    recipe: t.Any
    port: int
    errors: list[BaseException]


@pytest.fixture
def serve(tmp_path: pathlib.Path) -> cabc.Iterator[cabc.Callable[[bool], Served]]:
    """Serve a fresh copy of the recipe's app from Werkzeug's threaded
    server (a thread per request) in this process.
    """
    servers = []

    def start(shared: bool) -> Served:
        recipe = load_recipe()
        app = recipe.create_app(config(tmp_path))

        if not shared:
            # Flask's default bridge: the recipe without its SharedLoop.
            del app.async_to_sync

        add_check_view(app, recipe.db)
        errors: list[BaseException] = []

        def record(sender: Flask, exception: BaseException, **kwargs: t.Any) -> None:
            errors.append(exception)

        got_request_exception.connect(record, app, weak=False)
        server = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever)
        thread.start()
        servers.append((server, thread, recipe))
        return Served(app, recipe, server.port, errors)

    yield start

    for server, thread, recipe in servers:
        server.shutdown()
        server.server_close()
        thread.join(harness.STOP_TIMEOUT)
        recipe.shared_loop.close(timeout=5)


#: Seconds a hammer() run may take; requests not sent by then count as
#: status -1 (a working app needs a few seconds at most).
TIME_LIMIT = 20


def hammer(port: int) -> tuple[collections.Counter[int], list[t.Any]]:
    """Concurrent requests from CLIENTS threads: add notes and check
    sessions. Return the statuses and the /check answers.
    """
    deadline = time.monotonic() + TIME_LIMIT
    statuses: collections.Counter[int] = collections.Counter()
    checks: list[t.Any] = []
    lock = threading.Lock()

    def client(number: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)

        try:
            for i in range(PER_CLIENT):
                ident = f"c{number}-r{i}"

                if time.monotonic() > deadline:
                    with lock:
                        statuses[-1] += PER_CLIENT - i

                    return

                try:
                    if i % 2:
                        conn.request("POST", f"/notes?text={ident}")
                    else:
                        conn.request("GET", f"/check?id={ident}")

                    response = conn.getresponse()
                    body = response.read()
                except (OSError, http.client.HTTPException):
                    # Counted as status 0: no answer.
                    conn.close()

                    with lock:
                        statuses[0] += 1

                    continue

                with lock:
                    statuses[response.status] += 1

                    if response.status == 200 and not i % 2:
                        checks.append((ident, json.loads(body)))
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]

    for thread in threads:
        thread.start()

    for thread in threads:
        thread.join(TIME_LIMIT + 30)

    return statuses, checks


def get(port: int, path: str) -> t.Any:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    try:
        conn.request("GET", path)
        response = conn.getresponse()
        assert response.status == 200
        return json.loads(response.read())
    finally:
        conn.close()


def test_shared_engine_under_shared_loop(serve: t.Any) -> None:
    served = serve(True)
    statuses, checks = hammer(served.port)
    total = CLIENTS * PER_CLIENT
    assert served.errors == []
    assert statuses == {200: total}
    # Every session was opened for the request that used it, and stayed
    # that request's session throughout.
    assert len(checks) == CLIENTS * ((PER_CLIENT + 1) // 2)
    assert [ident for ident, answer in checks] == [a["owner"] for _, a in checks]
    assert all(answer["same"] for _, answer in checks)
    # Never more connections than the pool holds.
    assert max(a["checked_out"] for _, a in checks) <= POOL["pool_size"]
    posts = CLIENTS * (PER_CLIENT // 2)
    assert get(served.port, "/notes/count")["count"] == posts

    recipe = served.recipe
    engine = recipe.db.engine
    # Every session was closed at teardown: all connections back in the pool.
    assert engine.pool.checkedout() == 0
    assert engine.pool.checkedin() == POOL["pool_size"]

    # Clean close: the pool is emptied on the loop, then the loop stops.
    before = threading.active_count()
    recipe.shutdown()
    assert engine.pool.checkedin() == 0
    assert recipe.shared_loop._current is None
    # The loop's thread and aiosqlite's connection threads are gone.
    assert threading.active_count() < before


def test_shared_engine_fails_on_default_bridge(serve: t.Any) -> None:
    """Today's failure: on Flask's default bridge each async call runs on a
    new event loop, and the pool's queue is bound to the first loop that
    waited on it, so requests that wait for a connection fail.
    """
    served = serve(False)
    statuses, _ = hammer(served.port)
    assert statuses[500] > 0
    assert set(statuses) <= {200, 500}
    assert len(served.errors) == statuses[500]
    # The first failures are the pool's queue refusing another loop; the
    # connections they leave checked out then starve later requests.
    kinds = collections.Counter(type(e).__name__ for e in served.errors)
    assert any("bound to a different event loop" in str(e) for e in served.errors), (
        kinds
    )


def test_engine_created_per_process_under_preload(tmp_path: pathlib.Path) -> None:
    """gunicorn --preload: the app (and the start-up create_all, through the
    runner) is made in the master; each forked worker makes its own engine
    and loop on first use and serves concurrent requests from its threads.
    """
    port = harness.free_port()
    log = tmp_path / "gunicorn.log"
    env = {
        "PYTHONPATH": str(harness.TESTS),
        "SHARED_DB_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'notes.sqlite'}",
        "SHARED_DB_DATABASE_ENGINE_OPTIONS": json.dumps(POOL),
    }
    command = [
        sys.executable, "-m", "gunicorn", "--preload", "-k", "gthread",
        "-w", "2", "--threads", "8", "-b", f"127.0.0.1:{port}",
        "--log-level", "warning", "servers.shared_db_app:create_app()",
    ]  # fmt: skip

    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            env={**harness.os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )

    server = harness.Server("gunicorn-preload", "shared", port, process, log)

    try:
        harness.wait_ready_path(server, "/notes/count")
        statuses, checks = hammer(port)
        status, answer = server.get("/notes/count")
    finally:
        killed = harness.stop(process)

    output = log.read_text()
    assert statuses == {200: CLIENTS * PER_CLIENT}, output[-3000:]
    assert all(ident == answer["owner"] for ident, answer in checks)
    assert (status, answer["count"]) == (200, CLIENTS * (PER_CLIENT // 2))
    assert "bound to a different event loop" not in output
    assert "Traceback" not in output, output[-3000:]
    assert not killed
