"""The toolkit on Quart apps.

Quart is an optional test dependency. Without it the Quart tests are
skipped, except in the ``quart`` tox env, which sets
``ASYNCEXT_REQUIRE_QUART=1`` so that a missing Quart fails the run instead.
The tests at the end, about a process without Quart, always run.
"""

from __future__ import annotations

import asyncio
import collections.abc as cabc
import concurrent.futures
import contextvars
import importlib
import importlib.util
import inspect
import json
import os
import pathlib
import runpy
import subprocess
import sys
import textwrap
import threading
import types
import typing as t

import pytest
from test_testing_suite import make_ini

from flask_asyncext import _quart
from flask_asyncext import after_view
from flask_asyncext import async_compatible_decorator
from flask_asyncext import before_view
from flask_asyncext import ensure_async
from flask_asyncext import ensure_sync
from flask_asyncext import maybe_await
from flask_asyncext.testing import make_app as make_test_app
from flask_asyncext.testing import QUART_VIEW_KINDS
from flask_asyncext.testing import VIEW_KINDS
from flask_asyncext.testing.cli import main

if t.TYPE_CHECKING:
    from conftest import LoopCounter


def _import_quart() -> t.Any:
    try:
        return importlib.import_module("quart")
    except ImportError:
        if os.environ.get("ASYNCEXT_REQUIRE_QUART", "0") not in ("", "0"):
            raise

        return None


quart: t.Any = _import_quart()
requires_quart = pytest.mark.skipif(quart is None, reason="Quart is not installed")


def run(coro: cabc.Coroutine[t.Any, t.Any, t.Any]) -> t.Any:
    return asyncio.run(coro)


async def fetch(app: t.Any, path: str, **kwargs: t.Any) -> tuple[int, str, t.Any]:
    response = await app.test_client().get(path, **kwargs)
    return response.status_code, await response.get_data(as_text=True), response


def make_app() -> t.Any:
    app = quart.Quart(__name__)
    app.config["TESTING"] = True
    return app


def loop_and_thread() -> str:
    try:
        loop = f"loop {id(asyncio.get_running_loop())}"
    except RuntimeError:
        loop = "no loop"

    return f"{loop} thread {threading.get_ident()}"


# -- every kind of decorator, view and callback ---------------------------

TOKENS = {"good": "ada"}


def make_loader(kind: str, events: list[str]) -> t.Callable[[str | None], t.Any]:
    if kind == "sync":

        def load(token: str | None) -> str | None:
            events.append(f"loader {loop_and_thread()}")
            return None if token is None else TOKENS.get(token)

        return load

    async def load_async(token: str | None) -> str | None:
        events.append(f"loader {loop_and_thread()}")
        await asyncio.sleep(0)
        return None if token is None else TOKENS.get(token)

    return load_async


def make_guard(kind: str, load: t.Callable[[str | None], t.Any]) -> t.Any:
    """A token check written as ``kind``: a generator or an async body, or a
    generator ``before_view`` hook.
    """

    def token() -> str | None:
        return quart.request.headers.get("X-Token")  # type: ignore[no-any-return]

    if kind == "generator":

        def gen(view: t.Any, /, *args: t.Any, **kwargs: t.Any) -> t.Any:
            user = yield load(token())

            if user is None:
                quart.abort(401)

            quart.g.user = user
            return (yield view(*args, **kwargs))

        return async_compatible_decorator(gen)

    if kind == "async":

        async def body(view: t.Any, /, *args: t.Any, **kwargs: t.Any) -> t.Any:
            user = load(token())

            if inspect.isawaitable(user):
                user = await user

            if user is None:
                quart.abort(401)

            quart.g.user = user
            return await view(*args, **kwargs)

        return async_compatible_decorator(body)

    def hook(*args: t.Any, **kwargs: t.Any) -> t.Any:
        user = yield load(token())

        if user is None:
            quart.abort(401)

        quart.g.user = user

    return before_view(hook)


GUARD_KINDS = ["generator", "async", "before_view"]


