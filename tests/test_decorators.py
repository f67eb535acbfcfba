from __future__ import annotations

import asyncio
import collections.abc as cabc
import contextvars
import functools
import importlib.metadata
import inspect
import typing as t
import warnings

import pytest
from flask import abort
from flask import Blueprint
from flask import current_app
from flask import Flask
from flask import g
from flask import request
from flask import Response
from flask import session
from flask import stream_with_context
from flask.views import MethodView

from flask_asyncext import after_view
from flask_asyncext import async_compatible_decorator
from flask_asyncext import before_view
from flask_asyncext import maybe_await
from flask_asyncext.typing import ViewDecorator

if t.TYPE_CHECKING:
    from conftest import LoopCounter

Impl = cabc.Callable[..., t.Any]

# -- the ways a view can be registered -----------------------------------

VIEW_KINDS = [
    "sync-function",
    "async-function",
    "sync-methodview",
    "async-methodview",
    "sync-view-decorators",
    "async-view-decorators",
    "sync-blueprint",
    "async-blueprint",
    "sync-add-url-rule",
    "async-add-url-rule",
]


def register(
    app: Flask,
    kind: str,
    decorators: cabc.Sequence[ViewDecorator],
    impl: Impl,
    rule: str = "/item/<int:id>",
) -> None:
    """Register a view at ``rule`` that returns ``impl(id)``, written as
    ``kind`` says, with ``decorators`` applied (the first one outermost).
    """

    def decorate(view: t.Any) -> t.Any:
        for decorator in reversed(decorators):
            view = decorator(view)
        return view

    is_async = kind.startswith("async")
    endpoint = rule.split("/")[1]

    if is_async:

        async def item(id: int) -> t.Any:
            return impl(id)

    else:

        def item(id: int) -> t.Any:  # type: ignore[misc]
            return impl(id)

    if kind.endswith("-function"):
        app.route(rule, endpoint=endpoint)(decorate(item))
    elif kind.endswith("-blueprint"):
        bp = Blueprint(f"bp_{endpoint}", __name__)
        bp.route(rule, endpoint=endpoint)(decorate(item))
        app.register_blueprint(bp)
    elif kind.endswith("-add-url-rule"):
        app.add_url_rule(rule, endpoint=endpoint, view_func=decorate(item))
    elif kind.endswith("-methodview"):
        if is_async:

            class ItemView(MethodView):
                @decorate
                async def get(self, id: int) -> t.Any:
                    assert isinstance(self, ItemView)
                    return impl(id)

        else:

            class ItemView(MethodView):  # type: ignore[no-redef]
                @decorate
                def get(self, id: int) -> t.Any:
                    assert isinstance(self, ItemView)
                    return impl(id)

        app.add_url_rule(rule, view_func=ItemView.as_view(endpoint))
    else:
        assert kind.endswith("-view-decorators")
        # View.decorators lists the innermost decorator first.
        stack = list(reversed(decorators))

        if is_async:

            class DecoratedView(MethodView):
                decorators = stack

                async def get(self, id: int) -> t.Any:
                    return impl(id)

        else:

            class DecoratedView(MethodView):  # type: ignore[no-redef]
                decorators = stack

                def get(self, id: int) -> t.Any:
                    return impl(id)

        app.add_url_rule(rule, view_func=DecoratedView.as_view(endpoint))


# -- one guard, written as each kind of body -----------------------------

BODY_KINDS = ["generator", "plain", "async"]
CALLBACK_MODES = ["sync", "async"]


def make_callback(mode: str, events: list[str]) -> Impl:
    """A user callback that allows a request unless it has ``X-Deny``."""
    if mode == "sync":

        def allowed() -> bool:
            events.append("callback")
            return "X-Deny" not in request.headers

        return allowed

    async def allowed_async() -> bool:
        events.append("callback")
        await asyncio.sleep(0)
        return "X-Deny" not in request.headers

    return allowed_async


def make_guard(kind: str, callback: Impl) -> ViewDecorator:
    """A decorator that aborts with 403 unless ``callback()`` allows it."""
    if kind == "generator":

        def guard(view: Impl, /, *args: t.Any, **kwargs: t.Any) -> t.Any:
            if not (yield callback()):
                abort(403)
            g.guard = "generator"
            return (yield view(*args, **kwargs))

    elif kind == "plain":

        def guard(view: Impl, /, *args: t.Any, **kwargs: t.Any) -> t.Any:  # type: ignore[misc]
            if not callback():
                abort(403)
            g.guard = "plain"
            return view(*args, **kwargs)

    else:

        async def guard(view: Impl, /, *args: t.Any, **kwargs: t.Any) -> t.Any:  # type: ignore[misc]
            if not await maybe_await(callback()):
                abort(403)
            g.guard = "async"
            return await maybe_await(view(*args, **kwargs))

    return async_compatible_decorator(guard)


