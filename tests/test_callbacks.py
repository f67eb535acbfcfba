from __future__ import annotations

import asyncio
import collections.abc as cabc
import functools
import types
import typing as t

import pytest
from flask import abort
from flask import Flask
from flask import g

from flask_asyncext import async_compatible_decorator
from flask_asyncext import Callback
from flask_asyncext import drive_async
from flask_asyncext import drive_sync
from flask_asyncext import is_async_path

if t.TYPE_CHECKING:
    from conftest import LoopCounter

USERS = {"1": "ann"}


def load_user(user_id: str) -> str | None:
    return USERS.get(user_id)


async def load_user_async(user_id: str) -> str | None:
    await asyncio.sleep(0)
    return USERS.get(user_id)


class AsyncLoader:
    async def __call__(self, user_id: str) -> str | None:
        return USERS.get(user_id)


@types.coroutine
def load_user_generator_coroutine(
    user_id: str,
) -> cabc.Generator[t.Any, None, str | None]:
    yield from asyncio.sleep(0).__await__()
    return USERS.get(user_id)


LOADERS = {
    "sync": load_user,
    "async": load_user_async,
    "async-partial": functools.partial(load_user_async),
    "async-instance": AsyncLoader(),
    "types-coroutine": load_user_generator_coroutine,
    "sync-returns-coroutine": lambda user_id: load_user_async(user_id),
}


@pytest.fixture(params=list(LOADERS.values()), ids=list(LOADERS))
def user_loader(request: pytest.FixtureRequest) -> Callback[[str], str | None]:
    callback: Callback[[str], str | None] = Callback("user_loader", owner="Manager")
    assert not callback
    assert callback(request.param) is request.param
    assert callback
    assert callback.func is request.param
    return callback


def test_call_sync(user_loader: Callback[[str], str | None], app: Flask) -> None:
    assert user_loader.call_sync("1") == "ann"
    assert user_loader.call_sync("2") is None

    with app.app_context():
        assert user_loader.call_sync("1") == "ann"


def test_call_async(user_loader: Callback[[str], str | None]) -> None:
    async def main() -> list[str | None]:
        return [await user_loader.call_async("1"), await user_loader.call_async("2")]

    assert asyncio.run(main()) == ["ann", None]


def test_call_from_a_body(
    user_loader: Callback[[str], str | None], app: Flask, loops: LoopCounter
) -> None:
    @async_compatible_decorator
    def login_required(view: t.Any, /, user_id: str) -> t.Any:
        user = yield user_loader.call(user_id)
        if user is None:
            abort(401)
        g.user = user
        return (yield view(user_id))

    @app.get("/sync/<user_id>")
    @login_required
    def sync_view(user_id: str) -> str:
        return f"sync {g.user}"

    @app.get("/async/<user_id>")
    @login_required
    async def async_view(user_id: str) -> str:
        return f"async {g.user}"

    client = app.test_client()
    responses = [client.get(path) for path in ("/sync/1", "/async/1")]
    assert [r.text for r in responses] == ["sync ann", "async ann"]
    denied = [client.get(path) for path in ("/sync/2", "/async/2")]
    assert [r.status_code for r in denied] == [401, 401]


def test_async_call_sync_inside_a_loop_raises(app: Flask) -> None:
    callback: Callback[[str], str | None] = Callback("user_loader")
    callback(load_user_async)

    async def main() -> None:
        with pytest.raises(RuntimeError, match="this thread is running an event loop"):
            callback.call_sync("1")

    asyncio.run(main())


def test_sync_callback_call_sync_inside_a_loop_works() -> None:
    callback: Callback[[str], str | None] = Callback("user_loader")
    callback(load_user)

    async def main() -> str | None:
        return callback.call_sync("1")

    assert asyncio.run(main()) == "ann"


def test_registering_again_replaces() -> None:
    callback: Callback[[str], str | None] = Callback("user_loader")
    callback(load_user)
    callback(lambda user_id: "bob")
    assert callback.call_sync("1") == "bob"


@pytest.mark.parametrize("method", ["call", "call_sync", "call_async"])
def test_unregistered_callback_raises(method: str) -> None:
    callback: Callback[[str], str | None] = Callback("user_loader", owner="Manager")

    async def main() -> t.Any:
        return await getattr(callback, method)("1")

    with pytest.raises(RuntimeError, match=r"No Manager\.user_loader callback"):
        asyncio.run(main())


def _gen(user_id: str) -> cabc.Generator[str, None, None]:
    yield user_id


async def _agen(user_id: str) -> cabc.AsyncGenerator[str, None]:
    yield user_id


