"""The Flask-Login-style extension ported to the toolkit. ``login_required``
loads the user with a generator helper, so an async loader is awaited in the
view's own event loop; ``current_user`` then only reads what was loaded.
"""

from __future__ import annotations

import collections.abc as cabc
import typing as t

from flask import abort
from flask import current_app
from flask import Flask
from flask import g
from flask import session
from werkzeug.local import LocalProxy

from flask_asyncext import async_compatible_decorator
from flask_asyncext import ensure_sync

UserLoader = cabc.Callable[[str], t.Any]


class LoginManager:
    def __init__(self, app: Flask | None = None) -> None:
        self._user_callback: UserLoader | None = None

        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        app.extensions["login_manager"] = self

    def user_loader(self, callback: UserLoader) -> UserLoader:
        """Register the callback that loads a user from its id. It may be
        ``def`` or ``async def``.
        """
        if not callable(callback):
            raise TypeError(f"user_loader() needs a callable, got {callback!r}")

        self._user_callback = callback
        return callback

    def _loader(self) -> UserLoader:
        if self._user_callback is None:
            raise RuntimeError("no user loader: register one with user_loader")

        return self._user_callback

    def load_user(self) -> cabc.Generator[t.Any, t.Any, t.Any]:
        """Load the user once per request. A generator: decorator bodies call
        it with ``yield from``, and the loader's result is resolved whether
        the loader is sync or async.
        """
        if "_login_user" not in g:
            loader = self._loader()
            user_id = session.get("_user_id")
            user = None if user_id is None else (yield loader(user_id))
            g._login_user = user

        return g.get("_login_user")


def _get_user() -> t.Any:
    if "_login_user" not in g:
        # Not loaded by login_required: a template, a before_request hook,
        # a view without the decorator. ensure_sync resolves an async
        # loader there; inside an async view it raises RuntimeError, because
        # that thread already runs an event loop: decorate the view.
        manager: LoginManager = current_app.extensions["login_manager"]
        loader = manager._loader()
        user_id = session.get("_user_id")
        user = None if user_id is None else ensure_sync(loader)(user_id)
        g._login_user = user

    return g.get("_login_user")


current_user: t.Any = LocalProxy(_get_user)


@async_compatible_decorator
def login_required(
    view: cabc.Callable[..., t.Any], /, *args: t.Any, **kwargs: t.Any
) -> cabc.Generator[t.Any, t.Any, t.Any]:
    """Refuse the request with 401 unless a user is logged in."""
    manager: LoginManager = current_app.extensions["login_manager"]
    user = yield from manager.load_user()

    if user is None:
        abort(401)

    return (yield view(*args, **kwargs))
