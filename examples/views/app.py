"""A class-based API whose ``async def`` handlers keep the decorators listed
in ``decorators`` in the request's one event loop.
"""

from __future__ import annotations

import asyncio
import collections.abc as cabc
import typing as t

from flask import abort
from flask import Flask
from flask import g
from flask import request

from flask_asyncext import after_view
from flask_asyncext import async_compatible_decorator
from flask_asyncext import before_view
from flask_asyncext.views import MethodView

TOKENS = {"secret": "ada"}
ITEMS: dict[int, str] = {1: "teapot"}


async def load_user(token: str | None) -> str | None:
    await asyncio.sleep(0)  # a database or an HTTP call here
    return None if token is None else TOKENS.get(token)


@async_compatible_decorator
def token_required(
    view: cabc.Callable[..., t.Any], /, *args: t.Any, **kwargs: t.Any
) -> cabc.Generator[t.Any, t.Any, t.Any]:
    """Refuse the request with 401 unless its bearer token is known."""
    g.user = yield load_user(request.headers.get("X-Token"))

    if g.user is None:
        abort(401)

    return (yield view(*args, **kwargs))


@before_view
async def json_only(*args: t.Any, **kwargs: t.Any) -> None:
    """Refuse a request with a body that is not JSON."""
    if request.method in ("POST", "PUT") and not request.is_json:
        abort(415)


@after_view
async def no_store(response: t.Any) -> None:
    response.headers["Cache-Control"] = "no-store"


class ItemAPI(MethodView):
    """Read and add items."""

    # The first decorator is the innermost, as in Flask.
    decorators: t.ClassVar = [json_only, token_required, no_store]
    init_every_request = False

    async def get(self, id: int) -> dict[str, t.Any]:
        await asyncio.sleep(0)

        if id not in ITEMS:
            abort(404)

        return {"id": id, "name": ITEMS[id], "loop": id_of_running_loop()}

    async def post(self, id: int) -> tuple[dict[str, t.Any], int]:
        ITEMS[id] = request.get_json()["name"]
        return {"id": id, "name": ITEMS[id], "by": g.user}, 201


def id_of_running_loop() -> int:
    return id(asyncio.get_running_loop())


def create_app() -> Flask:
    app = Flask(__name__)
    app.add_url_rule("/items/<int:id>", view_func=ItemAPI.as_view("item"))
    return app


if __name__ == "__main__":
    import inspect

    app = create_app()
    view = app.view_functions["item"]
    print("async view function:", inspect.iscoroutinefunction(view))
    client = app.test_client()
    print(client.get("/items/1").status)
    print(client.get("/items/1", headers={"X-Token": "secret"}).json)
