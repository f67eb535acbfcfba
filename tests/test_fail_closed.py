"""Nothing fails open: wherever the toolkit expects a value, an awaitable of
any kind is resolved until a plain value is left, an async generator object
is refused, and a helper generator yielded instead of ``yield from``-ed is
refused, while a view's streamed response passes through.
"""

from __future__ import annotations

import asyncio
import collections.abc as cabc
import functools
import gc
import types
import typing as t
import warnings

import pytest
from flask import abort
from flask import Flask
from flask import g
from flask import request
from flask.views import MethodView

from flask_asyncext import after_view
from flask_asyncext import async_compatible_decorator
from flask_asyncext import before_view
from flask_asyncext import ensure_async
from flask_asyncext import ensure_sync
from flask_asyncext import maybe_await
from flask_asyncext.typing import ViewDecorator

Impl = cabc.Callable[..., t.Any]


class Refused(Exception):
    """What a raising callback raises."""


# -- every way a user callback can be written ---------------------------------

RESULTS = {
    # id: (what the check computes, is the request allowed)
    "true": (True, True),
    "false": (False, False),
    "none": (None, False),
    "zero": (0, False),
    "raises": (Refused, False),
}


def _produce(result: t.Any) -> t.Any:
    if result is Refused:
        raise Refused()
    return result


class _AwaitableResult:
    def __init__(self, result: t.Any) -> None:
        self.result = result

    def __await__(self) -> cabc.Generator[t.Any, None, t.Any]:
        yield from asyncio.sleep(0).__await__()
        return _produce(self.result)


def make_check(form: str, result: t.Any) -> Impl:
    """A user check written as ``form``, that computes ``result``."""
    if form == "sync":
        return lambda: _produce(result)

    async def coro() -> t.Any:
        await asyncio.sleep(0)
        return _produce(result)

    if form == "async-def":
        return coro

    if form == "types-coroutine":

        @types.coroutine
        def gen_coro() -> cabc.Generator[t.Any, None, t.Any]:
            yield from asyncio.sleep(0).__await__()
            return _produce(result)

        return gen_coro

    if form == "dunder-await":
        return lambda: _AwaitableResult(result)

    if form == "partial":

        async def coro_with(value: t.Any) -> t.Any:
            return _produce(value)

        return functools.partial(coro_with, result)

    if form == "callable-instance":

        class Check:
            async def __call__(self) -> t.Any:
                return _produce(result)

        return Check()

    if form == "sync-returns-coroutine":
        return lambda: coro()

    assert form == "coroutine-returns-coroutine"

    async def outer() -> t.Any:
        return coro()

    return outer


CHECK_FORMS = [
    "sync",
    "async-def",
    "types-coroutine",
    "dunder-await",
    "partial",
    "callable-instance",
    "sync-returns-coroutine",
    "coroutine-returns-coroutine",
]


# -- every way a decorator can consult the check ------------------------------


def make_guard(consumer: str, check: Impl) -> ViewDecorator:
    """A decorator that answers 403 unless ``check()`` is truthy."""
    if consumer == "generator-body":

        def guard(view: Impl, /, *args: t.Any, **kwargs: t.Any) -> t.Any:
            if not (yield check()):
                abort(403)
            return (yield view(*args, **kwargs))

        return async_compatible_decorator(guard)

    if consumer == "helper-yield-from":

        def allowed() -> cabc.Generator[t.Any, t.Any, bool]:
            return bool((yield check()))

        def guard_with_helper(view: Impl, /, *args: t.Any, **kwargs: t.Any) -> t.Any:
            if not (yield from allowed()):
                abort(403)
            return (yield view(*args, **kwargs))

        return async_compatible_decorator(guard_with_helper)

    if consumer == "async-body":

        async def async_guard(view: Impl, /, *args: t.Any, **kwargs: t.Any) -> t.Any:
            if not await maybe_await(check()):
                abort(403)
            return await maybe_await(view(*args, **kwargs))

        return async_compatible_decorator(async_guard)

    if consumer == "before-view-generator":

        @before_view
        def hook(*args: t.Any, **kwargs: t.Any) -> t.Any:
            if not (yield check()):
                abort(403)

        return hook

    assert consumer == "before-view-async"

    @before_view
    async def async_hook(*args: t.Any, **kwargs: t.Any) -> None:
        if not await maybe_await(check()):
            abort(403)

    return async_hook