GUARD_CASES = [
    pytest.param(body, mode, id=f"{body}-body-{mode}-callback")
    for body in BODY_KINDS
    for mode in CALLBACK_MODES
    # A plain body cannot wait for an async callback: that is what the
    # generator body is for.
    if not (body == "plain" and mode == "async")
]


@pytest.mark.parametrize("view_kind", VIEW_KINDS)
@pytest.mark.parametrize(("body_kind", "mode"), GUARD_CASES)
def test_allowed_request_reaches_view(
    app: Flask, view_kind: str, body_kind: str, mode: str
) -> None:
    events: list[str] = []

    def impl(id: int) -> dict[str, t.Any]:
        events.append("view")
        return {"id": id, "guard": g.guard}

    register(app, view_kind, [make_guard(body_kind, make_callback(mode, events))], impl)
    response = app.test_client().get("/item/7")
    assert response.status_code == 200
    assert response.json == {"id": 7, "guard": body_kind}
    assert events == ["callback", "view"]


@pytest.mark.parametrize("view_kind", VIEW_KINDS)
@pytest.mark.parametrize(("body_kind", "mode"), GUARD_CASES)
def test_denied_request_never_runs_view(
    app: Flask, view_kind: str, body_kind: str, mode: str
) -> None:
    events: list[str] = []

    def impl(id: int) -> str:
        events.append("view")
        return "view ran"

    register(app, view_kind, [make_guard(body_kind, make_callback(mode, events))], impl)
    response = app.test_client().get("/item/7", headers={"X-Deny": "1"})
    assert response.status_code == 403
    assert events == ["callback"]


# -- calling convention and metadata --------------------------------------


def body_of_kind(kind: str) -> Impl:
    """A pass-through body of each kind."""
    if kind == "generator":

        def gen_body(view: Impl, /, *args: t.Any, **kwargs: t.Any) -> t.Any:
            return (yield view(*args, **kwargs))

        return gen_body

    if kind == "plain":

        def plain_body(view: Impl, /, *args: t.Any, **kwargs: t.Any) -> t.Any:
            return view(*args, **kwargs)

        return plain_body

    async def async_body(view: Impl, /, *args: t.Any, **kwargs: t.Any) -> t.Any:
        return await view(*args, **kwargs)

    return async_body


@pytest.mark.parametrize("body_kind", BODY_KINDS)
def test_calling_convention_and_metadata_kept(body_kind: str) -> None:
    decorator = async_compatible_decorator(body_of_kind(body_kind))

    def sync_view(id: int, *, flag: bool = False) -> str:
        """Sync doc."""
        return "s"

    async def async_view(id: int, *, flag: bool = False) -> str:
        """Async doc."""
        return "a"

    sync_view.custom = "s"  # type: ignore[attr-defined]
    async_view.custom = "a"  # type: ignore[attr-defined]

    for view, is_async in ((sync_view, False), (async_view, True)):
        decorated = decorator(view)
        assert inspect.iscoroutinefunction(decorated) is is_async
        assert decorated is not view
        assert decorated.__wrapped__ is view  # type: ignore[attr-defined]
        for name in ("__name__", "__qualname__", "__module__", "__doc__", "custom"):
            assert getattr(decorated, name) == getattr(view, name)
        assert inspect.signature(decorated) == inspect.signature(view)


@pytest.mark.parametrize("body_kind", BODY_KINDS)
def test_decorator_carries_body_name_and_doc(body_kind: str) -> None:
    body = body_of_kind(body_kind)
    body.__doc__ = "Pass the request through."
    decorator = async_compatible_decorator(body)
    assert decorator.__name__ == body.__name__  # type: ignore[attr-defined]
    assert decorator.__qualname__ == body.__qualname__  # type: ignore[attr-defined]
    assert decorator.__doc__ == "Pass the request through."
    assert not hasattr(decorator, "__wrapped__")


