"""An app whose user loader and username check are ``async def``, read from
sync code (a ``current_user`` proxy, a template, a form validator) in sync
and async views.
"""

from __future__ import annotations

import asyncio
import dataclasses

from flask import Flask
from flask import render_template_string
from flask import request
from flask import session
from flask_users import current_user
from flask_users import UserManager

from flask_asyncext.portal import await_
from flask_asyncext.portal import SyncPortal
from flask_asyncext.shared_loop import SharedLoop


@dataclasses.dataclass
class User:
    id: str
    name: str


USERS = {"1": User("1", "Ada")}


async def load_user(user_id: str) -> User | None:
    await asyncio.sleep(0)  # a database query
    return USERS.get(user_id)


async def username_taken(name: str) -> bool:
    await asyncio.sleep(0)  # a database query
    return any(user.name == name for user in USERS.values())


def validate_username(name: str) -> str | None:
    """A sync validator, the way form libraries call them."""
    if await_(username_taken(name)):
        return f"{name!r} is taken."

    return None


def create_app(shared_loop: SharedLoop | None = None) -> Flask:
    app = Flask(__name__)
    app.secret_key = "dev"
    SyncPortal(app)

    if shared_loop is not None:
        shared_loop.init_app(app)

    UserManager(app).user_loader(load_user)

    @app.post("/login/<user_id>")
    def login(user_id: str) -> tuple[str, int]:
        session["user_id"] = user_id
        return "", 204

    @app.get("/me")
    def me() -> dict[str, str]:
        return {"name": current_user.name}

    @app.get("/me/async")
    async def me_async() -> dict[str, str]:
        return {"name": current_user.name}

    @app.get("/hello")
    async def hello() -> str:
        return render_template_string("Hello, {{ current_user.name }}!")

    @app.post("/signup")
    async def signup() -> tuple[dict[str, str], int]:
        error = validate_username(request.form["name"])

        if error is not None:
            return {"error": error}, 400

        return {"created": request.form["name"]}, 201

    return app
