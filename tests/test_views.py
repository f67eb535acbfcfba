from __future__ import annotations

import asyncio
import collections.abc as cabc
import importlib.util
import inspect
import pathlib
import runpy
import types
import typing as t

import flask.views
import pytest
from flask import abort
from flask import Blueprint
from flask import Flask
from flask import g
from flask import request

from flask_asyncext import after_view
from flask_asyncext import async_compatible_decorator
from flask_asyncext import before_view
from flask_asyncext.views import MethodView
from flask_asyncext.views import View

if t.TYPE_CHECKING:
    from conftest import LoopCounter

EXAMPLE = pathlib.Path(__file__).parent.parent / "examples" / "views" / "app.py"


class Hops:
    """Counts the calls to the app's bridge, ``Flask.async_to_sync``: each
    one is a new event loop with Flask's default bridge.
    """

    def __init__(self, app: Flask) -> None:
        self.count = 0
        original = app.async_to_sync

        def async_to_sync(func: t.Any) -> t.Any:
            self.count += 1
            return original(func)

        app.async_to_sync = async_to_sync  # type: ignore[method-assign]


def toolkit_decorators(events: list[str]) -> list[t.Any]:
    """Three toolkit decorators whose checks await: a generator body, a
    ``before_view`` hook and an ``after_view`` hook. Each notes the running
    loop, and whether the view it was given is async.
    """

    def note(name: str) -> None:
        events.append(f"{name}:{running_loop_id()}")

    async def load(name: str) -> str:
        note(name)
        return name

    def gen_body(view: t.Any, /, *args: t.Any, **kwargs: t.Any) -> t.Any:
        events.append(f"convention:{inspect.iscoroutinefunction(view)}")
        g.user = yield load("body")
        return (yield view(*args, **kwargs))

    async def before(*args: t.Any, **kwargs: t.Any) -> None:
        note("before")

    async def after(response: t.Any) -> None:
        note("after")
        response.headers["X-After"] = "yes"

    return [
        before_view(before),
        async_compatible_decorator(gen_body),
        after_view(after),
    ]


_seen_loops: list[asyncio.AbstractEventLoop] = []


def running_loop_id() -> int:
    """The running loop's id, kept alive so that no later loop reuses it."""
    loop = asyncio.get_running_loop()
    _seen_loops.append(loop)
    return id(loop)


@pytest.fixture(autouse=True)
def _forget_loops() -> cabc.Iterator[None]:
    yield
    _seen_loops.clear()


def loop_ids(events: list[str]) -> set[str]:
    return {e.split(":")[1] for e in events if not e.startswith("convention:")}


# -- async classes ---------------------------------------------------------


def make_async_method_view(events: list[str]) -> type[MethodView]:
    class ItemAPI(MethodView):
        """Items."""

        decorators = toolkit_decorators(events)

        async def get(self, id: int) -> str:
            events.append(f"handler:{running_loop_id()}")
            return f"get {id} {g.user}"

        async def post(self, id: int) -> tuple[str, int]:
            events.append(f"handler:{running_loop_id()}")
            return f"post {id}", 201

    return ItemAPI


def make_async_view(events: list[str]) -> type[View]:
    class Item(View):
        """One item."""

        methods = ("GET", "POST")
        decorators = toolkit_decorators(events)

        async def dispatch_request(self, id: int) -> str:
            events.append(f"handler:{running_loop_id()}")
            return f"{request.method.lower()} {id} {g.user}"

    return Item


@pytest.fixture(params=["app", "blueprint"])
def register(
    request: pytest.FixtureRequest, app: Flask
) -> cabc.Callable[[type[flask.views.View]], None]:
    """Register a class at ``/item/<int:id>`` on the app or on a blueprint."""

    def register(cls: type[flask.views.View]) -> None:
        if request.param == "app":
            app.add_url_rule("/item/<int:id>", view_func=cls.as_view("item"))
        else:
            bp = Blueprint("bp", __name__)
            bp.add_url_rule("/item/<int:id>", view_func=cls.as_view("item"))
            app.register_blueprint(bp)

    return register