CONSUMERS = [
    "generator-body",
    "helper-yield-from",
    "async-body",
    "before-view-generator",
    "before-view-async",
]

VIEW_KINDS = [
    "sync-function",
    "async-function",
    "sync-methodview",
    "async-methodview",
    "sync-view-decorators",
    "async-view-decorators",
]


def register_views(app: Flask, decorator: ViewDecorator, ran: list[str]) -> None:
    """Register ``decorator`` on one view of every kind, at ``/<kind>``."""

    def sync_view() -> str:
        ran.append(request.path)
        return "protected"

    async def async_view() -> str:
        ran.append(request.path)
        return "protected"

    app.add_url_rule("/sync-function", "sf", decorator(sync_view))
    app.add_url_rule("/async-function", "af", decorator(async_view))

    class SyncMethods(MethodView):
        get = decorator(lambda self: sync_view())

    class AsyncMethods(MethodView):
        @decorator
        async def get(self) -> str:
            return await async_view()

    class SyncListed(MethodView):
        decorators: t.ClassVar[list[ViewDecorator]] = [decorator]

        def get(self) -> str:
            return sync_view()

    class AsyncListed(MethodView):
        decorators: t.ClassVar[list[ViewDecorator]] = [decorator]

        async def get(self) -> str:
            return await async_view()

    app.add_url_rule("/sync-methodview", view_func=SyncMethods.as_view("sm"))
    app.add_url_rule("/async-methodview", view_func=AsyncMethods.as_view("am"))
    app.add_url_rule("/sync-view-decorators", view_func=SyncListed.as_view("sl"))
    app.add_url_rule("/async-view-decorators", view_func=AsyncListed.as_view("al"))


@pytest.mark.parametrize("result_id", list(RESULTS))
@pytest.mark.parametrize("form", CHECK_FORMS)
@pytest.mark.parametrize("consumer", CONSUMERS)
def test_fail_closed_table(
    app: Flask, consumer: str, form: str, result_id: str
) -> None:
    result, allowed = RESULTS[result_id]
    ran: list[str] = []
    register_views(app, make_guard(consumer, make_check(form, result)), ran)
    app.config["PROPAGATE_EXCEPTIONS"] = False
    client = app.test_client()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        statuses = {kind: client.get(f"/{kind}").status_code for kind in VIEW_KINDS}
        gc.collect()

    if allowed:
        assert statuses == dict.fromkeys(VIEW_KINDS, 200)
        assert sorted(ran) == sorted(f"/{kind}" for kind in VIEW_KINDS)
    else:
        expected = 500 if result is Refused else 403
        assert statuses == dict.fromkeys(VIEW_KINDS, expected)
        assert ran == []

    assert [str(w.message) for w in caught] == []


def test_plain_body_with_ensure_sync_denies_on_sync_views(app: Flask) -> None:
    """A plain body calls checks through ``ensure_sync``, so it denies with a
    check of every form, where its result is resolved first.
    """
    for form in CHECK_FORMS:
        check = make_check(form, False)

        def guard(view: Impl, /, *args: t.Any, check: Impl = check) -> t.Any:
            if not ensure_sync(check)():
                abort(403)
            return view(*args)

        view = async_compatible_decorator(guard)(lambda: "protected")
        app.add_url_rule(f"/{form}", form, view)

    client = app.test_client()
    assert {form: client.get(f"/{form}").status_code for form in CHECK_FORMS} == (
        dict.fromkeys(CHECK_FORMS, 403)
    )


# -- generator-based coroutines ------------------------------------------------


