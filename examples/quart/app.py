"""The same extension, views and async verifier on a Flask app and on a
Quart app.
"""

from __future__ import annotations

import asyncio
import threading
import typing as t

from token_auth import TokenAuth

TOKENS = {"s3cret": "ada"}


async def verify(token: str) -> str | None:
    await asyncio.sleep(0)  # a database lookup here
    return TOKENS.get(token)


def add_views(app: t.Any, web: t.Any) -> None:
    auth = TokenAuth(app)
    auth.verify_token(verify)

    @app.post("/sync")
    @auth.login_required
    def sync_view() -> dict[str, t.Any]:
        return {"user": web.g.user, "note": web.g.note, "thread": threading.get_ident()}

    @app.post("/async")
    @auth.login_required
    async def async_view() -> dict[str, t.Any]:
        return {"user": web.g.user, "note": web.g.note, "thread": threading.get_ident()}


def create_flask_app() -> t.Any:
    import flask

    app = flask.Flask(__name__)
    add_views(app, flask)
    return app


def create_quart_app() -> t.Any:
    import quart

    app = quart.Quart(__name__)
    add_views(app, quart)
    return app


async def quart_main() -> None:
    client = create_quart_app().test_client()

    for path in ("/sync", "/async"):
        denied = await client.post(path)
        allowed = await client.post(
            path, json={"note": "hi"}, headers={"Authorization": "Bearer s3cret"}
        )
        print("quart", path, denied.status_code, (await allowed.get_json())["user"])


if __name__ == "__main__":
    client = create_flask_app().test_client()

    for path in ("/sync", "/async"):
        denied = client.post(path)
        allowed = client.post(
            path, json={"note": "hi"}, headers={"Authorization": "Bearer s3cret"}
        )
        print("flask", path, denied.status_code, allowed.json["user"])

    asyncio.run(quart_main())
