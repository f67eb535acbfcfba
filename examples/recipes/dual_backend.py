"""A rate limit with two storage backends, as Flask-Limiter has ``limits``
and ``limits.aio``: sync storage on sync views (no event loop at all), async
storage on async views (awaited in the view's own loop).
"""

from __future__ import annotations

import asyncio
import collections.abc as cabc
import typing as t

from flask import abort
from flask import Flask
from flask import request

from flask_asyncext import async_compatible_decorator
from flask_asyncext import is_async_path
from flask_asyncext.typing import ViewDecorator


class MemoryStorage:
    """Sync storage, like ``limits.storage.MemoryStorage``."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.calls = 0

    def incr(self, key: str) -> int:
        self.calls += 1
        self.counts[key] = self.counts.get(key, 0) + 1
        return self.counts[key]


class AsyncMemoryStorage:
    """Async storage, like ``limits.aio.storage.MemoryStorage``, sharing the
    counts of the sync one.
    """

    def __init__(self, sync: MemoryStorage) -> None:
        self.sync = sync
        self.calls = 0

    async def incr(self, key: str) -> int:
        self.calls += 1
        await asyncio.sleep(0)  # a network round trip
        self.sync.counts[key] = self.sync.counts.get(key, 0) + 1
        return self.sync.counts[key]


def limit(times: int, storage: MemoryStorage, aio: AsyncMemoryStorage) -> ViewDecorator:
    @async_compatible_decorator
    def rate_limited(
        view: cabc.Callable[..., t.Any], /, *args: t.Any, **kwargs: t.Any
    ) -> cabc.Generator[t.Any, t.Any, t.Any]:
        backend = aio if is_async_path() else storage
        hits = yield backend.incr(request.remote_addr or "unknown")

        if hits > times:
            abort(429)

        return (yield view(*args, **kwargs))

    return rate_limited


def create_app() -> Flask:
    app = Flask(__name__)
    storage = MemoryStorage()
    aio = AsyncMemoryStorage(storage)
    app.extensions["storages"] = (storage, aio)

    @app.get("/search")
    @limit(3, storage, aio)
    def search() -> str:
        return "results"

    @app.get("/search/async")
    @limit(3, storage, aio)
    async def search_async() -> str:
        return "results"

    return app