@types.coroutine
def _generator_coroutine(value: t.Any) -> cabc.Generator[t.Any, None, t.Any]:
    yield from asyncio.sleep(0).__await__()
    return value


def test_maybe_await_awaits_generator_based_coroutine() -> None:
    assert asyncio.run(maybe_await(_generator_coroutine(False))) is False


def test_ensure_sync_awaits_generator_based_coroutine() -> None:
    assert ensure_sync(_generator_coroutine)(False) is False


def test_maybe_await_passes_plain_generator_through() -> None:
    def stream() -> cabc.Iterator[str]:
        yield "chunk"

    gen = stream()
    assert asyncio.run(maybe_await(gen)) is gen
    assert list(gen) == ["chunk"]


# -- nested awaitables ----------------------------------------------------------


async def _returns_coroutine(value: t.Any = False) -> t.Any:
    """A coroutine that gives a generator-based coroutine that gives an
    object with ``__await__`` that gives ``value``.
    """
    return _generator_coroutine(_AwaitableResult(value))


def test_maybe_await_resolves_nested_awaitables() -> None:
    assert asyncio.run(maybe_await(_returns_coroutine())) is False


def test_ensure_sync_resolves_nested_awaitables() -> None:
    assert ensure_sync(_returns_coroutine)() is False
    assert ensure_sync(lambda: _returns_coroutine())() is False


class _ReturnsCoroutine:
    async def __call__(self) -> t.Any:
        return await _returns_coroutine()


def test_ensure_async_resolves_nested_awaitables() -> None:
    """What the wrappers that ``ensure_async`` makes give is resolved; a
    coroutine function is returned as it is (its calling convention is
    already right), so what awaiting it gives is what it returns.
    """

    async def main() -> list[t.Any]:
        return [
            await ensure_async(lambda: _returns_coroutine())(),
            await ensure_async(_ReturnsCoroutine())(),
            await ensure_async(lambda: _returns_coroutine(), thread=True)(),
        ]

    assert asyncio.run(main()) == [False, False, False]


@pytest.mark.parametrize("view_kind", ["sync", "async"])
@pytest.mark.parametrize("where", ["yield", "return"])
def test_body_resolves_nested_awaitables(
    app: Flask, view_kind: str, where: str
) -> None:
    def body(view: Impl, /) -> t.Any:
        if where == "return":
            return _returns_coroutine("resolved")
        return repr((yield _returns_coroutine()))

    decorate = async_compatible_decorator(body)
    if view_kind == "sync":
        app.add_url_rule("/", "v", decorate(lambda: "view"))
    else:

        async def view() -> str:
            return "view"

        app.add_url_rule("/", "v", decorate(view))

    response = app.test_client().get("/")
    assert response.text == ("resolved" if where == "return" else "False")


# -- async generator objects ------------------------------------------------


async def _stray_yield() -> cabc.AsyncGenerator[bool, None]:
    yield False


def test_maybe_await_refuses_async_generator_object() -> None:
    with pytest.raises(TypeError, match=r"async generator.*'_stray_yield'"):
        asyncio.run(maybe_await(_stray_yield()))


def test_ensure_sync_refuses_async_generator_object() -> None:
    with pytest.raises(TypeError, match=r"async generator.*'_stray_yield'"):
        ensure_sync(_stray_yield)()


def test_ensure_async_refuses_async_generator_object() -> None:
    with pytest.raises(TypeError, match=r"async generator.*'_stray_yield'"):
        asyncio.run(ensure_async(_stray_yield)())


async def _returns_async_generator() -> t.Any:
    return _stray_yield()


def test_async_generator_behind_a_coroutine_is_refused() -> None:
    with pytest.raises(TypeError, match=r"async generator.*'_stray_yield'"):
        asyncio.run(maybe_await(_returns_async_generator()))
    with pytest.raises(TypeError, match=r"async generator.*'_stray_yield'"):
        ensure_sync(_returns_async_generator)()


BODY_SHAPES = ["generator-yield", "generator-return", "plain", "async"]