@requires_quart
@pytest.mark.parametrize("token", ["good", "bad", None])
@pytest.mark.parametrize("loader_kind", ["sync", "async"])
@pytest.mark.parametrize("view_kind", ["sync", "async"])
@pytest.mark.parametrize("guard_kind", GUARD_KINDS)
def test_guard_allows_and_denies(
    guard_kind: str, view_kind: str, loader_kind: str, token: str | None
) -> None:
    events: list[str] = []
    guard = make_guard(guard_kind, make_loader(loader_kind, events))
    app = make_app()

    if view_kind == "sync":

        @app.get("/")
        @guard
        def index() -> str:
            events.append("view")
            return f"hello {quart.g.user}"

    else:

        @app.get("/")
        @guard
        async def index() -> str:
            events.append("view")
            return f"hello {quart.g.user}"

    assert inspect.iscoroutinefunction(app.view_functions["index"]) == (
        view_kind == "async"
    )
    headers = {} if token is None else {"X-Token": token}
    status, text, _ = run(fetch(app, "/", headers=headers))

    if token == "good":
        assert (status, text) == (200, "hello ada")
        assert events.count("view") == 1
    else:
        assert status == 401
        assert "view" not in events


@requires_quart
@pytest.mark.parametrize("view_kind", ["sync", "async"])
def test_plain_body(view_kind: str) -> None:
    events: list[str] = []

    @async_compatible_decorator
    def tag(view: t.Any, /, *args: t.Any, **kwargs: t.Any) -> t.Any:
        events.append(f"body {loop_and_thread()}")
        return view(*args, **kwargs)

    app = make_app()

    if view_kind == "sync":

        @app.get("/<int:id>")
        @tag
        def index(id: int) -> str:
            return f"item {id}"

    else:

        @app.get("/<int:id>")
        @tag
        async def index(id: int) -> str:
            return f"item {id}"

    assert run(fetch(app, "/4"))[:2] == (200, "item 4")
    assert len(events) == 1


@requires_quart
@pytest.mark.parametrize("hook_kind", ["sync", "async", "generator"])
@pytest.mark.parametrize("view_kind", ["sync", "async"])
def test_after_view_gets_a_quart_response(view_kind: str, hook_kind: str) -> None:
    seen: list[t.Any] = []

    async def stamp() -> str:
        return "stamped"

    if hook_kind == "sync":

        def hook(response: t.Any) -> None:
            seen.append(response)
            response.headers["X-Stamp"] = "sync"

    elif hook_kind == "async":

        async def hook(response: t.Any) -> None:
            seen.append(response)
            response.headers["X-Stamp"] = await stamp()

    else:

        def hook(response: t.Any) -> t.Any:
            seen.append(response)
            response.headers["X-Stamp"] = yield stamp()

    app = make_app()

    if view_kind == "sync":

        @app.get("/")
        @after_view(hook)
        def index() -> tuple[str, int]:
            return "made", 201

    else:

        @app.get("/")
        @after_view(hook)
        async def index() -> tuple[str, int]:
            return "made", 201

    status, text, response = run(fetch(app, "/"))
    assert (status, text) == (201, "made")
    assert response.headers["X-Stamp"] in ("sync", "stamped")
    assert isinstance(seen[0], quart.Response)


@requires_quart
def test_after_view_hook_can_replace_the_response() -> None:
    app = make_app()

    @app.get("/")
    @after_view(lambda response: ("replaced", 202))
    def index() -> str:
        return "original"

    assert run(fetch(app, "/"))[:2] == (202, "replaced")


# -- Quart's own loop, no other --------------------------------------------


@requires_quart
@pytest.mark.parametrize("view_kind", ["sync", "async"])
def test_three_decorators_stay_on_quarts_loop(
    loops: LoopCounter, view_kind: str
) -> None:
    events: list[str] = []

    async def load(name: str) -> str:
        events.append(f"{name} {loop_and_thread()}")
        return name

    @async_compatible_decorator
    def gen_body(view: t.Any, /, *args: t.Any, **kwargs: t.Any) -> t.Any:
        assert (yield load("body")) == "body"
        return (yield view(*args, **kwargs))

    async def before(*args: t.Any, **kwargs: t.Any) -> None:
        await load("before")

    async def after(response: t.Any) -> None:
        await load("after")

    decorators = [before_view(before), gen_body, after_view(after)]

    def view() -> str:
        events.append(f"view {loop_and_thread()}")
        return "ok"

    async def async_view() -> str:
        events.append(f"view {loop_and_thread()}")
        return "ok"

    impl: t.Any = view if view_kind == "sync" else async_view

    for decorator in decorators:
        impl = decorator(impl)

    app = make_app()
    app.add_url_rule("/", "index", impl)

    async def main() -> str:
        assert (await fetch(app, "/"))[:2] == (200, "ok")
        return loop_and_thread()

    created = loops.created
    test_loop = run(main())
    # The loop asyncio.run made is Quart's loop: nothing else was started.
    assert loops.created - created == 1
    checks = [e.split(" ", 1)[1] for e in events if not e.startswith("view")]
    assert len(checks) == 3
    assert set(checks) == {test_loop}
    view_event = next(e for e in events if e.startswith("view"))

    if view_kind == "sync":
        # In Quart's worker thread, with no loop of its own.
        assert view_event.startswith("view no loop thread ")
        assert view_event != f"view no loop thread {threading.get_ident()}"
    else:
        assert view_event == f"view {test_loop}"


