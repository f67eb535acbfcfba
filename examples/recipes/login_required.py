"""A Flask-Login-style ``login_required`` whose user loader can be written
``def`` or ``async def``, guarding sync and async views alike.
"""

from __future__ import annotations

import collections.abc as cabc
import typing as t

from flask import abort
from flask import current_app
from flask import Flask
from flask import g
from flask import session

from flask_asyncext import async_compatible_decorator

UserLoader = cabc.Callable[[str], t.Any]


class LoginManager:
    """A small extension with a callback registry, like Flask-Login's."""

    def __init__(self, app: Flask | None = None) -> None:
        self._user_loader: UserLoader | None = None

        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        app.extensions["login_manager"] = self

    def user_loader(self, callback: UserLoader) -> UserLoader:
        """Register the callback that loads a user from its id. It may be
        sync or async.
        """
        self._user_loader = callback
        return callback

    def load_user(self) -> cabc.Generator[t.Any, t.Any, t.Any]:
        """Load the logged-in user. A generator, so that decorator bodies
        call it with ``yield from``: the loader's result is resolved
        whether the loader is sync or async.
        """
        user_id = session.get("user_id")

        if user_id is None or self._user_loader is None:
            return None

        return (yield self._user_loader(user_id))


@async_compatible_decorator
def login_required(
    view: cabc.Callable[..., t.Any], /, *args: t.Any, **kwargs: t.Any
) -> cabc.Generator[t.Any, t.Any, t.Any]:
    """Refuse the request with 401 unless a user is logged in."""
    manager: LoginManager = current_app.extensions["login_manager"]
    user = yield from manager.load_user()

    if user is None:
        abort(401)

    g.user = user
    return (yield view(*args, **kwargs))


USERS = {"ada": "Ada Lovelace"}


def create_app() -> Flask:
    app = Flask(__name__)
    app.secret_key = "dev"
    login_manager = LoginManager(app)

    @login_manager.user_loader
    async def load_user(user_id: str) -> str | None:
        return USERS.get(user_id)  # await a database here

    @app.post("/login/<name>")
    def login(name: str) -> tuple[str, int]:
        session["user_id"] = name
        return "", 204

    @app.get("/profile")
    @login_required
    def profile() -> dict[str, str]:
        return {"user": g.user}

    @app.get("/profile/async")
    @login_required
    async def profile_async() -> dict[str, str]:
        return {"user": g.user}

    return app