def async_generator_body(shape: str) -> Impl:
    if shape == "generator-yield":

        def yields(view: Impl, /) -> t.Any:
            if not (yield _stray_yield()):
                abort(403)
            return (yield view())

        return yields

    if shape == "generator-return":

        def returns(view: Impl, /) -> t.Any:
            yield None
            return _stray_yield()

        return returns

    if shape == "plain":
        return lambda view, /: _stray_yield()

    async def awaits(view: Impl, /) -> t.Any:
        return _stray_yield()

    return awaits


@pytest.mark.parametrize("view_kind", ["sync", "async"])
@pytest.mark.parametrize("shape", BODY_SHAPES)
def test_body_refuses_async_generator_object(
    app: Flask, shape: str, view_kind: str
) -> None:
    ran: list[str] = []
    decorate = async_compatible_decorator(async_generator_body(shape))

    if view_kind == "sync":

        def view() -> str:
            ran.append("view")
            return "protected"

    else:

        async def view() -> str:  # type: ignore[misc]
            ran.append("view")
            return "protected"

    app.add_url_rule("/", "v", decorate(view))

    with pytest.raises(TypeError, match=r"async generator.*'_stray_yield'"):
        app.test_client().get("/")

    assert ran == []


# -- ``yield helper()`` where ``yield from helper()`` is meant ------------------


def load_user() -> cabc.Generator[t.Any, t.Any, t.Any]:
    """A helper an extension writes as a generator: anonymous unless the
    request says otherwise.
    """
    user = yield _AwaitableResult(request.headers.get("X-User"))
    return user


def guard_spelled(spelling: str) -> ViewDecorator:
    if spelling == "yield-from":

        def login_required(view: Impl, /, *args: t.Any, **kwargs: t.Any) -> t.Any:
            user = yield from load_user()
            if not user:
                abort(401)
            g.user = user
            return (yield view(*args, **kwargs))

    else:

        def login_required(view: Impl, /, *args: t.Any, **kwargs: t.Any) -> t.Any:  # type: ignore[misc]
            user = yield load_user()
            if not user:
                abort(401)
            g.user = user
            return (yield view(*args, **kwargs))

    return async_compatible_decorator(login_required)


@pytest.mark.parametrize("view_kind", ["sync", "async"])
def test_yield_from_helper(app: Flask, view_kind: str) -> None:
    decorate = guard_spelled("yield-from")

    if view_kind == "sync":
        app.add_url_rule("/", "v", decorate(lambda: f"hello {g.user}"))
    else:

        async def view() -> str:
            return f"hello {g.user}"

        app.add_url_rule("/", "v", decorate(view))

    client = app.test_client()
    assert client.get("/").status_code == 401
    assert client.get("/", headers={"X-User": "ann"}).text == "hello ann"


@pytest.mark.parametrize("view_kind", ["sync", "async"])
def test_yield_helper_instead_of_yield_from_is_refused(
    app: Flask, view_kind: str
) -> None:
    ran: list[str] = []
    decorate = guard_spelled("yield")

    if view_kind == "sync":

        def view() -> str:
            ran.append("view")
            return "protected"

    else:

        async def view() -> str:  # type: ignore[misc]
            ran.append("view")
            return "protected"

    app.add_url_rule("/", "v", decorate(view))

    with pytest.raises(TypeError, match=r"'yield from load_user\(\)'") as info:
        app.test_client().get("/")

    assert "login_required" in str(info.value)
    assert ran == []


@pytest.mark.parametrize("depth", [1, 3])
@pytest.mark.parametrize(
    "decorator_kind", ["generator", "plain", "before_view", "after_view"]
)
def test_streamed_response_of_sync_view_passes_through(
    app: Flask, decorator_kind: str, depth: int
) -> None:
    def generator_body(view: Impl, /, *args: t.Any, **kwargs: t.Any) -> t.Any:
        return (yield view(*args, **kwargs))

    decorator = {
        "generator": async_compatible_decorator(generator_body),
        "plain": async_compatible_decorator(lambda view, /: view()),
        "before_view": before_view(lambda: None),
        "after_view": after_view(lambda response: None),
    }[decorator_kind]

    def stream() -> cabc.Iterator[str]:
        yield "a"
        yield "b"

    view: Impl = stream
    for _ in range(depth):
        view = decorator(view)

    app.add_url_rule("/", "v", view)
    response = app.test_client().get("/")
    assert (response.status_code, response.text) == (200, "ab")