@requires_quart
def test_yielded_awaitables_see_quarts_request_and_context() -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var")

    async def read() -> tuple[str, str, t.Any]:
        return quart.request.path, var.get(), await quart.request.get_json()

    @async_compatible_decorator
    def body(view: t.Any, /, *args: t.Any, **kwargs: t.Any) -> t.Any:
        var.set("set in the worker thread")
        quart.g.seen = yield read()
        return (yield view(*args, **kwargs))

    app = make_app()

    @app.post("/json")
    @body
    def index() -> dict[str, t.Any]:
        path, value, json = quart.g.seen
        return {"path": path, "var": value, "json": json}

    async def main() -> t.Any:
        response = await app.test_client().post("/json", json={"a": 1})
        return await response.get_json()

    assert run(main()) == {
        "path": "/json",
        "var": "set in the worker thread",
        "json": {"a": 1},
    }


@requires_quart
def test_exceptions_are_thrown_into_the_body() -> None:
    events: list[str] = []

    async def fail() -> None:
        raise LookupError("no such user")

    @async_compatible_decorator
    def body(view: t.Any, /, *args: t.Any, **kwargs: t.Any) -> t.Any:
        try:
            yield fail()
        except LookupError as e:
            events.append(str(e))
            quart.abort(403)
        finally:
            events.append("finally")

    app = make_app()

    @app.get("/")
    @body
    def index() -> str:
        return "never"

    assert run(fetch(app, "/"))[0] == 403
    assert events == ["no such user", "finally"]


@requires_quart
def test_async_body_on_sync_view_uses_the_waiting_thread() -> None:
    """The sync view behind an async body runs in the worker thread that
    waits for the body: with one worker thread, a second one would never
    come.
    """
    threads: list[int] = []

    @async_compatible_decorator
    async def body(view: t.Any, /, *args: t.Any, **kwargs: t.Any) -> t.Any:
        threads.append(threading.get_ident())
        return await view(*args, **kwargs)

    def outer(view: t.Any) -> t.Any:
        def wrapper(*args: t.Any, **kwargs: t.Any) -> t.Any:
            threads.append(threading.get_ident())
            return view(*args, **kwargs)

        return wrapper

    app = make_app()

    @app.get("/")
    @outer
    @body
    def index() -> str:
        threads.append(threading.get_ident())
        return f"view {quart.request.path}"

    async def main() -> tuple[t.Any, ...]:
        loop = asyncio.get_running_loop()
        loop.set_default_executor(concurrent.futures.ThreadPoolExecutor(1))
        first = await asyncio.wait_for(fetch(app, "/"), timeout=30)
        second = await asyncio.wait_for(fetch(app, "/"), timeout=30)
        return first[:2], second[:2], threading.get_ident()

    first, second, main_thread = run(main())
    assert first == second == (200, "view /")
    worker, on_loop, view_thread = threads[:3]
    assert on_loop == main_thread
    assert view_thread == worker != main_thread


@requires_quart
def test_ensure_sync_in_a_sync_view_uses_quarts_loop(loops: LoopCounter) -> None:
    seen: list[str] = []

    async def callback(x: int) -> int:
        seen.append(loop_and_thread())
        return x * 2

    app = make_app()

    @app.get("/")
    def index() -> str:
        return str(ensure_sync(callback)(21))

    async def main() -> tuple[str, str]:
        return (await fetch(app, "/"))[1], loop_and_thread()

    created = loops.created
    text, test_loop = run(main())
    assert text == "42"
    assert seen == [test_loop]
    assert loops.created - created == 1


@requires_quart
def test_ensure_sync_in_an_async_view_points_to_maybe_await() -> None:
    async def callback() -> int:
        return 1

    app = make_app()
    errors: list[str] = []

    @app.get("/")
    async def index() -> str:
        try:
            ensure_sync(callback)()
        except RuntimeError as e:
            errors.append(str(e))

        return "done"

    assert run(fetch(app, "/"))[:2] == (200, "done")
    assert len(errors) == 1
    assert "maybe_await" in errors[0]


