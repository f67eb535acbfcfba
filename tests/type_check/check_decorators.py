"""Static checks for the decorator machinery: checked by mypy and pyright,
never run.
"""

from __future__ import annotations

import collections.abc as cabc
import typing as t

from flask import abort
from flask import Response
from typing_extensions import assert_type

from flask_asyncext import after_view
from flask_asyncext import async_compatible_decorator
from flask_asyncext import before_view
from flask_asyncext import maybe_await
from flask_asyncext.typing import ViewDecorator

F = t.TypeVar("F", bound=cabc.Callable[..., t.Any])


def show_user(user_id: int, /) -> str:
    return str(user_id)


async def show_user_async(user_id: int, /) -> str:
    return str(user_id)


SyncView: t.TypeAlias = cabc.Callable[[int], str]
AsyncView: t.TypeAlias = cabc.Callable[[int], cabc.Coroutine[t.Any, t.Any, str]]


@async_compatible_decorator
def generator_body(
    view: cabc.Callable[..., t.Any], /, *args: t.Any, **kwargs: t.Any
) -> cabc.Generator[t.Any, t.Any, t.Any]:
    user = yield maybe_await(None)
    del user
    return (yield view(*args, **kwargs))


@async_compatible_decorator
def plain_body(
    view: cabc.Callable[..., t.Any], /, *args: t.Any, **kwargs: t.Any
) -> t.Any:
    return view(*args, **kwargs)


@async_compatible_decorator
async def async_body(
    view: cabc.Callable[..., t.Any], /, *args: t.Any, **kwargs: t.Any
) -> t.Any:
    return await maybe_await(view(*args, **kwargs))


def check_bodies(sync_view: SyncView, async_view: AsyncView) -> None:
    assert_type(generator_body, ViewDecorator)
    assert_type(plain_body, ViewDecorator)
    assert_type(async_body, ViewDecorator)

    for decorator in (generator_body, plain_body, async_body):
        # The decorated view has exactly the type of the view: a sync view
        # stays sync and an async view stays async, with the same parameters.
        assert_type(decorator(sync_view), SyncView)
        assert_type(decorator(async_view), AsyncView)
        assert_type(decorator(decorator(async_view)), AsyncView)
        assert_type(decorator(show_user), SyncView)
        assert_type(decorator(show_user)(1), str)
        decorated_async: AsyncView = decorator(show_user_async)
        del decorated_async

    # A decorated async view still returns a coroutine, not its value.
    name: str = generator_body(show_user_async)(1)  # type: ignore[assignment]  # pyright: ignore[reportAssignmentType]
    # A decorated view keeps its parameters.
    generator_body(show_user)("1")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    # Only callables can be decorated.
    generator_body(1)  # type: ignore[type-var]  # pyright: ignore[reportArgumentType]
    # Only callables can be bodies.
    async_compatible_decorator(1)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    del name


class Methods:
    @generator_body
    def get(self, user_id: int) -> str:
        return str(user_id)

    @generator_body
    async def post(self, user_id: int) -> str:
        return str(user_id)


async def check_awaited() -> None:
    for decorator in (generator_body, plain_body, async_body):
        assert_type(await decorator(show_user_async)(1), str)


async def check_methods(methods: Methods) -> None:
    assert_type(methods.get(1), str)
    assert_type(await methods.post(1), str)


# A decorator with arguments, usable bare or called, as extensions write it.
@t.overload
def limited(view: F, /) -> F: ...
@t.overload
def limited(*, per_minute: int = ...) -> ViewDecorator: ...
def limited(
    view: cabc.Callable[..., t.Any] | None = None, /, *, per_minute: int = 60
) -> t.Any:
    def body(
        view: cabc.Callable[..., t.Any], /, *args: t.Any, **kwargs: t.Any
    ) -> cabc.Generator[t.Any, t.Any, t.Any]:
        if per_minute < 1:
            abort(429)

        return (yield view(*args, **kwargs))

    decorator = async_compatible_decorator(body)

    if view is None:
        return decorator

    return decorator(view)


def check_factory(sync_view: SyncView, async_view: AsyncView) -> None:
    assert_type(limited(sync_view), SyncView)
    assert_type(limited(async_view), AsyncView)
    assert_type(limited(), ViewDecorator)
    assert_type(limited(per_minute=5), ViewDecorator)
    assert_type(limited(per_minute=5)(sync_view), SyncView)
    assert_type(limited(per_minute=5)(async_view), AsyncView)

    limited(per_minute="5")  # type: ignore[call-overload]  # pyright: ignore[reportArgumentType]


def sync_hook(user_id: int) -> str | None:
    return None if user_id else "no user"


async def async_hook(user_id: int) -> str | None:
    return None if user_id else "no user"


def generator_hook(user_id: int) -> cabc.Generator[t.Any, t.Any, str | None]:
    found = yield maybe_await(user_id)
    return None if found else "no user"


def add_header(response: Response) -> None:
    response.headers["X-Checked"] = "yes"


async def add_header_async(response: Response) -> Response:
    response.headers["X-Checked"] = "yes"
    return response


def check_hooks(sync_view: SyncView, async_view: AsyncView) -> None:
    for hook in (sync_hook, async_hook, generator_hook):
        assert_type(before_view(hook), ViewDecorator)
        assert_type(before_view(hook)(sync_view), SyncView)
        assert_type(before_view(hook)(async_view), AsyncView)

    for after in (add_header, add_header_async):
        assert_type(after_view(after), ViewDecorator)
        assert_type(after_view(after)(sync_view), SyncView)
        assert_type(after_view(after)(async_view), AsyncView)

    before_view("not a hook")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    after_view(None)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
