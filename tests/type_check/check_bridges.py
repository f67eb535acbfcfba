"""Static checks for the bridges: checked by mypy and pyright, never run."""

from __future__ import annotations

import collections.abc as cabc
import typing as t

from typing_extensions import assert_type

from flask_asyncext import ensure_async
from flask_asyncext import ensure_sync
from flask_asyncext import is_async_callable
from flask_asyncext import maybe_await


def load_user(user_id: int, /) -> str:
    return str(user_id)


async def load_user_async(user_id: int, /) -> str:
    return str(user_id)


class AsyncLoader:
    async def __call__(self, user_id: int, /) -> str:
        return str(user_id)


def check_ensure_sync() -> None:
    assert_type(ensure_sync(load_user), cabc.Callable[[int], str])
    assert_type(ensure_sync(load_user_async), cabc.Callable[[int], str])
    assert_type(ensure_sync(AsyncLoader()), cabc.Callable[[int], str])
    assert_type(ensure_sync(load_user_async)(1), str)

    # The result of an async callable made sync is the value, not an awaitable.
    awaitable: cabc.Awaitable[str] = ensure_sync(load_user_async)(1)  # type: ignore[assignment]  # pyright: ignore[reportAssignmentType]
    del awaitable
    # Arguments are checked against the wrapped callable's parameters.
    ensure_sync(load_user_async)("1")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    ensure_sync(1)  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue, reportArgumentType]


AsyncLoadUser: t.TypeAlias = cabc.Callable[[int], cabc.Coroutine[t.Any, t.Any, str]]


async def check_ensure_async() -> None:
    assert_type(ensure_async(load_user), AsyncLoadUser)
    assert_type(ensure_async(load_user, thread=True), AsyncLoadUser)
    assert_type(ensure_async(load_user_async), AsyncLoadUser)
    assert_type(ensure_async(AsyncLoader()), AsyncLoadUser)
    assert_type(await ensure_async(load_user)(1), str)
    assert_type(await ensure_async(load_user_async)(1), str)

    # A coroutine is not the value it resolves to.
    name: str = ensure_async(load_user)(1)  # type: ignore[assignment]  # pyright: ignore[reportAssignmentType]
    ensure_async(load_user, True)  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue]
    del name


async def check_maybe_await(
    awaitable: cabc.Awaitable[int],
    coroutine: cabc.Coroutine[t.Any, t.Any, str],
    either: int | cabc.Awaitable[int],
) -> None:
    coro: cabc.Coroutine[t.Any, t.Any, int] = maybe_await(1)
    assert_type(await coro, int)
    assert_type(await maybe_await(1), int)
    assert_type(await maybe_await(awaitable), int)
    assert_type(await maybe_await(coroutine), str)
    assert_type(await maybe_await(load_user(1)), str)
    assert_type(await maybe_await(load_user_async(1)), str)
    assert_type(await maybe_await(either), int)

    # maybe_await always has to be awaited.
    number: int = maybe_await(1)  # type: ignore[assignment]  # pyright: ignore[reportAssignmentType]
    del number


def check_is_async_callable(obj: object) -> None:
    if is_async_callable(obj):
        assert_type(obj, cabc.Callable[..., cabc.Awaitable[t.Any]])
    else:
        assert_type(obj, object)
