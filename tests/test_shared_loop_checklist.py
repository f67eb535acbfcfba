"""Each rule of the "before you opt in" checklist (docs/shared-loop.rst):
what goes wrong without it on the shared loop, and that the documented
pattern (examples/shared_loop/checklist.py) keeps state per request.
"""

from __future__ import annotations

import asyncio
import collections.abc as cabc
import importlib.util
import pathlib
import sqlite3
import threading
import types
import typing as t

import pytest
from flask import Flask

from flask_asyncext.shared_loop import SharedLoop

pytest.importorskip("sqlalchemy")

from sqlalchemy.orm import scoped_session
from sqlalchemy.orm import sessionmaker

PATIENCE = 30
EXAMPLES = pathlib.Path(__file__).parent.parent / "examples" / "shared_loop"


def load(name: str) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(
        f"shared_loop_{name}", EXAMPLES / f"{name}.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def checklist() -> types.ModuleType:
    return load("checklist")


@pytest.fixture
def runner() -> cabc.Iterator[SharedLoop]:
    runner = SharedLoop()
    yield runner
    runner.close()


def overlapping(app: Flask, paths: list[str]) -> list[t.Any]:
    """Request every path at once, from one thread each; return the JSON."""
    results: list[t.Any] = [None] * len(paths)

    def request(i: int) -> None:
        results[i] = app.test_client().get(paths[i]).json

    threads = [threading.Thread(target=request, args=(i,)) for i in range(len(paths))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(PATIENCE)
    return results


class Rendezvous:
    """Makes the coroutines of ``n`` requests wait for each other at one
    point, so that they are all in flight on the loop together.
    """

    def __init__(self, n: int) -> None:
        self.n = n
        self.arrived = 0
        self.event: asyncio.Event | None = None

    async def wait(self) -> None:
        if self.event is None:
            self.event = asyncio.Event()
        self.arrived += 1
        if self.arrived == self.n:
            self.event.set()
        await asyncio.wait_for(self.event.wait(), PATIENCE)


def test_threading_local_is_shared_by_requests(
    runner: SharedLoop, checklist: types.ModuleType
) -> None:
    """Rule: no threading.local (or thread ids) in async code; use a
    ContextVar.
    """
    local = threading.local()
    meeting = Rendezvous(2)
    app = Flask(__name__)
    runner.init_app(app)

    @app.get("/<name>")
    async def view(name: str) -> dict[str, str]:
        local.user = name
        checklist.current_user.set(name)
        await meeting.wait()
        return {"local": local.user, "contextvar": checklist.current_user.get()}

    results = overlapping(app, ["/ada", "/bob"])
    # The ContextVar stays per request...
    assert [r["contextvar"] for r in results] == ["ada", "bob"]
    # ...the thread-local is the same for both: the loop's one thread.
    assert results[0]["local"] == results[1]["local"]


def test_scoped_session_default_scope_is_shared_by_requests(
    runner: SharedLoop, checklist: types.ModuleType
) -> None:
    """Rule: scope SQLAlchemy sessions to the app context, not the thread."""
    by_thread = scoped_session(sessionmaker())
    meeting = Rendezvous(2)
    app = Flask(__name__)
    runner.init_app(app)

    @app.teardown_appcontext
    def remove(exc: BaseException | None) -> None:
        checklist.Session.remove()

    @app.get("/<name>")
    async def view(name: str) -> dict[str, int]:
        default, scoped = by_thread(), checklist.Session()
        await meeting.wait()
        return {"default": id(default), "app_context": id(scoped)}

    results = overlapping(app, ["/ada", "/bob"])
    by_thread.remove()
    # Two requests in flight together: SQLAlchemy's default (thread) scope
    # hands both the same session; the app-context scope one each.
    assert results[0]["default"] == results[1]["default"]
    assert results[0]["app_context"] != results[1]["app_context"]


def test_sqlite3_connection_from_sync_code_fails_in_async_code(
    runner: SharedLoop, tmp_path: pathlib.Path
) -> None:
    """Rule: a sqlite3 connection (check_same_thread) is used on the side
    that opened it: open it in the coroutine that uses it.
    """
    app = Flask(__name__)
    runner.init_app(app)
    database = str(tmp_path / "db.sqlite")
    opened: dict[str, sqlite3.Connection] = {}

    @app.before_request
    def open_connection() -> None:  # sync code: the request's thread
        opened["connection"] = sqlite3.connect(database)

    @app.teardown_request
    def close_connection(exc: BaseException | None) -> None:  # that thread again
        opened.pop("connection").close()

    @app.get("/")
    async def view() -> str:  # async code: the loop's thread
        try:
            opened["connection"].execute("select 1")
        except sqlite3.ProgrammingError as e:
            return f"refused: {e}"
        return "ran"  # pragma: no cover (the rule's point: never reached)

    text = app.test_client().get("/").text
    assert text.startswith("refused: SQLite objects created in a thread")


def test_checklist_app_keeps_state_per_request(
    checklist: types.ModuleType, tmp_path: pathlib.Path
) -> None:
    app = checklist.create_app(str(tmp_path / "db.sqlite"))
    try:
        results = overlapping(app, ["/me/ada", "/me/bob", "/me/cy"])
        assert [(r["user"], r["db"]) for r in results] == [
            ("ada", "ada"),
            ("bob", "bob"),
            ("cy", "cy"),
        ]
    finally:
        app.extensions["flask_asyncext.shared_loop"].close()