@pytest.mark.parametrize("inner_kind", ["generator", "plain", "async"])
def test_stream_made_by_an_inner_decorator_passes_through(
    app: Flask, inner_kind: str
) -> None:
    """A stream that an inner decorator's body made (not the view's) is what
    the outer decorator's view returned: the outer body may yield it back.
    """

    def stream() -> cabc.Iterator[str]:
        yield "made by the decorator"

    def generator_body(view: Impl, /) -> t.Any:
        yield view()
        return stream()

    def plain_body(view: Impl, /) -> t.Any:
        view()
        return stream()

    async def async_body(view: Impl, /) -> t.Any:
        await view()
        return stream()

    body = {"generator": generator_body, "plain": plain_body, "async": async_body}
    inner = async_compatible_decorator(body[inner_kind])

    @async_compatible_decorator
    def outer(view: Impl, /) -> t.Any:
        return (yield view())

    def view() -> str:
        return "view"

    app.add_url_rule("/", "v", outer(inner(view)))
    response = app.test_client().get("/")
    assert (response.status_code, response.text) == (200, "made by the decorator")


# -- the view yielded or returned uncalled ----------------------------------


def uncalled_view_body(shape: str) -> Impl:
    if shape == "generator-yield":

        def yields_view(view: Impl, /, *args: t.Any, **kwargs: t.Any) -> t.Any:
            return (yield view)

        return yields_view

    if shape == "generator-return":

        def returns_view(view: Impl, /, *args: t.Any, **kwargs: t.Any) -> t.Any:
            yield None
            return view

        return returns_view

    if shape == "plain":

        def plain_returns_view(view: Impl, /, *args: t.Any, **kwargs: t.Any) -> t.Any:
            return view

        return plain_returns_view

    async def async_returns_view(view: Impl, /, *args: t.Any, **kwargs: t.Any) -> t.Any:
        return view

    return async_returns_view


@pytest.mark.parametrize("view_kind", ["sync", "async"])
@pytest.mark.parametrize("shape", BODY_SHAPES)
def test_view_yielded_uncalled_is_refused(
    app: Flask, shape: str, view_kind: str
) -> None:
    body = uncalled_view_body(shape)
    decorate = async_compatible_decorator(body)

    if view_kind == "sync":
        app.add_url_rule("/<int:id>", "v", decorate(lambda id: "view"))
    else:

        async def view(id: int) -> str:
            return "view"

        app.add_url_rule("/<int:id>", "v", decorate(view))

    with pytest.raises(TypeError, match="without calling it") as info:
        app.test_client().get("/1")

    assert f"'{body.__name__}'" in str(info.value)
    assert "yield view(*args, **kwargs)" in str(info.value)


@pytest.mark.parametrize("view_kind", ["sync", "async"])
def test_plain_values_pass_through_every_body(app: Flask, view_kind: str) -> None:
    """The fast path: a body that answers with a plain value."""

    def generator(view: Impl, /) -> t.Any:
        yield None
        return "generator"

    async def coroutine(view: Impl, /) -> t.Any:
        return "async"

    bodies: list[Impl] = [generator, lambda view, /: "plain", coroutine]

    async def async_view() -> str:
        return "view"

    for i, body in enumerate(bodies):
        view = async_view if view_kind == "async" else (lambda: "view")
        app.add_url_rule(f"/{i}", f"v{i}", async_compatible_decorator(body)(view))

    client = app.test_client()
    assert [client.get(f"/{i}").text for i in range(3)] == [
        "generator",
        "plain",
        "async",
    ]
