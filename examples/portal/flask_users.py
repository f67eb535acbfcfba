"""A Flask-Login-style extension: ``current_user`` is a proxy that loads the
logged-in user with the loader the app registers, ``def`` or ``async def``.

The proxy is plain sync code, read from views, helpers and templates. It
calls the loader with :func:`flask_asyncext.ensure_sync`, which works in a
sync view, and in an async view of an app set up with
:class:`~flask_asyncext.portal.SyncPortal`: there it waits for an async
loader on the view's own event loop.
"""

from __future__ import annotations

import collections.abc as cabc
import typing as t

from flask import current_app
from flask import Flask
from flask import g
from flask import session
from werkzeug.local import LocalProxy

from flask_asyncext import ensure_sync

UserLoader = cabc.Callable[[str], t.Any]


class AnonymousUser:
    name = "anonymous"
    is_authenticated = False


class UserManager:
    """Loads the user whose id the session holds, once per request."""

    def __init__(self, app: Flask | None = None) -> None:
        self._user_loader: UserLoader | None = None

        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        app.extensions["users"] = self
        # Like Flask-Login: templates can read current_user.
        app.context_processor(lambda: {"current_user": current_user})

    def user_loader(self, callback: UserLoader) -> UserLoader:
        """Register the callback that loads a user from its id, sync or
        async.
        """
        self._user_loader = callback
        return callback

    def get_user(self) -> t.Any:
        if "_user" not in g:
            user_id = session.get("user_id")
            user = None

            if user_id is not None and self._user_loader is not None:
                user = ensure_sync(self._user_loader)(user_id)

            g._user = AnonymousUser() if user is None else user

        return g._user


def _get_user() -> t.Any:
    manager: UserManager = current_app.extensions["users"]
    return manager.get_user()


current_user: t.Any = LocalProxy(_get_user)
