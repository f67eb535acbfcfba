"""Flask-APIKey: a tiny extension that requires an API key on a view.

The app registers the function that looks a key up, written ``def`` or
``async def``; the decorator works on ``def`` and ``async def`` views.
"""

from __future__ import annotations

import collections.abc as cabc
import typing as t

from flask import abort
from flask import current_app
from flask import Flask
from flask import g
from flask import request

from flask_asyncext import async_compatible_decorator

KeyLoader = cabc.Callable[[str], t.Any]


class APIKeyManager:
    """Holds the key loader of an app."""

    def __init__(self, app: Flask | None = None) -> None:
        self.loader: KeyLoader | None = None

        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        app.extensions["apikey"] = self

    def key_loader(self, loader: KeyLoader) -> KeyLoader:
        """Register the function that returns the owner of a key, or
        ``None`` for an unknown key. It may be an ``async def``.
        """
        self.loader = loader
        return loader


@async_compatible_decorator
def require_api_key(
    view: cabc.Callable[..., t.Any], /, *args: t.Any, **kwargs: t.Any
) -> cabc.Generator[t.Any, t.Any, t.Any]:
    """Refuse a request without a known ``X-Api-Key`` header (401 without a
    key, 403 with an unknown one); ``g.api_key_owner`` is the key's owner.
    """
    manager: APIKeyManager = current_app.extensions["apikey"]
    key = request.headers.get("X-Api-Key")

    if key is None or manager.loader is None:
        abort(401)

    # Sync or async loader: the toolkit resolves the value, so a coroutine
    # is never mistaken for an owner.
    owner = yield manager.loader(key)

    if owner is None:
        abort(403)

    g.api_key_owner = owner
    return (yield view(*args, **kwargs))