@requires_quart
def test_ensure_async_thread_in_an_async_view() -> None:
    def blocking() -> t.Any:
        def stream() -> cabc.Iterator[str]:
            yield "chunk"

        return quart.request.path, threading.get_ident(), stream()

    app = make_app()

    @app.get("/path")
    async def index() -> dict[str, t.Any]:
        path, thread, rv = await ensure_async(blocking, thread=True)()
        return {
            "path": path,
            "off_loop": thread != threading.get_ident(),
            # A generator is a value like any other: it passes through.
            "generator": inspect.isgenerator(rv),
        }

    async def main() -> t.Any:
        response = await app.test_client().get("/path")
        return await response.get_json()

    assert run(main()) == {"path": "/path", "off_loop": True, "generator": True}


@requires_quart
def test_sync_hooks_of_quart_can_bridge() -> None:
    """Quart runs sync ``before_request`` functions in its worker threads
    too: the bridge takes them back to Quart's loop.
    """
    seen: list[str] = []

    async def load() -> str:
        seen.append(loop_and_thread())
        return "loaded"

    app = make_app()

    @app.before_request
    def before() -> None:
        quart.g.value = ensure_sync(load)()

    @app.get("/")
    async def index() -> str:
        return str(quart.g.value)

    async def main() -> tuple[str, str]:
        return (await fetch(app, "/"))[1], loop_and_thread()

    text, test_loop = run(main())
    assert text == "loaded"
    assert seen == [test_loop]


@requires_quart
def test_quart_method_view_decorators_are_async() -> None:
    from quart.views import MethodView

    events: list[str] = []
    guard = make_guard("generator", make_loader("async", events))

    class Api(MethodView):
        decorators = [guard]  # noqa: RUF012

        async def get(self) -> str:
            return f"hi {quart.g.user}"

    app = make_app()
    app.add_url_rule("/", view_func=Api.as_view("api"))
    assert run(fetch(app, "/", headers={"X-Token": "good"}))[:2] == (200, "hi ada")
    assert run(fetch(app, "/"))[0] == 401