@pytest.mark.parametrize("method", ["GET", "POST", "HEAD"])
@pytest.mark.parametrize("make", [make_async_method_view, make_async_view])
def test_async_class_runs_three_decorators_in_one_loop(
    app: Flask,
    loops: LoopCounter,
    asyncext_shared_loop: t.Any,
    register: cabc.Callable[[type[flask.views.View]], None],
    make: cabc.Callable[[list[str]], type[flask.views.View]],
    method: str,
) -> None:
    events: list[str] = []
    register(make(events))
    hops = Hops(app)
    response = app.test_client().open("/item/7", method=method)
    assert response.status_code in (200, 201)
    assert response.headers["X-After"] == "yes"

    if method != "HEAD":
        assert response.text.startswith(f"{method.lower()} 7")

    # Every decorator was given an async view, and everything ran in the
    # request's single loop: one bridge call, so one new loop at most.
    assert events.count("convention:True") == 1
    assert "convention:False" not in events
    assert [e.split(":")[0] for e in events if ":" in e][1:] == [
        "body",
        "before",
        "handler",
        "after",
    ]
    assert len(loop_ids(events)) == 1
    assert hops.count == 1
    assert loops.created == (0 if asyncext_shared_loop else 1)


@pytest.mark.parametrize("make", [make_async_method_view, make_async_view])
def test_automatic_options_runs_nothing(
    app: Flask,
    loops: LoopCounter,
    make: cabc.Callable[[list[str]], type[flask.views.View]],
) -> None:
    events: list[str] = []
    app.add_url_rule("/item/<int:id>", view_func=make(events).as_view("item"))
    response = app.test_client().options("/item/7")
    assert response.status_code == 200
    assert set(response.headers["Allow"].split(", ")) == {
        "GET",
        "HEAD",
        "OPTIONS",
        "POST",
    }
    assert events == []
    assert loops.created == 0


def test_flask_method_view_costs_a_loop_per_decorator(
    app: Flask, loops: LoopCounter, asyncext_shared_loop: t.Any
) -> None:
    """Why this module exists: Flask's as_view hands the decorators a sync
    function, so each one that awaits bridges by itself.
    """
    events: list[str] = []

    class ItemAPI(flask.views.MethodView):
        decorators = toolkit_decorators(events)

        async def get(self, id: int) -> str:
            events.append(f"handler:{running_loop_id()}")
            return f"get {id}"

    app.add_url_rule("/item/<int:id>", view_func=ItemAPI.as_view("item"))
    hops = Hops(app)
    assert app.test_client().get("/item/7").text == "get 7"
    assert events.count("convention:False") == 1
    # One bridge call for each of the three decorators, one for the handler.
    assert hops.count == 4

    if asyncext_shared_loop is None:
        assert loops.created == 4
        assert len(loop_ids(events)) == 4


def test_ensure_sync_recipe_decorators_still_work(
    app: Flask, loops: LoopCounter, asyncext_shared_loop: t.Any
) -> None:
    """A decorator written with Flask's ``current_app.ensure_sync`` recipe
    (Flask-Login's ``login_required``) makes the view sync again: it works,
    at the cost of the loop it starts.
    """
    from flask import current_app

    events: list[str] = []

    def recipe(view: t.Any) -> t.Any:
        def wrapper(*args: t.Any, **kwargs: t.Any) -> t.Any:
            events.append(f"recipe:{inspect.iscoroutinefunction(view)}")
            return current_app.ensure_sync(view)(*args, **kwargs)

        return wrapper

    stack = [*toolkit_decorators(events), recipe]

    class ItemAPI(MethodView):
        decorators = stack

        async def get(self, id: int) -> str:
            return f"get {id} {g.user}"

    app.add_url_rule("/item/<int:id>", view_func=ItemAPI.as_view("item"))
    response = app.test_client().get("/item/7")
    assert (response.text, response.headers["X-After"]) == ("get 7 body", "yes")
    assert events.pop(0) == "recipe:True"
    assert len(loop_ids(events)) == 1
    assert loops.created == (0 if asyncext_shared_loop else 1)


# -- sync classes ----------------------------------------------------------


def sync_toolkit_decorators(events: list[str]) -> list[t.Any]:
    def gen_body(view: t.Any, /, *args: t.Any, **kwargs: t.Any) -> t.Any:
        events.append(f"convention:{inspect.iscoroutinefunction(view)}")
        g.user = yield "ada"
        return (yield view(*args, **kwargs))

    def after(response: t.Any) -> None:
        response.headers["X-After"] = "yes"

    return [
        before_view(lambda *args, **kwargs: None),
        async_compatible_decorator(gen_body),
        after_view(after),
    ]


def make_sync_method_view(events: list[str]) -> type[MethodView]:
    class ItemAPI(MethodView):
        decorators = sync_toolkit_decorators(events)

        def get(self, id: int) -> str:
            return f"get {id} {g.user}"

        def post(self, id: int) -> tuple[str, int]:
            return f"post {id}", 201

    return ItemAPI


def make_sync_view(events: list[str]) -> type[View]:
    class Item(View):
        methods = ("GET", "POST")
        decorators = sync_toolkit_decorators(events)

        def dispatch_request(self, id: int) -> str:
            return f"{request.method.lower()} {id} {g.user}"

    return Item