def test_bodies_may_be_any_callable_of_each_kind(app: Flask) -> None:
    def tagging_body(
        view: Impl, /, *args: t.Any, tag: str, **kwargs: t.Any
    ) -> cabc.Generator[t.Any, t.Any, t.Any]:
        rv = yield view(*args, **kwargs)
        return f"{tag}:{rv}"

    class GeneratorBody:
        def __call__(self, view: Impl, /, *args: t.Any, **kwargs: t.Any) -> t.Any:
            return "object:" + (yield view(*args, **kwargs))

    class AsyncBody:
        async def __call__(self, view: Impl, /, *args: t.Any, **kwargs: t.Any) -> t.Any:
            return "async-object:" + await view(*args, **kwargs)

    class PlainBody:
        def __call__(self, view: Impl, /, *args: t.Any, **kwargs: t.Any) -> t.Any:
            return "plain-object:" + t.cast(str, view(*args, **kwargs))

    partial = async_compatible_decorator(functools.partial(tagging_body, tag="partial"))
    assert partial.__name__ == "tagging_body"  # type: ignore[attr-defined]

    @app.get("/a")
    @partial
    @async_compatible_decorator(GeneratorBody())
    @async_compatible_decorator(AsyncBody())
    async def a() -> str:
        return "a"

    @app.get("/s")
    @async_compatible_decorator(PlainBody())
    @partial
    def s() -> str:
        return "s"

    client = app.test_client()
    assert client.get("/a").text == "partial:object:async-object:a"
    assert client.get("/s").text == "plain-object:partial:s"


# -- bad input is refused when the decorator is made or applied -----------


async def _agen(view: Impl, /) -> cabc.AsyncGenerator[t.Any, None]:
    yield view


class _AsyncGenCall:
    async def __call__(self) -> cabc.AsyncGenerator[t.Any, None]:
        yield None


@pytest.mark.parametrize(
    ("obj", "reason"),
    [
        (42, "it is not callable"),
        ("view", "it is not callable"),
        (dict, "it is a class"),
        (MethodView, "it is a class"),
        (_agen, "it is an async generator function"),
        (functools.partial(_agen), "it is an async generator function"),
        (_AsyncGenCall(), "it is an async generator function"),
    ],
)
def test_bad_body_is_refused_at_once(obj: t.Any, reason: str) -> None:
    with pytest.raises(TypeError, match="async_compatible_decorator\\(\\)") as info:
        async_compatible_decorator(obj)
    assert reason in str(info.value)
    assert repr(obj) in str(info.value)


@pytest.mark.parametrize(
    ("obj", "reason"),
    [
        (42, "it is not callable"),
        (None, "it is not callable"),
        (MethodView, "it is a class"),
        (_agen, "it is an async generator function"),
    ],
)
@pytest.mark.parametrize("body_kind", BODY_KINDS)
def test_bad_view_is_refused_at_decoration_time(
    obj: t.Any, reason: str, body_kind: str
) -> None:
    decorator = async_compatible_decorator(body_of_kind(body_kind))
    with pytest.raises(TypeError) as info:
        decorator(obj)
    message = str(info.value)
    body_name = {"generator": "gen_body", "plain": "plain_body", "async": "async_body"}
    assert message.startswith(f"{body_name[body_kind]} cannot use ")
    assert reason in message
    assert repr(obj) in message


@pytest.mark.parametrize("factory", [before_view, after_view])
def test_bad_hook_is_refused_at_once(factory: t.Callable[[t.Any], t.Any]) -> None:
    with pytest.raises(TypeError, match=f"{factory.__name__}\\(\\) cannot use 42"):
        factory(42)
    with pytest.raises(TypeError, match="async generator"):
        factory(_agen)


# -- stacking --------------------------------------------------------------


def recording_body(kind: str, name: str, events: list[str]) -> Impl:
    """A body of ``kind`` that records ``name`` before and after the view and
    awaits (or yields) something on its way in, noting the running loop.
    """

    async def touch() -> str:
        events.append(f"{name}:awaited:{id(asyncio.get_running_loop())}")
        return name

    if kind == "generator":

        def gen(view: Impl, /, *args: t.Any, **kwargs: t.Any) -> t.Any:
            assert (yield touch()) == name
            events.append(f"{name}:in")
            rv = yield view(*args, **kwargs)
            events.append(f"{name}:out")
            return rv

        return gen

    if kind == "plain":

        def plain(view: Impl, /, *args: t.Any, **kwargs: t.Any) -> t.Any:
            events.append(f"{name}:in")
            return view(*args, **kwargs)

        return plain

    async def body(view: Impl, /, *args: t.Any, **kwargs: t.Any) -> t.Any:
        assert await touch() == name
        events.append(f"{name}:in")
        rv = await view(*args, **kwargs)
        events.append(f"{name}:out")
        return rv

    return body