@requires_quart
def test_quart_imported_late_costs_one_loop_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With nothing connected to Quart's signal yet (Quart imported after
    every decorator was applied), the first bridge call falls back to a new
    loop and connects it; the next requests use Quart's loop.
    """
    seen: list[str] = []

    async def load() -> str:
        seen.append(loop_and_thread().split(" thread")[0])
        return "ok"

    @async_compatible_decorator
    def body(view: t.Any, /, *args: t.Any, **kwargs: t.Any) -> t.Any:
        yield load()
        return (yield view(*args, **kwargs))

    app = make_app()

    @app.get("/")
    @body
    def index() -> str:
        return "ok"

    quart.signals.appcontext_pushed.disconnect(_quart._note_loop)
    monkeypatch.setattr(_quart, "_installed", False)

    async def main() -> str:
        for _ in range(3):
            assert (await fetch(app, "/"))[:2] == (200, "ok")

        return loop_and_thread().split(" thread")[0]

    try:
        test_loop = run(main())
    finally:
        # Connected again by the first call; a second connect does nothing.
        quart.signals.appcontext_pushed.connect(_quart._note_loop, weak=False)

    assert _quart._installed is True
    assert seen[0] != test_loop
    assert seen[1:] == [test_loop, test_loop]


# -- the internals, case by case -------------------------------------------


@requires_quart
def test_waiter_after_it_stopped_waiting_uses_another_thread() -> None:
    waiter = _quart._Waiter()
    waiter.close()

    async def main() -> tuple[int, int]:
        return await waiter.run(threading.get_ident), threading.get_ident()

    thread, main_thread = run(main())
    assert thread != main_thread


@requires_quart
def test_waiter_passes_exceptions_on() -> None:
    waiter = _quart._Waiter()

    def fail() -> None:
        raise KeyError("sync")

    async def main() -> None:
        await waiter.run(fail)

    result: list[BaseException] = []

    def wait() -> None:
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever)
        thread.start()

        try:
            future = asyncio.run_coroutine_threadsafe(main(), loop)
            waiter.wait(future)
        except KeyError as e:
            result.append(e)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
            loop.close()

    wait()
    assert [str(e) for e in result] == ["'sync'"]


def test_a_closed_loop_is_refused_without_a_warning() -> None:
    closed = asyncio.new_event_loop()
    closed.close()

    async def never() -> None:
        raise AssertionError("never runs")

    with pytest.raises(RuntimeError, match="closed"):
        _quart.run_on_app_loop(closed, never)

    assert _quart._waiter.get(None) is None


@requires_quart
def test_a_future_done_twice_is_left_alone() -> None:
    async def main() -> tuple[t.Any, t.Any]:
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        done.set_result("first")
        _quart._set_result(done, "second")
        failed = loop.create_future()
        failed.set_result("first")
        _quart._set_exception(failed, KeyError())
        return done.result(), failed.result()

    assert run(main()) == ("first", "first")


@requires_quart
def test_app_loop_needs_a_running_loop_and_a_quart_app() -> None:
    async def main() -> tuple[t.Any, ...]:
        loop = asyncio.get_running_loop()
        token = _quart._app_loop.set(loop)

        try:
            without_app = _quart.app_loop()

            async with make_app().app_context():
                with_app = _quart.app_loop()
        finally:
            _quart._app_loop.reset(token)

        return without_app, with_app is loop

    assert run(main()) == (None, True)
    stopped = asyncio.new_event_loop()

    try:
        token = _quart._app_loop.set(stopped)
        assert _quart.app_loop() is None
        _quart._app_loop.reset(token)
    finally:
        stopped.close()


class AsyncStreamView:
    """An async view that is an instance: its ``__call__`` streams."""

    __name__ = "stream_view"

    def __init__(self, stream: cabc.Callable[[], t.Any]) -> None:
        self.stream = stream

    async def __call__(self) -> t.Any:
        return self.stream()


@requires_quart
@pytest.mark.parametrize("view_kind", ["sync", "async", "instance"])
@pytest.mark.parametrize(
    "body_kind", ["generator", "async", "plain", "before", "after"]
)
def test_streamed_async_generator_responses_pass_through(
    view_kind: str, body_kind: str
) -> None:
    """A Quart view's async generator is its streamed response: a toolkit
    decorator passes it on, as it passes a Flask view's generator on.
    """
    app = make_app()

    def gen(view: t.Any, /, *args: t.Any, **kwargs: t.Any) -> t.Any:
        return (yield view(*args, **kwargs))

    async def awaits(view: t.Any, /, *args: t.Any, **kwargs: t.Any) -> t.Any:
        return await maybe_await(view(*args, **kwargs))

    def plain(view: t.Any, /, *args: t.Any, **kwargs: t.Any) -> t.Any:
        return view(*args, **kwargs)

    decorate = {
        "generator": async_compatible_decorator(gen),
        "async": async_compatible_decorator(awaits),
        "plain": async_compatible_decorator(plain),
        "before": before_view(lambda: None),
        "after": after_view(lambda response: None),
    }[body_kind]

    async def chunks() -> cabc.AsyncIterator[str]:
        yield "streamed "
        yield "body"

    view: t.Any

    if view_kind == "sync":

        def view() -> t.Any:
            return chunks()
    elif view_kind == "async":

        async def view() -> t.Any:
            return chunks()
    else:
        view = AsyncStreamView(chunks)

    app.add_url_rule("/", "view", decorate(view))
    assert run(fetch(app, "/"))[:2] == (200, "streamed body")


@requires_quart
def test_an_async_generator_from_a_callback_is_still_refused() -> None:
    """Only the view's own async generator passes: one that a callback gives
    (an ``async def`` with a stray ``yield``) is refused, on Quart too.
    """
    app = make_app()

    async def stray() -> t.Any:
        yield True

    async def returns_stray() -> t.Any:
        return stray()

    errors: list[str] = []

    @app.errorhandler(TypeError)
    def handle(e: TypeError) -> tuple[str, int]:
        errors.append(str(e))
        return "refused", 500

    for i, check in enumerate([stray, returns_stray]):

        def gen(
            view: t.Any, /, *args: t.Any, check: t.Any = check, **kwargs: t.Any
        ) -> t.Any:
            if not (yield check()):
                quart.abort(403)
            return (yield view(*args, **kwargs))

        async def view() -> str:
            return "secret"

        app.add_url_rule(f"/{i}", f"v{i}", async_compatible_decorator(gen)(view))
        assert run(fetch(app, f"/{i}"))[:2] == (500, "refused")

    assert len(errors) == 2
    assert all("async generator object" in e for e in errors)


# -- the conformance suite on Quart apps -------------------------------------

#: Decorators made with the toolkit that serve Flask and Quart apps alike:
#: they take the request, the app and abort from whichever is active.
BOTH_APPS = """
import flask
import werkzeug.exceptions

from flask_asyncext import after_view
from flask_asyncext import async_compatible_decorator
from flask_asyncext import before_view
from flask_asyncext import maybe_await


def _framework():
    import quart

    return quart if quart.has_request_context() else flask