@pytest.mark.parametrize("method", ["GET", "POST", "HEAD", "OPTIONS"])
@pytest.mark.parametrize("make", [make_sync_method_view, make_sync_view])
def test_sync_class_uses_no_event_loop(
    app: Flask,
    loops: LoopCounter,
    register: cabc.Callable[[type[flask.views.View]], None],
    make: cabc.Callable[[list[str]], type[flask.views.View]],
    method: str,
) -> None:
    events: list[str] = []
    register(make(events))
    hops = Hops(app)
    response = app.test_client().open("/item/7", method=method)
    assert response.status_code in (200, 201)

    if method in ("GET", "POST"):
        assert response.text.startswith(f"{method.lower()} 7")

    if method != "OPTIONS":
        assert response.headers["X-After"] == "yes"
        assert events == ["convention:False"]

    assert hops.count == 0
    assert loops.created == 0


@pytest.mark.parametrize(
    "make",
    [make_sync_method_view, make_sync_view, make_async_method_view, make_async_view],
)
def test_calling_convention_follows_the_handlers(
    make: cabc.Callable[[list[str]], type[flask.views.View]],
) -> None:
    view = make([]).as_view("item")
    assert inspect.iscoroutinefunction(view) == ("_async_" in make.__name__)


# -- Flask's behaviour is kept ---------------------------------------------


def flask_twin(cls: type[flask.views.View]) -> type[flask.views.View]:
    """The same class body on Flask's own base class."""
    base = flask.views.MethodView if issubclass(cls, MethodView) else flask.views.View
    namespace = {
        k: v
        for k, v in vars(cls).items()
        if k not in ("__dict__", "__weakref__", "methods")
    }
    if "methods" in vars(cls) and not issubclass(cls, MethodView):
        namespace["methods"] = cls.methods
    return type(cls.__name__, (base,), namespace)


@pytest.mark.parametrize("with_decorators", [True, False])
@pytest.mark.parametrize(
    "make",
    [make_sync_method_view, make_sync_view, make_async_method_view, make_async_view],
)
def test_view_function_attributes_match_flask(
    make: cabc.Callable[[list[str]], type[flask.views.View]], with_decorators: bool
) -> None:
    cls = make([])

    if not with_decorators:
        cls.decorators = []

    twin = flask_twin(cls)
    ours: t.Any = cls.as_view("item")
    flasks: t.Any = twin.as_view("item")

    assert ours.view_class is cls
    assert flasks.view_class is twin

    for name in ("__name__", "__doc__", "__module__", "provide_automatic_options"):
        assert getattr(ours, name) == getattr(flasks, name), name

    assert set(ours.methods) == set(flasks.methods)
    assert ours.__name__ == "item"


def test_decorators_see_name_and_module(app: Flask) -> None:
    seen: list[tuple[str, str, bool]] = []

    def spy(view: t.Any) -> t.Any:
        seen.append((view.__name__, view.__module__, inspect.iscoroutinefunction(view)))
        return view

    spies = [spy]

    class Spied(View):
        decorators = spies

        async def dispatch_request(self) -> str:
            return "ok"

    Spied.as_view("spied")
    assert seen == [("spied", __name__, True)]


@pytest.mark.parametrize("init_every_request", [True, False])
def test_init_every_request_and_class_arguments(
    app: Flask, init_every_request: bool
) -> None:
    made: list[tuple[t.Any, ...]] = []

    class Counter(MethodView):
        def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
            made.append((args, kwargs))

        async def get(self) -> str:
            return str(len(made))

    Counter.init_every_request = init_every_request
    app.add_url_rule("/", view_func=Counter.as_view("counter", 1, key="v"))
    client = app.test_client()
    assert [client.get("/").text for _ in range(3)] == (
        ["1", "2", "3"] if init_every_request else ["1", "1", "1"]
    )
    assert all(m == ((1,), {"key": "v"}) for m in made)


def test_view_class_can_be_replaced(app: Flask) -> None:
    class Real(View):
        async def dispatch_request(self) -> str:
            return "real"

    class Fake(Real):
        async def dispatch_request(self) -> str:
            return "fake"

    view: t.Any = Real.as_view("real")
    app.add_url_rule("/", view_func=view)
    view.view_class = Fake
    assert app.test_client().get("/").text == "fake"


def test_method_view_infers_methods_and_falls_back_to_get(app: Flask) -> None:
    calls: list[str] = []

    class Base(MethodView):
        async def get(self) -> str:
            calls.append(request.method)
            return "get"

    class Child(Base):
        async def delete(self) -> tuple[str, int]:
            return "", 204

    assert Base.methods == {"GET"}
    assert Child.methods == {"GET", "DELETE"}
    app.add_url_rule("/", view_func=Child.as_view("child"))
    client = app.test_client()
    assert client.head("/").status_code == 200
    assert client.delete("/").status_code == 204
    assert client.put("/").status_code == 405
    assert calls == ["HEAD"]


