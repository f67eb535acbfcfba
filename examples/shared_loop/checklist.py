"""Per-request state that stays per request on the shared loop.

Every coroutine on the shared loop runs in the loop's one thread, whichever
request it serves: state keyed by thread is shared by all of them.
"""

from __future__ import annotations

import contextvars
import sqlite3
import typing as t

from flask import Flask
from flask import g
from sqlalchemy.orm import scoped_session
from sqlalchemy.orm import sessionmaker

from flask_asyncext.shared_loop import SharedLoop

# Not threading.local(): a ContextVar, which each request's coroutine sees
# in its own context.
current_user: contextvars.ContextVar[str] = contextvars.ContextVar("current_user")


def app_context_id() -> int:
    """Scope sessions to the app context (one per request), as
    Flask-SQLAlchemy 3.1 does, not to the thread (SQLAlchemy's default).
    """
    return id(g._get_current_object())


Session = scoped_session(sessionmaker(), scopefunc=app_context_id)


def create_app(database: str) -> Flask:
    app = Flask(__name__)
    SharedLoop(app)

    @app.teardown_appcontext
    def remove_session(exc: BaseException | None) -> None:
        Session.remove()

    @app.get("/me/<name>")
    async def me(name: str) -> dict[str, t.Any]:
        current_user.set(name)
        session = Session()
        # sqlite3 connections check the thread that uses them: open one in
        # the coroutine that uses it (it runs in the loop's thread), never in
        # sync code of the request, whose thread is another one.
        connection = sqlite3.connect(database)

        try:
            (answer,) = connection.execute("select ?", (name,)).fetchone()
        finally:
            connection.close()

        return {"user": current_user.get(), "session": id(session), "db": answer}

    return app