@async_compatible_decorator
def require_key(view, /, *args, **kwargs):
    fw = _framework()
    check = fw.current_app.extensions["key_checker"]
    if not (yield check(fw.request.headers.get("X-Key"))):
        werkzeug.exceptions.abort(403)
    return (yield view(*args, **kwargs))


@async_compatible_decorator
async def require_key_async(view, /, *args, **kwargs):
    fw = _framework()
    check = fw.current_app.extensions["key_checker"]
    if not await maybe_await(check(fw.request.headers.get("X-Key"))):
        werkzeug.exceptions.abort(403)
    return await maybe_await(view(*args, **kwargs))


@async_compatible_decorator
def require_key_plain(view, /, *args, **kwargs):
    if _framework().request.headers.get("X-Key") != "good":
        werkzeug.exceptions.abort(403)
    return view(*args, **kwargs)


@before_view
def before(*args, **kwargs):
    if _framework().request.headers.get("X-Key") == "bad":
        werkzeug.exceptions.abort(403)


@after_view
def after(response):
    response.headers["X-After"] = "yes"


def new_loop(view):
    # A decorator that runs async code in a loop of its own (in a thread, so
    # that it works around sync and async views alike).
    import asyncio, functools, inspect, threading

    def run_in_new_loop():
        thread = threading.Thread(target=asyncio.run, args=(asyncio.sleep(0),))
        thread.start()
        thread.join()

    if inspect.iscoroutinefunction(view):
        @functools.wraps(view)
        async def async_wrapper(*args, **kwargs):
            run_in_new_loop()
            return await view(*args, **kwargs)

        return async_wrapper

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        run_in_new_loop()
        return view(*args, **kwargs)

    return wrapper
"""

BOTH_SUBJECT = """
import pytest

from flask_asyncext.testing import DecoratorConformance

import decorators


class TestSubject(DecoratorConformance):
    strict = True
    blocks_requests = {blocks}
    denied_status = (403,)
{body}

    @pytest.fixture
    def decorator(self):
        return decorators.{decorator}

    def install_callbacks(self, app, mode):
        async def check_async(key):
            return key == "good"

        def check(key):
            return key == "good"

        app.extensions["key_checker"] = check if mode == "sync" else check_async

    def allow(self, client):
        return {{"headers": {{"X-Key": "good"}}}}

    def deny(self, client):
        return {{"headers": {{"X-Key": "bad"}}}}
