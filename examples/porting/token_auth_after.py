"""The same extension ported to the toolkit: the check is a body that yields
the callback's result, and the public API stays as it was.
"""

from __future__ import annotations

import collections.abc as cabc
import typing as t

from flask import abort
from flask import g
from flask import request

from flask_asyncext import async_compatible_decorator

F = t.TypeVar("F", bound=cabc.Callable[..., t.Any])
TokenVerifier = cabc.Callable[[str], t.Any]


class TokenAuth:
    def __init__(self) -> None:
        self._verify_token: TokenVerifier | None = None
        # Built once: applying it picks a def or an async def wrapper.
        self._login_required = async_compatible_decorator(self._check_token)

    def verify_token(self, callback: TokenVerifier) -> TokenVerifier:
        """Register the callback that returns the user a token belongs to.
        It may be ``def`` or ``async def``.
        """
        if not callable(callback):
            raise TypeError(f"verify_token() needs a callable, got {callback!r}")

        self._verify_token = callback
        return callback

    def login_required(self, view: F, /) -> F:
        """Refuse the request with 401 unless the token is valid."""
        return self._login_required(view)

    def _check_token(
        self, view: cabc.Callable[..., t.Any], /, *args: t.Any, **kwargs: t.Any
    ) -> cabc.Generator[t.Any, t.Any, t.Any]:
        if self._verify_token is None:
            raise RuntimeError("no token verifier: register one with verify_token")

        token = request.headers.get("Authorization", "")
        # Awaited in the view's loop if the verifier is async, never used
        # as a truthy coroutine object.
        user = yield self._verify_token(token)

        if not user:
            abort(401)

        g.user = user
        return (yield view(*args, **kwargs))