def test_explicit_head_handler_wins(app: Flask) -> None:
    class Api(MethodView):
        async def get(self) -> str:
            return "get"

        async def head(self) -> tuple[str, int, dict[str, str]]:
            return "", 200, {"X-Head": "own"}

    app.add_url_rule("/", view_func=Api.as_view("api"))
    assert app.test_client().head("/").headers["X-Head"] == "own"


def test_unimplemented_method_fails_like_flask(app: Flask) -> None:
    class Api(MethodView):
        methods = ("GET", "PUT")

        async def get(self) -> str:
            return "get"

    app.add_url_rule("/", view_func=Api.as_view("api"))

    with pytest.raises(AssertionError, match="Unimplemented method 'PUT'"):
        app.test_client().put("/")


def test_mixed_handlers_are_refused_at_as_view() -> None:
    class Mixed(MethodView):
        async def get(self) -> str:
            return "get"

        def post(self) -> str:
            return "post"

        async def delete(self) -> str:
            return "delete"

    with pytest.raises(TypeError) as info:
        Mixed.as_view("mixed")

    message = str(info.value)
    assert "Mixed" in message
    assert "async handlers (delete, get)" in message
    assert "sync handlers (post)" in message


def test_inherited_handler_counts_as_mixed() -> None:
    class Base(MethodView):
        def get(self) -> str:
            return "get"

    class Child(Base):
        async def post(self) -> str:
            return "post"

    with pytest.raises(TypeError, match=r"'.*Child' mixes async handlers \(post\)"):
        Child.as_view("child")


def test_overridden_dispatch_request_decides(app: Flask) -> None:
    class Custom(MethodView):
        def get(self) -> str:
            return "get"

        async def post(self) -> str:
            return "post"

        async def dispatch_request(self, **kwargs: t.Any) -> str:
            meth = getattr(self, request.method.lower())
            rv = meth(**kwargs)
            return (await rv) if inspect.isawaitable(rv) else rv  # type: ignore[no-any-return]

    view = Custom.as_view("custom")
    assert inspect.iscoroutinefunction(view)
    app.add_url_rule("/", view_func=view)
    client = app.test_client()
    assert (client.get("/").text, client.post("/").text) == ("get", "post")


def test_method_view_without_handlers_is_sync() -> None:
    class Empty(MethodView):
        pass

    assert not inspect.iscoroutinefunction(Empty.as_view("empty"))


def test_classes_are_flask_classes() -> None:
    assert issubclass(View, flask.views.View)
    assert issubclass(MethodView, flask.views.MethodView)
    assert issubclass(MethodView, View)


def test_exceptions_reach_error_handlers(app: Flask) -> None:
    class Api(MethodView):
        decorators = toolkit_decorators([])

        async def get(self) -> str:
            abort(418)

    app.register_error_handler(418, lambda e: ("teapot", 418))
    app.add_url_rule("/", view_func=Api.as_view("api"))
    response = app.test_client().get("/")
    assert (response.status_code, response.text) == (418, "teapot")


# -- the example the docs include ------------------------------------------


def load_example() -> types.ModuleType:
    spec = importlib.util.spec_from_file_location("examples_views", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_example(loops: LoopCounter, asyncext_shared_loop: t.Any) -> None:
    example = load_example()
    app: Flask = example.create_app()
    assert inspect.iscoroutinefunction(app.view_functions["item"])
    client = app.test_client()
    token = {"X-Token": "secret"}

    assert client.get("/items/1").status_code == 401
    assert client.post("/items/2", data="x", headers=token).status_code == 415
    created = client.post("/items/2", json={"name": "cup"}, headers=token)
    assert (created.status_code, created.json) == (
        201,
        {"id": 2, "name": "cup", "by": "ada"},
    )
    assert created.headers["Cache-Control"] == "no-store"
    assert client.get("/items/3", headers=token).status_code == 404

    before = loops.created
    response = client.get("/items/1", headers=token)
    assert response.json is not None
    assert response.json["name"] == "teapot"
    assert loops.created - before == (0 if asyncext_shared_loop else 1)


def test_example_runs_as_a_script(capsys: pytest.CaptureFixture[str]) -> None:
    runpy.run_path(str(EXAMPLE), run_name="__main__")
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "async view function: True"
    assert out[1] == "401 UNAUTHORIZED"
    assert "'name': 'teapot'" in out[2]