"""


def both_apps_subject(
    pytester: pytest.Pytester, decorator: str, *, blocks: bool = True, body: str = ""
) -> None:
    make_ini(pytester)
    pytester.makepyfile(decorators=BOTH_APPS)
    pytester.makepyfile(
        test_subject=BOTH_SUBJECT.format(
            decorator=decorator, blocks=blocks, body=textwrap.indent(body, "    ")
        )
    )


def outcomes_by_id(rec: pytest.HookRecorder) -> dict[str, str]:
    """The final outcome of each test id (``test_x[param]``)."""
    found: dict[str, str] = {}

    for report in rec.getreports("pytest_runtest_logreport"):
        if report.when == "call" or not report.passed:
            found[report.nodeid.rpartition("::")[2]] = report.outcome

    return found


@requires_quart
@pytest.mark.parametrize(
    ("decorator", "blocks"),
    [
        ("require_key", True),
        ("require_key_async", True),
        ("require_key_plain", True),
        ("before", True),
        ("after", False),
    ],
)
def test_toolkit_decorators_pass_strict_on_both_app_kinds(
    pytester: pytest.Pytester,
    decorator: str,
    blocks: bool,
    asyncext_shared_loop: t.Any,
) -> None:
    """Every check passes in strict mode on Flask and on Quart apps, on every
    view kind of each, in both callback modes, for every kind of body; but an
    ``async def`` body costs a loop on a Flask ``def`` view, as documented
    (unless every app runs on the shared loop).
    """
    both_apps_subject(pytester, decorator, blocks=blocks)
    found = outcomes_by_id(pytester.inline_run())
    quart_ids = {i for i in found if "[quart-" in i}
    flask_ids = set(found) - quart_ids
    # A decorator that refuses nothing skips the denied check, and only it.
    assert {i for i, o in found.items() if o == "skipped"} == (
        set()
        if blocks
        else {i for i in found if i.startswith("test_denied_request_never_runs")}
    )
    # An async def body needs a loop on a Flask def view (Quart has its own).
    assert {i for i, o in found.items() if o == "failed"} == (
        {
            f"test_one_event_loop_per_request[{kind}-sync-callbacks]"
            for kind in VIEW_KINDS
            if kind.startswith("sync-")
        }
        if decorator == "require_key_async" and asyncext_shared_loop is None
        else set()
    )
    assert {o for o in found.values()} <= {"passed", "skipped", "failed"}
    # Each Flask case has its Quart twin (view-decorators is async on Quart).
    assert len(quart_ids) == len(flask_ids) > 200
    assert {
        i.replace("[quart-", "[").replace("async-view-decorators", "sync-view-")
        for i in quart_ids
    } == {i.replace("sync-view-decorators", "sync-view-") for i in flask_ids}


@requires_quart
def test_suite_fails_a_decorator_making_a_loop_on_quart(
    pytester: pytest.Pytester,
) -> None:
    """On a Quart app the one loop a request may use is Quart's: a def
    decorator that starts a loop of its own fails the one-loop check there,
    on sync views too.
    """
    both_apps_subject(pytester, "new_loop", blocks=False)
    rec = pytester.inline_run("-k", "test_one_event_loop_per_request")
    failed = {i for i, o in outcomes_by_id(rec).items() if o == "failed"}
    assert {i for i in failed if "[quart-" in i} == {
        f"test_one_event_loop_per_request[{kind}-{mode}-callbacks]"
        for kind in QUART_VIEW_KINDS
        for mode in ("sync", "async")
    }


@requires_quart
def test_app_fixture_of_the_wrong_kind_fails_clearly(
    pytester: pytest.Pytester,
) -> None:
    body = "@pytest.fixture\ndef app(self):\n    return make_app()\n"
    both_apps_subject(pytester, "before", body=body)
    pytester.makepyfile(
        conftest="import builtins\nfrom flask_asyncext.testing import make_app\n"
        "builtins.make_app = make_app\n"
    )
    result = pytester.runpytest("-k", "test_metadata_kept")
    result.assert_outcomes(passed=len(VIEW_KINDS), errors=len(QUART_VIEW_KINDS))
    result.stdout.fnmatch_lines(
        [
            "*TestSubject's 'app' fixture returned a Flask app for a check on"
            " quart apps. Make the app the fixture 'asyncext_app_kind' names,"
            " with make_app(app_kind=asyncext_app_kind), or narrow"
            " TestSubject.app_kinds to the app kinds the extension supports,"
            " such as ('flask',)*"
        ]
    )


@requires_quart
def test_app_kinds_narrow_the_suite(pytester: pytest.Pytester) -> None:
    both_apps_subject(pytester, "before", body='app_kinds = ("quart",)')
    result = pytester.runpytest(
        "-k", "test_metadata_kept", "-v", "--asyncext-matrix-json=m.json"
    )
    result.assert_outcomes(passed=len(QUART_VIEW_KINDS))
    (row,) = json.loads(pytester.path.joinpath("m.json").read_text())["rows"]
    assert (row["label"], row["app_kind"]) == (
        "TestSubject (before), on Quart",
        "quart",
    )
    assert row["results"]["test_metadata_kept"] == dict.fromkeys(
        QUART_VIEW_KINDS, "passed"
    )
    result.stdout.fnmatch_lines(["*test_metadata_kept?quart-sync-function? PASSED*"])
    result.stdout.fnmatch_lines(
        [
            "TestSubject (before), on Quart",
            "  convention* metadata *",
            "  ---------   ......... ---------*",
        ]
    )


def test_example_for_both_apps_passes_strict(pytester: pytest.Pytester) -> None:
    """The conformance test of ``examples/quart`` passes every check in
    strict mode, on Quart apps too where Quart is installed.
    """
    example = pathlib.Path(__file__).parent.parent / "examples" / "quart"
    make_ini(pytester)

    for name in ("token_auth.py", "test_token_auth.py"):
        pytester.path.joinpath(name).write_text(example.joinpath(name).read_text())

    found = outcomes_by_id(pytester.inline_run())
    assert set(found.values()) == {"passed"}
    on_quart = {i for i in found if "[quart-" in i}
    assert len(on_quart) == (0 if quart is None else len(found) // 2)
    assert len(found) > 200


CLI_TARGETS = """
import flask
import quart

from flask_asyncext import after_view


@after_view
def tag(response):
    response.headers["X-Tag"] = "yes"


def create_flask_app():
    return flask.Flask(__name__)


def create_quart_app():
    app = quart.Quart(__name__)
    app.secret_key = "a secret key long enough for every signer" * 2
    return app
