"""A decorator usable bare, ``@roles_required``, or called with positional
options, ``@roles_required("admin", "editor")``, with the overloads that
tell type checkers which form returns what.
"""

from __future__ import annotations

import collections.abc as cabc
import typing as t

from flask import abort
from flask import current_app
from flask import g

from flask_asyncext import async_compatible_decorator
from flask_asyncext.typing import ViewDecorator

F = t.TypeVar("F", bound=cabc.Callable[..., t.Any])
RolesLoader = cabc.Callable[[t.Any], t.Any]


class Roles:
    """The extension: it holds the app's roles loader, sync or async."""

    def __init__(self, loader: RolesLoader) -> None:
        self.loader = loader

    def init_app(self, app: t.Any) -> None:
        app.extensions["roles"] = self


def _require(roles: tuple[str, ...]) -> ViewDecorator:
    @async_compatible_decorator
    def roles_required(
        view: cabc.Callable[..., t.Any], /, *args: t.Any, **kwargs: t.Any
    ) -> cabc.Generator[t.Any, t.Any, t.Any]:
        user_roles = yield current_app.extensions["roles"].loader(g.user)

        # Bare: any role will do. Called: every role named.
        if not user_roles or not set(roles) <= set(user_roles):
            abort(403)

        return (yield view(*args, **kwargs))

    return roles_required


@t.overload
def roles_required(view: F, /) -> F: ...
@t.overload
def roles_required(*roles: str) -> ViewDecorator: ...
def roles_required(*args: t.Any) -> t.Any:
    """Refuse the request with 403 unless the user has every role named, or,
    used bare, at least one role.
    """
    if len(args) == 1 and callable(args[0]):
        return _require(())(args[0])

    for role in args:
        if not isinstance(role, str):
            raise TypeError(f"roles_required() takes role names, got {role!r}")

    return _require(args)


if t.TYPE_CHECKING:
    from typing_extensions import assert_type

    def show() -> str: ...
    async def show_async() -> str: ...

    # Bare, the decorator returns the view's own type; called, a decorator.
    assert_type(roles_required(show)(), str)

    async def check_async() -> None:
        assert_type(await roles_required(show_async)(), str)
        assert_type(await roles_required("admin")(show_async)(), str)

    assert_type(roles_required("admin"), ViewDecorator)
    assert_type(roles_required("admin", "editor")(show)(), str)