def wraps_decorator(events: list[str]) -> ViewDecorator:
    """A plain hand-written decorator, correct for either kind of view."""

    def decorator(view: t.Any) -> t.Any:
        if inspect.iscoroutinefunction(view):

            @functools.wraps(view)
            async def async_wrapper(*args: t.Any, **kwargs: t.Any) -> t.Any:
                events.append("wraps:in")
                return await view(*args, **kwargs)

            return async_wrapper

        @functools.wraps(view)
        def wrapper(*args: t.Any, **kwargs: t.Any) -> t.Any:
            events.append("wraps:in")
            return view(*args, **kwargs)

        return wrapper

    return t.cast(ViewDecorator, decorator)


def ensure_sync_decorator(events: list[str]) -> ViewDecorator:
    """The recipe Flask-Login's ``login_required`` uses."""

    def decorator(view: t.Any) -> t.Any:
        @functools.wraps(view)
        def wrapper(*args: t.Any, **kwargs: t.Any) -> t.Any:
            events.append("ensure_sync:in")
            return current_app.ensure_sync(view)(*args, **kwargs)

        return wrapper

    return t.cast(ViewDecorator, decorator)


STACK_KINDS = ["generator", "async", "plain", "generator", "async"]


@pytest.mark.parametrize("depth", [1, 2, 5])
@pytest.mark.parametrize("view_kind", VIEW_KINDS)
def test_stacked_toolkit_decorators(app: Flask, view_kind: str, depth: int) -> None:
    events: list[str] = []
    decorators = [
        async_compatible_decorator(recording_body(kind, f"d{i}", events))
        for i, kind in enumerate(STACK_KINDS[:depth])
    ]

    def impl(id: int) -> str:
        events.append("view")
        return f"item {id}"

    register(app, view_kind, decorators, impl)
    assert app.test_client().get("/item/3").text == "item 3"
    ins = [e.split(":")[0] for e in events if e.endswith(":in")]
    outs = [e.split(":")[0] for e in events if e.endswith(":out")]
    names = [f"d{i}" for i in range(depth)]
    assert ins == names
    assert (
        outs
        == [n for n, k in zip(names, STACK_KINDS[:depth], strict=True) if k != "plain"][
            ::-1
        ]
    )
    assert events.count("view") == 1


@pytest.mark.parametrize("other", ["wraps", "ensure_sync"])
@pytest.mark.parametrize("order", ["toolkit-outer", "toolkit-inner"])
@pytest.mark.parametrize("view_kind", ["sync-function", "async-function"])
@pytest.mark.parametrize("body_kind", BODY_KINDS)
def test_mixed_with_hand_written_decorators(
    app: Flask, view_kind: str, body_kind: str, order: str, other: str
) -> None:
    events: list[str] = []
    toolkit = async_compatible_decorator(recording_body(body_kind, "toolkit", events))
    hand = (wraps_decorator if other == "wraps" else ensure_sync_decorator)(events)
    decorators = [toolkit, hand] if order == "toolkit-outer" else [hand, toolkit]

    def impl(id: int) -> str:
        events.append("view")
        return f"item {id}"

    register(app, view_kind, decorators, impl)
    assert app.test_client().get("/item/5").text == "item 5"
    entered = [e for e in events if e.endswith(":in")]
    expected = ["toolkit:in", f"{other}:in"]
    assert entered == (expected if order == "toolkit-outer" else expected[::-1])
    assert events.count("view") == 1


# -- event loops -----------------------------------------------------------


@pytest.mark.parametrize("view_kind", [k for k in VIEW_KINDS if k.startswith("sync")])
def test_sync_view_behind_sync_bodies_uses_no_event_loop(
    app: Flask, loops: LoopCounter, view_kind: str
) -> None:
    events: list[str] = []
    decorators = [
        async_compatible_decorator(recording_body("plain", "p", events)),
        before_view(lambda *args, **kwargs: None),
        after_view(lambda response: None),
        make_guard("generator", make_callback("sync", events)),
        make_guard("plain", make_callback("sync", events)),
    ]
    register(app, view_kind, decorators, lambda id: f"item {id}")
    assert app.test_client().get("/item/1").text == "item 1"
    assert loops.created == 0


def test_async_view_behind_five_decorators_runs_in_one_loop(
    app: Flask, loops: LoopCounter, asyncext_shared_loop: t.Any
) -> None:
    events: list[str] = []
    seen: list[int] = []

    async def check(*args: t.Any, **kwargs: t.Any) -> None:
        seen.append(id(asyncio.get_running_loop()))

    decorators = [
        async_compatible_decorator(recording_body("generator", f"g{i}", events))
        for i in range(4)
    ]
    decorators.append(before_view(check))

    @app.get("/")
    @decorators[0]
    @decorators[1]
    @decorators[2]
    @decorators[3]
    @decorators[4]
    async def index() -> str:
        seen.append(id(asyncio.get_running_loop()))
        return "ok"

    assert app.test_client().get("/").text == "ok"
    seen += [int(e.rsplit(":", 1)[1]) for e in events if ":awaited:" in e]
    assert len(seen) == 6
    assert len(set(seen)) == 1
    # One for Flask's default bridge; none when a shared loop is warm.
    assert loops.created == (1 if asyncext_shared_loop is None else 0)


