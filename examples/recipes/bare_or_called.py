"""A decorator usable bare (``@no_cache``) or called with arguments
(``@no_cache(private=True)``), keeping the type of the view it wraps.
"""

from __future__ import annotations

import collections.abc as cabc
import typing as t

from flask import Flask
from flask import Response

from flask_asyncext import after_view
from flask_asyncext.typing import ViewDecorator

F = t.TypeVar("F", bound=cabc.Callable[..., t.Any])


@t.overload
def no_cache(view: F, /) -> F: ...
@t.overload
def no_cache(*, private: bool = False) -> ViewDecorator: ...
def no_cache(
    view: cabc.Callable[..., t.Any] | None = None, /, *, private: bool = False
) -> t.Any:
    """Forbid caching the view's response, for everyone or, with
    ``private=True``, for shared caches only.
    """

    def set_cache_control(response: Response) -> None:
        if private:
            response.cache_control.private = True
        else:
            response.cache_control.no_store = True

    decorator = after_view(set_cache_control)

    if view is None:
        return decorator

    return decorator(view)


def create_app() -> Flask:
    app = Flask(__name__)

    @app.get("/balance")
    @no_cache
    def balance() -> str:
        return "42"

    @app.get("/balance/async")
    @no_cache(private=True)
    async def balance_async() -> str:
        return "42"

    return app
