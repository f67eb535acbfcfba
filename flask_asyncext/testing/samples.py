"""Example decorators that ``flask-asyncext check`` checks when it is given
no target: the same decorator written with the toolkit and with Flask's
``ensure_sync`` recipe.
"""

from __future__ import annotations

import collections.abc as cabc
import functools
import typing as t

from flask import current_app
from flask import g

from ..decorators import async_compatible_decorator


@async_compatible_decorator
def traced(
    view: cabc.Callable[..., t.Any], /, *args: t.Any, **kwargs: t.Any
) -> cabc.Generator[t.Any, t.Any, t.Any]:
    """Count the views a request went through in ``g.traced``, written with
    the toolkit: an ``async def`` view stays an ``async def``.
    """
    g.traced = g.get("traced", 0) + 1
    return (yield view(*args, **kwargs))


def traced_recipe(view: cabc.Callable[..., t.Any]) -> cabc.Callable[..., t.Any]:
    """The same decorator written with Flask's ``ensure_sync`` recipe: it
    works, but turns an ``async def`` view into a ``def``.
    """

    @functools.wraps(view)
    def wrapper(*args: t.Any, **kwargs: t.Any) -> t.Any:
        g.traced = g.get("traced", 0) + 1
        return current_app.ensure_sync(view)(*args, **kwargs)

    return wrapper
