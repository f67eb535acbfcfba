"""An extension as written before the toolkit: a token check with a callback
registry, its decorator built from ``functools.wraps`` and
``current_app.ensure_sync``.
"""

from __future__ import annotations

import collections.abc as cabc
import functools
import typing as t

from flask import abort
from flask import current_app
from flask import g
from flask import request

TokenVerifier = cabc.Callable[[str], t.Any]


class TokenAuth:
    def __init__(self) -> None:
        self._verify_token: TokenVerifier | None = None

    def verify_token(self, callback: TokenVerifier) -> TokenVerifier:
        """Register the callback that returns the user a token belongs to."""
        self._verify_token = callback
        return callback

    def login_required(
        self, view: cabc.Callable[..., t.Any]
    ) -> cabc.Callable[..., t.Any]:
        """Refuse the request with 401 unless the token is valid."""

        @functools.wraps(view)
        def wrapper(*args: t.Any, **kwargs: t.Any) -> t.Any:
            token = request.headers.get("Authorization", "")
            assert self._verify_token is not None
            user = self._verify_token(token)

            if not user:
                abort(401)

            g.user = user
            return current_app.ensure_sync(view)(*args, **kwargs)

        return wrapper
