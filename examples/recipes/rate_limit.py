"""A rate-limiting decorator with arguments and a key function that can be
written ``def`` or ``async def``.
"""

from __future__ import annotations

import collections.abc as cabc
import typing as t

from flask import abort
from flask import Flask
from flask import request

from flask_asyncext import async_compatible_decorator
from flask_asyncext.typing import ViewDecorator

KeyFunc = cabc.Callable[[], t.Any]


def remote_address() -> str:
    return request.remote_addr or "unknown"


def limit(times: int, *, key: KeyFunc = remote_address) -> ViewDecorator:
    """Allow ``times`` requests for each key returned by ``key``, then
    refuse with 429.
    """
    if times < 1:
        raise ValueError(f"limit() needs times >= 1, got {times!r}.")

    # A real extension keeps the counts in a shared store, with expiry.
    counts: dict[str, int] = {}

    @async_compatible_decorator
    def rate_limited(
        view: cabc.Callable[..., t.Any], /, *args: t.Any, **kwargs: t.Any
    ) -> cabc.Generator[t.Any, t.Any, t.Any]:
        client = yield key()
        counts[client] = counts.get(client, 0) + 1

        if counts[client] > times:
            abort(429)

        return (yield view(*args, **kwargs))

    return rate_limited


async def api_key() -> str:
    return request.headers.get("X-Api-Key", "anonymous")  # look it up here


def create_app() -> Flask:
    app = Flask(__name__)

    @app.get("/search")
    @limit(2, key=api_key)
    def search() -> str:
        return "results"

    @app.get("/search/async")
    @limit(2, key=api_key)
    async def search_async() -> str:
        return "results"

    return app
