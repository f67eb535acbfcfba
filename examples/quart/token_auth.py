"""A token-authentication extension that supports Flask and Quart apps with
one code base: its callback may be ``def`` or ``async def``, and so may the
views it guards.
"""

from __future__ import annotations

import collections.abc as cabc
import typing as t

import flask

from flask_asyncext import async_compatible_decorator

TokenVerifier = cabc.Callable[[str], t.Any]


def _framework(app: t.Any) -> t.Any:
    """The module whose ``request``, ``g`` and ``abort`` serve ``app``:
    Quart's for a Quart app (Flask's proxies are not bound there).
    """
    if type(app).__module__.split(".")[0] == "quart":
        import quart

        return quart

    return flask


class TokenAuth:
    def __init__(self, app: t.Any = None) -> None:
        self._verify: TokenVerifier | None = None

        if app is not None:
            self.init_app(app)

    def init_app(self, app: t.Any) -> None:
        self.web = _framework(app)
        app.extensions["token_auth"] = self

    def verify_token(self, callback: TokenVerifier) -> TokenVerifier:
        """Register the callback that returns the user a token belongs to,
        or ``None``. It may be sync or async.
        """
        self._verify = callback
        return callback

    def login_required(self, view: t.Any) -> t.Any:
        return _login_required(self)(view)


def _login_required(auth: TokenAuth) -> t.Any:
    def body(
        view: cabc.Callable[..., t.Any], /, *args: t.Any, **kwargs: t.Any
    ) -> cabc.Generator[t.Any, t.Any, t.Any]:
        web = auth.web
        token = web.request.headers.get("Authorization", "").removeprefix("Bearer ")
        # The verifier may be async: yield resolves it, on Flask and Quart.
        user = None if auth._verify is None else (yield auth._verify(token))

        if user is None:
            web.abort(401)

        # Quart's get_json() is a coroutine, Flask's a value: yield handles both.
        body = yield web.request.get_json(silent=True)
        web.g.user = user
        web.g.note = None if body is None else body.get("note")
        return (yield view(*args, **kwargs))

    return async_compatible_decorator(body)