# -- what passes through ---------------------------------------------------


def _stream() -> t.Any:
    def generate() -> cabc.Iterator[str]:
        yield "chunk "
        yield request.args["q"]

    return stream_with_context(generate())


# pallets/flask#5774, fixed in Flask 3.1.2.
OLD_FLASK_STREAMING = tuple(
    int(part) for part in importlib.metadata.version("flask").split(".")[:3]
) < (3, 1, 2)

RESPONSE_SHAPES = {
    "str": lambda: "text",
    "bytes": lambda: b"bytes",
    "dict": lambda: {"a": 1},
    "list": lambda: [1, 2],
    "status": lambda: ("created", 201),
    "headers": lambda: ("text", {"X-Shape": "headers"}),
    "status-headers": lambda: ("text", 202, [("X-Shape", "both")]),
    "response": lambda: Response("resp", 206, {"X-Shape": "response"}),
    "stream": _stream,
}


@pytest.mark.parametrize("shape", list(RESPONSE_SHAPES))
@pytest.mark.parametrize("view_kind", ["sync-function", "async-function"])
@pytest.mark.parametrize("decorator_kind", [*BODY_KINDS, "before_view", "after_view"])
def test_response_shapes_pass_through(
    app: Flask,
    shape: str,
    view_kind: str,
    decorator_kind: str,
) -> None:
    # The view runs in another contextvars.Context when it is async, or sync
    # behind an async body (in a worker thread). Flask < 3.1.2 then breaks
    # stream_with_context itself, and leaks the request context into later
    # tests; the envs with a newer Flask run these cases.
    other_context = view_kind.startswith("async") or decorator_kind == "async"
    if shape == "stream" and other_context and OLD_FLASK_STREAMING:
        pytest.skip("Flask < 3.1.2 cannot stream_with_context from another context")

    if decorator_kind == "before_view":
        decorator = before_view(lambda id: None)
    elif decorator_kind == "after_view":
        decorator = after_view(lambda response: None)
    else:
        decorator = async_compatible_decorator(body_of_kind(decorator_kind))

    make = RESPONSE_SHAPES[shape]
    register(app, view_kind, [], lambda id: make(), rule="/plain/<int:id>")
    register(app, view_kind, [decorator], lambda id: make())
    client = app.test_client()
    expected = client.get("/plain/1?q=end")
    got = client.get("/item/1?q=end")
    assert got.status_code == expected.status_code
    assert got.data == expected.data
    assert got.headers == expected.headers


# -- errors ------------------------------------------------------------------


class Boom(Exception):
    pass


@pytest.mark.parametrize("handler_kind", ["sync", "async"])
@pytest.mark.parametrize("view_kind", VIEW_KINDS)
@pytest.mark.parametrize("body_kind", BODY_KINDS)
def test_view_exception_reaches_error_handler(
    app: Flask, body_kind: str, view_kind: str, handler_kind: str
) -> None:
    caught: list[BaseException] = []

    if handler_kind == "sync":

        @app.errorhandler(Boom)
        def handle(e: Boom) -> tuple[str, int]:
            caught.append(e)
            return "handled", 418

    else:

        @app.errorhandler(Boom)
        async def handle_async(e: Boom) -> tuple[str, int]:
            caught.append(e)
            return "handled", 418

    def impl(id: int) -> str:
        raise Boom(id)

    register(
        app, view_kind, [async_compatible_decorator(body_of_kind(body_kind))], impl
    )
    response = app.test_client().get("/item/9")
    assert (response.status_code, response.text) == (418, "handled")
    assert len(caught) == 1
    assert type(caught[0]) is Boom
    assert caught[0].args == (9,)


@pytest.mark.parametrize("where", ["body", "view"])
@pytest.mark.parametrize("view_kind", ["sync-function", "async-function"])
@pytest.mark.parametrize("body_kind", BODY_KINDS)
def test_abort_in_body_or_view(
    app: Flask, body_kind: str, view_kind: str, where: str
) -> None:
    inner = body_of_kind(body_kind)

    if body_kind == "async":

        async def body(view: Impl, /, *args: t.Any, **kwargs: t.Any) -> t.Any:
            if where == "body":
                abort(409)
            return await inner(view, *args, **kwargs)

    elif body_kind == "generator":

        def body(view: Impl, /, *args: t.Any, **kwargs: t.Any) -> t.Any:  # type: ignore[misc]
            if where == "body":
                abort(409)
            return (yield from inner(view, *args, **kwargs))

    else:

        def body(view: Impl, /, *args: t.Any, **kwargs: t.Any) -> t.Any:  # type: ignore[misc]
            if where == "body":
                abort(409)
            return inner(view, *args, **kwargs)

    def impl(id: int) -> str:
        abort(410)

    register(app, view_kind, [async_compatible_decorator(body)], impl)
    assert app.test_client().get("/item/1").status_code == (
        409 if where == "body" else 410
    )


