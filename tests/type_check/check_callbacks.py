"""Static checks for callback registries, generator helpers and the
backend switch: checked by mypy and pyright, never run.
"""

from __future__ import annotations

import collections.abc as cabc
import typing as t

from flask import Response
from typing_extensions import assert_type

from flask_asyncext import after_view
from flask_asyncext import async_compatible_decorator
from flask_asyncext import before_view
from flask_asyncext import Callback
from flask_asyncext import drive_async
from flask_asyncext import drive_sync
from flask_asyncext import is_async_path
from flask_asyncext.typing import AfterViewHook
from flask_asyncext.typing import BeforeViewHook
from flask_asyncext.typing import DecoratorBody
from flask_asyncext.typing import ViewDecorator


class User:
    name = "ann"


def load_user(user_id: str) -> User | None:
    return User() if user_id else None


async def load_user_async(user_id: str) -> User | None:
    return User() if user_id else None


class LoginManager:
    def __init__(self) -> None:
        self.user_loader: Callback[[str], User | None] = Callback("user_loader")


def check_callback(manager: LoginManager) -> None:
    # Registering returns the function unchanged, sync or async.
    assert_type(manager.user_loader(load_user), cabc.Callable[[str], User | None])
    assert_type(
        manager.user_loader(load_user_async),
        cabc.Callable[[str], cabc.Awaitable[User | None]],
    )
    assert_type(manager.user_loader.call_sync("1"), User | None)
    assert_type(
        manager.user_loader.call("1"), User | None | cabc.Awaitable[User | None]
    )
    assert_type(bool(manager.user_loader), bool)

    # The callback's parameters are checked where it is called...
    manager.user_loader.call_sync(1)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    # ...and where it is registered.
    manager.user_loader(no_view)  # type: ignore[arg-type]  # pyright: ignore[reportCallIssue, reportArgumentType]


async def check_callback_async(manager: LoginManager) -> None:
    assert_type(await manager.user_loader.call_async("1"), User | None)


def current_user(manager: LoginManager) -> cabc.Generator[t.Any, t.Any, User | None]:
    user = yield manager.user_loader.call("1")
    return t.cast("User | None", user)


def check_drive(manager: LoginManager) -> None:
    assert_type(drive_sync(current_user(manager)), User | None)
    assert_type(is_async_path(), bool)
    # The helper must be called.
    drive_sync(current_user)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


async def check_drive_async(manager: LoginManager) -> None:
    assert_type(await drive_async(current_user(manager)), User | None)


# -- body and hook types ---------------------------------------------------------


def good_body(
    view: cabc.Callable[..., t.Any], /, *args: t.Any, **kwargs: t.Any
) -> cabc.Generator[t.Any, t.Any, t.Any]:
    return (yield view(*args, **kwargs))


def body_with_view_args(view: cabc.Callable[..., t.Any], /, user_id: int) -> t.Any:
    return view(user_id)


def no_view() -> str:
    return "no view"


def add_header(response: Response) -> None:
    response.headers["X-Checked"] = "yes"


def check_body_types() -> None:
    body: DecoratorBody = good_body
    assert_type(async_compatible_decorator(body), ViewDecorator)
    assert_type(async_compatible_decorator(body_with_view_args), ViewDecorator)
    # A body must take the view as its first positional parameter.
    async_compatible_decorator(no_view)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    bad_body: DecoratorBody = no_view  # type: ignore[assignment]  # pyright: ignore[reportAssignmentType]
    del bad_body

    before: BeforeViewHook = no_view
    after: AfterViewHook = add_header
    assert_type(before_view(before), ViewDecorator)
    assert_type(after_view(after), ViewDecorator)
    # An after hook takes the response.
    after_view(no_view)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    bad_after: AfterViewHook = no_view  # type: ignore[assignment]  # pyright: ignore[reportAssignmentType]
    del bad_after
