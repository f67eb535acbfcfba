"""An extension's registry of user callbacks, built on ``Callback``: the
user writes each callback ``def`` or ``async def``; the extension calls it
from a decorator body, from async code and from sync code.
"""

from __future__ import annotations

import collections.abc as cabc
import typing as t

from flask import current_app
from flask import Flask
from flask import g
from flask import session

from flask_asyncext import async_compatible_decorator
from flask_asyncext import Callback
from flask_asyncext import drive_sync


class LoginManager:
    def __init__(self, app: Flask | None = None) -> None:
        # Users register with @login_manager.user_loader, and so on.
        self.user_loader: Callback[[str], t.Any] = Callback(
            "user_loader", owner="LoginManager"
        )
        self.unauthorized_handler: Callback[[], t.Any] = Callback(
            "unauthorized_handler", owner="LoginManager"
        )

        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        app.extensions["login_manager"] = self

    def load_user(self) -> cabc.Generator[t.Any, t.Any, t.Any]:
        """The helper decorator bodies call with ``yield from``."""
        user_id = session.get("user_id")

        if user_id is None:
            return None

        return (yield self.user_loader.call(user_id))

    def unauthorized(self) -> cabc.Generator[t.Any, t.Any, t.Any]:
        if self.unauthorized_handler:
            return (yield self.unauthorized_handler.call())

        return "Unauthorized", 401


def _manager() -> LoginManager:
    return t.cast("LoginManager", current_app.extensions["login_manager"])


@async_compatible_decorator
def login_required(
    view: cabc.Callable[..., t.Any], /, *args: t.Any, **kwargs: t.Any
) -> cabc.Generator[t.Any, t.Any, t.Any]:
    manager = _manager()
    user = yield from manager.load_user()

    if user is None:
        return (yield from manager.unauthorized())

    g.user = user
    return (yield view(*args, **kwargs))


def current_user_name() -> str:
    """Sync code outside any body (a template helper, a request hook): run
    the same helper with ``drive_sync``.
    """
    user = drive_sync(_manager().load_user())
    return "anonymous" if user is None else str(user)


USERS = {"ada": "Ada Lovelace"}


def create_app() -> Flask:
    app = Flask(__name__)
    app.secret_key = "dev"
    login_manager = LoginManager(app)

    @login_manager.user_loader
    async def load_user(user_id: str) -> str | None:
        return USERS.get(user_id)  # await a database here

    @login_manager.unauthorized_handler
    def unauthorized() -> tuple[dict[str, str], int]:
        return {"error": "log in first"}, 401

    @app.post("/login/<name>")
    def login(name: str) -> tuple[str, int]:
        session["user_id"] = name
        return "", 204

    @app.get("/whoami")
    def whoami() -> str:
        return current_user_name()

    @app.get("/profile")
    @login_required
    def profile() -> dict[str, str]:
        return {"user": g.user}

    @app.get("/profile/async")
    @login_required
    async def profile_async() -> dict[str, str]:
        return {"user": g.user}

    return app