@pytest.mark.parametrize("view_kind", ["sync-function", "async-function"])
def test_generator_body_sees_view_exception(app: Flask, view_kind: str) -> None:
    events: list[str] = []

    async def cleanup() -> None:
        events.append("async cleanup")

    def body(view: Impl, /, *args: t.Any, **kwargs: t.Any) -> t.Any:
        try:
            return (yield view(*args, **kwargs))
        except Boom as e:
            events.append(f"caught {e.args[0]}")
            raise
        finally:
            yield cleanup()
            events.append("finally")

    def impl(id: int) -> str:
        raise Boom(id)

    register(app, view_kind, [async_compatible_decorator(body)], impl)
    app.register_error_handler(Boom, lambda e: ("boom", 500))
    assert app.test_client().get("/item/4").text == "boom"
    assert events == ["caught 4", "async cleanup", "finally"]


def test_closing_a_suspended_async_view_closes_its_body() -> None:
    """A request cancelled while the body waits: closing the view's
    coroutine runs the body's ``finally``, and warns of nothing.
    """
    events: list[str] = []

    async def waiting() -> None:
        await asyncio.sleep(0)

    def body(view: Impl, /, *args: t.Any, **kwargs: t.Any) -> t.Any:
        try:
            yield waiting()
            return (yield view(*args, **kwargs))
        finally:
            events.append("finally")

    @async_compatible_decorator(body)
    async def view() -> str:
        events.append("view")
        return "view"

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        coro = view()
        coro.send(None)  # suspended in asyncio.sleep(0)
        coro.close()

    assert events == ["finally"]


@pytest.mark.parametrize("view_kind", ["sync-function", "async-function"])
def test_generator_body_can_recover_from_failed_awaitable(
    app: Flask, view_kind: str
) -> None:
    async def failing() -> str:
        raise Boom("lookup failed")

    def body(view: Impl, /, *args: t.Any, **kwargs: t.Any) -> t.Any:
        try:
            yield failing()
        except Boom as e:
            g.note = e.args[0]
        return (yield view(*args, **kwargs))

    register(app, view_kind, [async_compatible_decorator(body)], lambda id: g.note)
    assert app.test_client().get("/item/1").text == "lookup failed"


# -- context -----------------------------------------------------------------

var: contextvars.ContextVar[str] = contextvars.ContextVar("var")


@pytest.mark.parametrize("view_kind", VIEW_KINDS)
@pytest.mark.parametrize("body_kind", BODY_KINDS)
def test_context_set_in_body_is_visible_in_view(
    app: Flask, body_kind: str, view_kind: str
) -> None:
    inner = body_of_kind(body_kind)

    def prepare() -> None:
        assert request.path == "/item/2"
        g.value = "g"
        session["value"] = "session"
        var.set("contextvar")

    if body_kind == "async":

        async def body(view: Impl, /, *args: t.Any, **kwargs: t.Any) -> t.Any:
            prepare()
            return await inner(view, *args, **kwargs)

    elif body_kind == "generator":

        def body(view: Impl, /, *args: t.Any, **kwargs: t.Any) -> t.Any:  # type: ignore[misc]
            prepare()
            return (yield from inner(view, *args, **kwargs))

    else:

        def body(view: Impl, /, *args: t.Any, **kwargs: t.Any) -> t.Any:  # type: ignore[misc]
            prepare()
            return inner(view, *args, **kwargs)

    def impl(id: int) -> list[str]:
        return [g.value, session["value"], var.get(), request.args["q"]]

    register(app, view_kind, [async_compatible_decorator(body)], impl)
    response = app.test_client().get("/item/2?q=request")
    assert response.json == ["g", "session", "contextvar", "request"]


# -- fail closed -------------------------------------------------------------


