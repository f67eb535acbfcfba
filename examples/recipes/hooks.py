"""``before_view`` and ``after_view`` with sync and async hooks."""

from __future__ import annotations

import typing as t

from flask import Flask
from flask import request
from flask import Response

from flask_asyncext import after_view
from flask_asyncext import before_view

API_KEYS = {"s3cret"}


@before_view
async def api_key_required(*args: t.Any, **kwargs: t.Any) -> t.Any:
    """Answer 403 unless the request carries a known API key."""
    if request.headers.get("X-Api-Key") not in API_KEYS:  # await a lookup here
        return {"error": "unknown API key"}, 403

    return None


@after_view
def add_version(response: Response) -> None:
    """Tell the client which version of the API answered."""
    response.headers["X-Api-Version"] = "1"


def create_app() -> Flask:
    app = Flask(__name__)

    @app.get("/items/<int:item_id>")
    @add_version
    @api_key_required
    def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @app.get("/items/<int:item_id>/async")
    @add_version
    @api_key_required
    async def item_async(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    return app
