"""One SQLAlchemy asyncio engine per process, shared by every request.

Run every async hop of the app on one event loop with ``SharedLoop``, so that
the engine's connection pool (bound to the loop it first waits on) can be
shared by all requests, whichever server thread they arrive on. The engine is
created lazily, on first use in each process: one made before a pre-forking
server forks would carry the parent's connections and loop into every worker.
Each request gets its own session, closed when the request ends.
"""

from __future__ import annotations

import os
import threading
import typing as t

from flask import Flask
from flask import g
from flask import request
from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column

from flask_asyncext.shared_loop import SharedLoop


class Base(DeclarativeBase):
    pass


class Note(Base):
    __tablename__ = "note"

    id: Mapped[int] = mapped_column(primary_key=True)
    text: Mapped[str]


class Database:
    """The app's database: one engine per process, one session per request."""

    def __init__(self, app: Flask | None = None) -> None:
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._engine: AsyncEngine | None = None
        self._sessions: async_sessionmaker[AsyncSession] | None = None

        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        app.config.setdefault("DATABASE_URL", "sqlite+aiosqlite:///notes.sqlite")
        app.config.setdefault("DATABASE_ENGINE_OPTIONS", {})
        self.url = app.config["DATABASE_URL"]
        self.options = app.config["DATABASE_ENGINE_OPTIONS"]
        app.extensions["shared_db"] = self
        app.teardown_appcontext(self.close_session)

    @property
    def engine(self) -> AsyncEngine:
        """This process's engine, created on first use."""
        with self._lock:
            if self._pid != os.getpid():
                if self._engine is not None:
                    # Inherited from the parent process: forget its
                    # connections without closing them (they are the
                    # parent's), as SQLAlchemy's docs advise after a fork.
                    self._engine.sync_engine.dispose(close=False)

                self._engine = create_async_engine(self.url, **self.options)
                self._sessions = async_sessionmaker(
                    self._engine, expire_on_commit=False
                )
                self._pid = os.getpid()

            assert self._engine is not None
            return self._engine

    async def session(self) -> AsyncSession:
        """The current request's session, opened on first use."""
        if "db_session" not in g:
            self.engine  # noqa: B018 (this process's engine and sessionmaker)
            assert self._sessions is not None
            g.db_session = self._sessions()

        return t.cast(AsyncSession, g.db_session)

    async def close_session(self, exc: BaseException | None) -> None:
        # teardown_appcontext: an async function, run through the app's
        # bridge, on the shared loop.
        session = g.pop("db_session", None)

        if session is not None:
            await session.close()

    async def create_all(self) -> None:
        async with self.engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)

    async def dispose(self) -> None:
        """Close this process's pooled connections."""
        if self._engine is not None and self._pid == os.getpid():
            await self._engine.dispose()


db = Database()
shared_loop = SharedLoop()


def create_app(config: dict[str, t.Any] | None = None) -> Flask:
    app = Flask(__name__)
    app.config.from_prefixed_env("SHARED_DB")
    app.config.update(config or {})
    shared_loop.init_app(app)
    db.init_app(app)

    # Start-up work goes through the runner like any async call. The engine
    # it creates here is replaced in each forked worker on first use.
    shared_loop.async_to_sync(db.create_all)()

    @app.post("/notes")
    async def add_note() -> dict[str, t.Any]:
        session = await db.session()
        note = Note(text=request.args["text"])
        session.add(note)
        await session.commit()
        return {"id": note.id}

    @app.get("/notes/count")
    async def count_notes() -> dict[str, t.Any]:
        session = await db.session()
        count = await session.scalar(select(func.count()).select_from(Note))
        return {"count": count, "pid": os.getpid()}

    return app


def shutdown() -> None:
    """Close the pool, then the loop (in this order: disposing of the
    engine needs the loop).
    """
    shared_loop.async_to_sync(db.dispose)()
    shared_loop.close(timeout=5)