@pytest.mark.parametrize("view_kind", ["sync-function", "async-function"])
def test_awaitable_returns_are_resolved(app: Flask, view_kind: str) -> None:
    async def deny() -> tuple[str, int]:
        return "denied", 403

    def plain(view: Impl, /, *args: t.Any, **kwargs: t.Any) -> t.Any:
        return deny()

    def gen(view: Impl, /, *args: t.Any, **kwargs: t.Any) -> t.Any:
        yield None
        return deny()

    async def coro(view: Impl, /, *args: t.Any, **kwargs: t.Any) -> t.Any:
        return deny()

    for i, body in enumerate([plain, gen, coro]):
        register(
            app,
            view_kind,
            [async_compatible_decorator(body)],
            lambda id: "view ran",
            rule=f"/{i}/<int:id>",
        )

    client = app.test_client()
    for i in range(3):
        response = client.get(f"/{i}/1")
        assert (response.status_code, response.text) == (403, "denied")


def test_undetectable_async_view_is_awaited(app: Flask) -> None:
    class Handler:
        async def run(self) -> str:
            return "awaited"

    def looks_sync() -> t.Any:
        return Handler().run()

    for kind in BODY_KINDS:
        decorated = async_compatible_decorator(body_of_kind(kind))(looks_sync)
        assert not inspect.iscoroutinefunction(decorated)
        app.add_url_rule(f"/{kind}", kind, decorated)

    client = app.test_client()
    assert [client.get(f"/{kind}").text for kind in BODY_KINDS] == ["awaited"] * 3


# -- the app's own bridge ----------------------------------------------------


class CountingBridgeApp(Flask):
    calls = 0

    def async_to_sync(self, func: t.Any) -> t.Any:
        type(self).calls += 1
        return super().async_to_sync(func)


def test_sync_view_bridges_through_app_async_to_sync() -> None:
    app = CountingBridgeApp(__name__)
    events: list[str] = []
    guard = make_guard("generator", make_callback("async", events))

    @app.get("/")
    @guard
    def index() -> str:
        return "ok"

    assert app.test_client().get("/").text == "ok"
    assert CountingBridgeApp.calls == 1
    assert events == ["callback"]


def test_sync_view_bridges_through_app_ensure_sync() -> None:
    seen: list[t.Any] = []

    class EnsureSyncApp(Flask):
        def ensure_sync(self, func: t.Any) -> t.Any:
            seen.append(func)
            return super().ensure_sync(func)

    app = EnsureSyncApp(__name__)

    async def answer() -> int:
        return 42

    def body(view: Impl, /, *args: t.Any, **kwargs: t.Any) -> t.Any:
        g.answer = yield answer()
        return (yield view(*args, **kwargs))

    @app.get("/")
    @async_compatible_decorator(body)
    def index() -> str:
        return str(g.answer)

    assert app.test_client().get("/").text == "42"
    assert len(seen) == 2  # the view (by Flask), the awaitable (by the toolkit)
    assert inspect.iscoroutinefunction(seen[1])


# -- before_view and after_view ----------------------------------------------


def hook_of_kind(kind: str, result: t.Callable[..., t.Any]) -> Impl:
    if kind == "sync":

        def sync_hook(*args: t.Any, **kwargs: t.Any) -> t.Any:
            return result(*args, **kwargs)

        return sync_hook

    if kind == "async":

        async def async_hook(*args: t.Any, **kwargs: t.Any) -> t.Any:
            await asyncio.sleep(0)
            return result(*args, **kwargs)

        return async_hook

    async def fetch() -> str:
        return "fetched"

    def generator_hook(*args: t.Any, **kwargs: t.Any) -> t.Any:
        assert (yield fetch()) == "fetched"
        return result(*args, **kwargs)

    return generator_hook


HOOK_KINDS = ["sync", "async", "generator"]


@pytest.mark.parametrize("view_kind", VIEW_KINDS)
@pytest.mark.parametrize("hook_kind", HOOK_KINDS)
def test_before_view_gets_view_arguments(
    app: Flask, hook_kind: str, view_kind: str
) -> None:
    calls: list[tuple[t.Any, ...]] = []

    def record(*args: t.Any, **kwargs: t.Any) -> None:
        calls.append((*(type(a).__name__ for a in args), kwargs))

    register(app, view_kind, [before_view(hook_of_kind(hook_kind, record))], str)
    assert app.test_client().get("/item/8").text == "8"
    if "methodview" in view_kind:
        assert calls == [("ItemView", {"id": 8})]
    else:
        assert calls == [({"id": 8},)]


