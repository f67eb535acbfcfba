"""The Flask-Login-style extension ported to the toolkit. The registry is a
:class:`~flask_asyncext.Callback`, ``login_required`` loads the user with a
generator helper, and ``current_user`` runs the same helper from sync code.
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
from flask_asyncext import Callback
from flask_asyncext import drive_sync


class LoginManager:
    def __init__(self, app: Flask | None = None) -> None:
        #: Register the callback that loads a user from its id, ``def`` or
        #: ``async def``: ``@login_manager.user_loader``.
        self.user_loader: Callback[[str], t.Any] = Callback(
            "user_loader", owner="LoginManager"
        )

        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        app.extensions["login_manager"] = self

    def load_user(self) -> cabc.Generator[t.Any, t.Any, t.Any]:
        """Load the user once per request. A generator helper: the loader's
        result is yielded, so the toolkit resolves it, sync or async.
        """
        if "_login_user" not in g:
            user_id = session.get("_user_id")
            user = None

            if user_id is not None:
                user = yield self.user_loader.call(user_id)

            g._login_user = user

        return g.get("_login_user")


def _get_user() -> t.Any:
    # Sync code: a template, a before_request hook, any view. drive_sync runs
    # the helper; in an async view it waits on the view's loop when the app
    # uses SyncPortal, and raises RuntimeError without it.
    manager: LoginManager = current_app.extensions["login_manager"]
    return drive_sync(manager.load_user())


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