class _GenCall:
    def __call__(self, user_id: str) -> cabc.Generator[str, None, None]:
        yield user_id


@pytest.mark.parametrize(
    ("obj", "what"),
    [
        (42, "not callable"),
        (AsyncLoader, "a class"),
        (_gen, "a generator function"),
        (functools.partial(_gen), "a generator function"),
        (_GenCall(), "a generator function"),
        (_agen, "an async generator function"),
    ],
    ids=["int", "class", "generator", "partial", "instance", "async-generator"],
)
def test_bad_callback_is_refused_at_registration(obj: t.Any, what: str) -> None:
    callback: Callback[[str], str | None] = Callback("user_loader", owner="Manager")

    with pytest.raises(
        TypeError, match=f"Manager.user_loader cannot be .*: it is {what}"
    ):
        callback(obj)

    assert not callback


def test_repr() -> None:
    callback: Callback[[str], str | None] = Callback("user_loader")
    assert repr(callback) == "<Callback user_loader None>"
    callback(load_user)
    assert repr(callback).startswith("<Callback user_loader <function load_user")


# -- drive_sync / drive_async ---------------------------------------------------


def current_user(loader: Callback[[str], str | None], user_id: str) -> t.Any:
    """A helper written as a generator, as decorator bodies call it."""
    user = yield loader.call(user_id)
    return user or "anonymous"


def test_drive_sync(user_loader: Callback[[str], str | None], app: Flask) -> None:
    assert drive_sync(current_user(user_loader, "1")) == "ann"

    with app.app_context():
        assert drive_sync(current_user(user_loader, "2")) == "anonymous"


def test_drive_async(user_loader: Callback[[str], str | None]) -> None:
    async def main() -> list[t.Any]:
        return [
            await drive_async(current_user(user_loader, "1")),
            await drive_async(current_user(user_loader, "2")),
        ]

    assert asyncio.run(main()) == ["ann", "anonymous"]


def test_drive_applies_the_body_rules() -> None:
    def helper() -> t.Any:
        return (yield current_user)

    def outer() -> t.Any:
        return (yield helper())

    with pytest.raises(TypeError, match=r"'yield from helper\(\)'"):
        drive_sync(outer())

    with pytest.raises(TypeError, match=r"'yield from helper\(\)'"):
        asyncio.run(drive_async(outer()))


def test_drive_refuses_what_is_not_a_generator() -> None:
    with pytest.raises(TypeError, match=r"Call the helper first: 'drive_sync"):
        drive_sync(current_user)  # type: ignore[arg-type]

    with pytest.raises(TypeError, match=r"drive_async\(\) needs a generator object"):
        asyncio.run(drive_async(42))  # type: ignore[arg-type]


# -- is_async_path -------------------------------------------------------------


def test_is_async_path_in_bodies(app: Flask) -> None:
    seen: list[tuple[str, bool]] = []

    def generator(view: t.Any, /) -> t.Any:
        seen.append(("generator", is_async_path()))
        return (yield view())

    async def coroutine(view: t.Any, /) -> t.Any:
        seen.append(("async", is_async_path()))
        return await view()

    def sync_view() -> str:
        return "sync"

    async def async_view() -> str:
        return "async"

    for body in (generator, coroutine):
        for view in (sync_view, async_view):
            app.add_url_rule(
                f"/{body.__name__}/{view.__name__}",
                f"{body.__name__}-{view.__name__}",
                async_compatible_decorator(body)(view),
            )

    client = app.test_client()
    for body_name in ("generator", "coroutine"):
        for view_name in ("sync_view", "async_view"):
            assert client.get(f"/{body_name}/{view_name}").status_code == 200

    assert seen == [
        ("generator", False),
        ("generator", True),
        ("async", True),
        ("async", True),
    ]
    assert is_async_path() is False


class _User:
    name = "ann"


def _mixed_helper() -> t.Any:
    number = yield 1
    user = yield load_user_async(str(number))
    assert user == "ann"
    return _User()


def test_drive_plain_values_and_objects() -> None:
    assert isinstance(drive_sync(_mixed_helper()), _User)
    assert isinstance(asyncio.run(drive_async(_mixed_helper())), _User)


def test_drive_async_resolves_nested_awaitables() -> None:
    """A yielded coroutine that gives another coroutine is resolved until a
    value is left: a ``False`` from the inner one denies, it is no truthy
    coroutine.
    """

    async def inner() -> bool:
        return False

    async def outer() -> t.Any:
        return inner()

    def helper() -> t.Generator[t.Any, t.Any, t.Any]:
        return (yield outer())

    assert asyncio.run(drive_async(helper())) is False