@pytest.mark.parametrize(
    ("returned", "status", "text"),
    [("", 200, ""), (("stop", 429), 429, "stop"), (None, 200, "view")],
)
@pytest.mark.parametrize("view_kind", ["sync-function", "async-function"])
@pytest.mark.parametrize("hook_kind", HOOK_KINDS)
def test_before_view_return_short_circuits(
    app: Flask, hook_kind: str, view_kind: str, returned: t.Any, status: int, text: str
) -> None:
    ran: list[int] = []

    def impl(id: int) -> str:
        ran.append(id)
        return "view"

    hook = hook_of_kind(hook_kind, lambda **kwargs: returned)
    register(app, view_kind, [before_view(hook)], impl)
    response = app.test_client().get("/item/1")
    assert (response.status_code, response.text) == (status, text)
    assert ran == ([1] if returned is None else [])


@pytest.mark.parametrize("hook_kind", HOOK_KINDS)
def test_before_view_abort(app: Flask, hook_kind: str) -> None:
    def deny(**kwargs: t.Any) -> None:
        abort(403)

    register(app, "async-function", [before_view(hook_of_kind(hook_kind, deny))], str)
    assert app.test_client().get("/item/1").status_code == 403


@pytest.mark.parametrize("view_kind", ["sync-function", "async-function"])
@pytest.mark.parametrize("hook_kind", HOOK_KINDS)
def test_after_view(app: Flask, hook_kind: str, view_kind: str) -> None:
    got: list[Response] = []

    def edit(response: Response) -> None:
        got.append(response)
        response.headers["X-After"] = "1"

    def replace(response: Response) -> tuple[str, int]:
        return "replaced " + response.get_data(as_text=True), 201

    register(app, view_kind, [after_view(hook_of_kind(hook_kind, edit))], str)
    register(
        app,
        view_kind,
        [after_view(hook_of_kind(hook_kind, replace))],
        lambda id: {"id": id},
        rule="/replace/<int:id>",
    )
    client = app.test_client()
    response = client.get("/item/3")
    assert (response.text, response.headers["X-After"]) == ("3", "1")
    assert len(got) == 1
    assert isinstance(got[0], Response)
    response = client.get("/replace/3")
    assert (response.status_code, response.text) == (201, 'replaced {"id":3}\n')


def test_hooks_name_the_decorator() -> None:
    def admin_required(*args: t.Any, **kwargs: t.Any) -> None:
        """Only admins."""

    decorator = before_view(admin_required)
    assert decorator.__name__ == "admin_required"  # type: ignore[attr-defined]
    assert decorator.__doc__ == "Only admins."
    with pytest.raises(TypeError, match=r"^admin_required cannot use 1 as a view"):
        decorator(1)


@pytest.mark.parametrize("view_kind", ["sync-function", "async-function"])
def test_later_error_is_not_chained_to_a_handled_one(
    app: Flask, view_kind: str
) -> None:
    caught: list[BaseException] = []

    async def failing() -> None:
        raise Boom("handled")

    def body(view: Impl, /, *args: t.Any, **kwargs: t.Any) -> t.Any:
        try:
            yield failing()
        except Boom:
            pass
        yield "a plain value"
        raise KeyError("later")

    @app.errorhandler(KeyError)
    def handle(e: KeyError) -> str:
        caught.append(e)
        return "handled"

    register(app, view_kind, [async_compatible_decorator(body)], str)
    assert app.test_client().get("/item/1").text == "handled"
    assert caught[0].__context__ is None


class Refused(Exception):
    pass


@pytest.mark.parametrize("delegate", [True, False], ids=["delegate", "stopiteration"])
@pytest.mark.parametrize("view_kind", ["sync-function", "async-function"])
def test_both_ways_of_ending_a_body_agree(
    app: Flask, monkeypatch: pytest.MonkeyPatch, view_kind: str, delegate: bool
) -> None:
    """The drivers take a body's return through ``_delegate`` (the default
    from Python 3.13) or from its ``StopIteration`` (before): either way,
    on every Python, gives the same responses and exceptions.
    """
    from flask_asyncext import decorators

    monkeypatch.setattr(decorators, "_DELEGATE", delegate)

    async def fails() -> None:
        raise Refused

    async def later(value: str) -> str:
        await asyncio.sleep(0)
        return value

    @async_compatible_decorator
    def body(view: t.Any, /, *args: t.Any, **kwargs: t.Any) -> t.Any:
        mode = request.args["mode"]

        try:
            yield fails()
        except Refused:
            pass

        if mode == "refuse":
            yield fails()

        if mode == "awaitable":
            return later("settled")  # returned, not yielded: still resolved

        return f"{(yield view(*args, **kwargs))} {(yield 'plain')}"

    register(app, view_kind, [body], lambda id: f"item {id}")
    client = app.test_client()
    assert client.get("/item/1?mode=view").text == "item 1 plain"
    assert client.get("/item/2?mode=awaitable").text == "settled"

    with pytest.raises(Refused):
        client.get("/item/3?mode=refuse")