"""


@requires_quart
def test_command_runs_the_checks_on_quart_apps(
    tmp_path: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    tmp_path.joinpath("quart_targets.py").write_text(CLI_TARGETS)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    check = ["check", "--strict", "quart_targets:tag", "--app-kind", "quart"]
    assert main(check) == 0
    out = capsys.readouterr().out
    assert "quart_targets:tag, on Quart" in out
    assert out.endswith("Every check passed.\n")
    assert main([*check, "--app", "quart_targets:create_quart_app"]) == 0
    capsys.readouterr()
    assert main([*check, "--app", "quart_targets:create_flask_app"]) == 2
    assert capsys.readouterr().err.endswith(
        "error: --app makes flask apps; the checks run on quart apps: pass"
        " --app-kind flask\n"
    )


@requires_quart
def test_quart_app_of_make_app() -> None:
    app = make_test_app(app_kind="quart", TESTING=False)
    assert isinstance(app, quart.Quart)
    assert app.config["TESTING"] is False
    assert app.config["SECRET_KEY"]


# -- without Quart ---------------------------------------------------------


def test_package_never_imports_quart() -> None:
    code = (
        "import sys, flask_asyncext, flask_asyncext.views;"
        " from flask import Flask;"
        " from flask_asyncext import after_view, ensure_sync;"
        " app = Flask(__name__);"
        " app.get('/')(after_view(lambda r: None)(lambda: 'ok'));"
        " assert app.test_client().get('/').text == 'ok';"
        " assert ensure_sync(lambda: 1)() == 1;"
        " assert not [m for m in sys.modules if m.split('.')[0] == 'quart'], 'quart'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_without_quart_the_helpers_do_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("quart.signals", "quart.globals"):
        monkeypatch.delitem(sys.modules, name, raising=False)

    monkeypatch.setattr(_quart, "_installed", False)
    _quart.install()
    assert _quart._installed is False
    assert _quart.current_app() is None
    assert _quart.app_loop() is None
    assert _quart.waiting_thread() is None


def test_after_view_outside_any_app_fails_like_flask() -> None:
    view = after_view(lambda response: None)(lambda: "ok")

    with pytest.raises(RuntimeError, match="application context"):
        view()


# -- the example the docs include ------------------------------------------

EXAMPLE = pathlib.Path(__file__).parent.parent / "examples" / "quart"


@pytest.fixture
def example(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    monkeypatch.syspath_prepend(str(EXAMPLE))
    monkeypatch.delitem(sys.modules, "token_auth", raising=False)
    spec = importlib.util.spec_from_file_location("examples_quart", EXAMPLE / "app.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GOOD = {"Authorization": "Bearer s3cret"}
BAD = {"Authorization": "Bearer nope"}


@pytest.mark.parametrize("path", ["/sync", "/async"])
def test_example_on_flask(example: types.ModuleType, path: str) -> None:
    client = example.create_flask_app().test_client()
    assert client.post(path).status_code == 401
    assert client.post(path, headers=BAD).status_code == 401
    response = client.post(path, json={"note": "hi"}, headers=GOOD)
    assert response.status_code == 200
    assert (response.json["user"], response.json["note"]) == ("ada", "hi")
    assert client.post(path, headers=GOOD).json["note"] is None


@requires_quart
@pytest.mark.parametrize("path", ["/sync", "/async"])
def test_example_on_quart(
    example: types.ModuleType, loops: LoopCounter, path: str
) -> None:
    app = example.create_quart_app()

    async def main() -> tuple[t.Any, ...]:
        client = app.test_client()
        denied = await client.post(path)
        wrong = await client.post(path, headers=BAD)
        allowed = await client.post(path, json={"note": "hi"}, headers=GOOD)
        return (
            denied.status_code,
            wrong.status_code,
            allowed.status_code,
            await allowed.get_json(),
            threading.get_ident(),
        )

    created = loops.created
    denied, wrong, allowed, json, loop_thread = run(main())
    assert (denied, wrong, allowed) == (401, 401, 200)
    assert (json["user"], json["note"]) == ("ada", "hi")
    # A sync view runs in Quart's worker thread, an async one on its loop;
    # either way the verifier and get_json() ran on Quart's loop, the only one.
    assert (json["thread"] == loop_thread) == (path == "/async")
    assert loops.created - created == 1


@requires_quart
def test_example_runs_as_a_script(
    example: types.ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    runpy.run_path(str(EXAMPLE / "app.py"), run_name="__main__")
    assert capsys.readouterr().out.splitlines() == [
        f"{web} {path} 401 ada"
        for web in ("flask", "quart")
        for path in ("/sync", "/async")
    ]
