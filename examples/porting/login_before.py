"""A Flask-Login-style extension as written before the toolkit: a
``user_loader`` registry, a ``current_user`` proxy that calls the loader on
first use, and ``login_required`` built on the proxy.
"""

from __future__ import annotations

import collections.abc as cabc
import functools
import typing as t

from flask import abort
from flask import current_app
from flask import Flask
from flask import g
from flask import session
from werkzeug.local import LocalProxy

UserLoader = cabc.Callable[[str], t.Any]


class LoginManager:
    def __init__(self, app: Flask | None = None) -> None:
        self._user_callback: UserLoader | None = None

        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        app.extensions["login_manager"] = self

    def user_loader(self, callback: UserLoader) -> UserLoader:
        self._user_callback = callback
        return callback

    def _load_user(self) -> t.Any:
        user_id = session.get("_user_id")

        if user_id is None or self._user_callback is None:
            return None

        # Runs an async loader through Flask's bridge: fine in a sync view,
        # RuntimeError inside an async view (its thread runs an event loop).
        return current_app.ensure_sync(self._user_callback)(user_id)


def _get_user() -> t.Any:
    if "_login_user" not in g:
        g._login_user = current_app.extensions["login_manager"]._load_user()

    return g._login_user


current_user: t.Any = LocalProxy(_get_user)


def login_required(view: cabc.Callable[..., t.Any]) -> cabc.Callable[..., t.Any]:
    @functools.wraps(view)
    def wrapper(*args: t.Any, **kwargs: t.Any) -> t.Any:
        if not current_user:
            abort(401)

        return current_app.ensure_sync(view)(*args, **kwargs)

    return wrapper
