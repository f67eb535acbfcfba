"""The portal: sync code inside an async view waits for a coroutine on the
view's own event loop.
"""

from __future__ import annotations

import asyncio
import collections.abc as cabc
import contextvars
import gc
import pathlib
import subprocess
import sys
import types
import typing as t

import pytest
from flask import current_app
from flask import Flask
from flask import g
from flask import request

from flask_asyncext import ensure_sync
from flask_asyncext import portal
from flask_asyncext.portal import await_
from flask_asyncext.portal import has_portal
from flask_asyncext.portal import run_with_portal
from flask_asyncext.portal import SyncPortal
from flask_asyncext.shared_loop import SharedLoop

if t.TYPE_CHECKING:
    from conftest import LoopCounter

# The 'portal' extra. Where it is installed, test_package_imports_without_greenlet
# blocks the import in a subprocess.
greenlet = pytest.importorskip("greenlet")

EXAMPLE = pathlib.Path(__file__).parent.parent / "examples" / "portal"
var: contextvars.ContextVar[str] = contextvars.ContextVar("var")


def live_portal_greenlets() -> list[greenlet.greenlet]:
    gc.collect()
    return [
        o for o in gc.get_objects() if type(o) is portal._PortalGreenlet and not o.dead
    ]


@pytest.fixture(autouse=True)
def _no_dangling_greenlets() -> cabc.Iterator[None]:
    yield
    assert live_portal_greenlets() == []


async def double(value: int) -> int:
    await asyncio.sleep(0)
    return value * 2


# -- no portal --------------------------------------------------------------


def test_no_portal_outside_a_loop() -> None:
    assert not has_portal()

    with pytest.raises(RuntimeError, match=r"no portal is active here.*SyncPortal"):
        await_(double(1))


def test_no_portal_for_other_awaitables() -> None:
    coroutine = double(1)

    with pytest.raises(RuntimeError, match="no portal is active here"):
        await_(Awaitable(coroutine))

    coroutine.close()


def test_no_portal_in_plain_async_code() -> None:
    async def main() -> None:
        assert not has_portal()
        coroutine = double(1)

        with pytest.raises(RuntimeError, match="no portal is active here"):
            await_(coroutine)

        # Closed, so it never warns that it was never awaited.
        assert coroutine.cr_frame is None

    asyncio.run(main())


def test_no_portal_in_a_task_started_inside_one() -> None:
    """A task the portal's code starts is not run by the portal: await_()
    refuses there instead of switching to the wrong greenlet.
    """

    async def in_task() -> bool:
        return has_portal()

    def code() -> bool:
        return await_(asyncio.ensure_future(in_task()))

    async def main() -> bool:
        return await run_with_portal(code)

    assert asyncio.run(main()) is False


# -- run_with_portal ----------------------------------------------------------


def test_sync_code_waits_on_the_running_loop() -> None:
    seen: list[asyncio.AbstractEventLoop] = []

    async def where() -> asyncio.AbstractEventLoop:
        await asyncio.sleep(0)
        return asyncio.get_running_loop()

    def code(a: int, *, b: int) -> int:
        assert has_portal()
        seen.append(await_(where()))
        return await_(double(a)) + await_(double(b))

    async def main() -> int:
        seen.append(asyncio.get_running_loop())
        return await run_with_portal(code, 1, b=2)

    assert asyncio.run(main()) == 6
    assert seen[0] is seen[1]


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: double(21), id="coroutine"),
        pytest.param(lambda: asyncio.ensure_future(double(21)), id="task"),
        pytest.param(
            lambda: types.coroutine(lambda: (yield from double(21).__await__()))(),
            id="generator-based",
        ),
        pytest.param(lambda: Awaitable(double(21)), id="__await__"),
    ],
)
def test_every_kind_of_awaitable(make: cabc.Callable[[], t.Any]) -> None:
    async def main() -> int:
        return await run_with_portal(lambda: await_(make()))

    assert asyncio.run(main()) == 42


class Awaitable:
    def __init__(self, coroutine: cabc.Coroutine[t.Any, t.Any, int]) -> None:
        self.coroutine = coroutine

    def __await__(self) -> cabc.Generator[t.Any, t.Any, int]:
        return self.coroutine.__await__()


def test_not_awaitable() -> None:
    async def main() -> None:
        await run_with_portal(await_, 42)  # type: ignore[arg-type]

    with pytest.raises(TypeError, match="can't be used in 'await' expression"):
        asyncio.run(main())


def test_runs_async_callables_and_resolves_results() -> None:
    async def nested() -> cabc.Coroutine[t.Any, t.Any, int]:
        return double(2)

    def returns_coroutine() -> cabc.Coroutine[t.Any, t.Any, int]:
        return double(3)

    async def main() -> list[int]:
        return [
            await run_with_portal(double, 1),
            await run_with_portal(nested),  # type: ignore[arg-type]
            await run_with_portal(returns_coroutine),
            await run_with_portal(lambda: 7),
        ]

    assert asyncio.run(main()) == [2, 4, 6, 7]


@pytest.mark.parametrize("with_app", [False, True], ids=["no-app", "app"])
def test_ensure_sync_waits_through_any_portal(app: Flask, with_app: bool) -> None:
    """Inside a portal, ensure_sync waits through it, whether or not the app
    has SyncPortal, or an app context is active at all.
    """

    def code() -> list[int]:
        return [ensure_sync(double)(1), ensure_sync(lambda: double(2))()]

    async def main() -> list[int]:
        if not with_app:
            return await run_with_portal(code)

        with app.app_context():
            return await run_with_portal(code)

    assert asyncio.run(main()) == [2, 4]


def test_portals_nest() -> None:
    def inner() -> int:
        return await_(double(1))

    async def middle() -> int:
        return await run_with_portal(inner) + await_(double(10))

    def outer() -> int:
        return await_(middle())

    async def main() -> int:
        return await run_with_portal(outer)

    assert asyncio.run(main()) == 22


def test_greenlets_started_inside_a_portal_can_wait() -> None:
    """Code that runs its own greenlets (SQLAlchemy's asyncio extension does)
    still reaches the portal.
    """

    def code() -> int:
        own = greenlet.greenlet(lambda: await_(double(4)))
        return t.cast(int, own.switch())

    async def main() -> int:
        return await run_with_portal(code)

    assert asyncio.run(main()) == 8


def test_concurrent_portals_do_not_cross() -> None:
    """Two tasks on one loop, each in its own portal, take turns: each gets
    its own results back.
    """
    turns: list[str] = []

    async def step(name: str, i: int) -> str:
        await asyncio.sleep(0)
        turns.append(name)
        return f"{name}{i}"

    def code(name: str) -> list[str]:
        return [await_(step(name, i)) for i in range(5)]

    async def main() -> list[list[str]]:
        return list(
            await asyncio.gather(run_with_portal(code, "a"), run_with_portal(code, "b"))
        )

    assert asyncio.run(main()) == [
        [f"a{i}" for i in range(5)],
        [f"b{i}" for i in range(5)],
    ]
    # They did interleave.
    assert turns[:2] == ["a", "b"]


# -- errors, cancellation ------------------------------------------------------


async def fail() -> None:
    await asyncio.sleep(0)
    raise ValueError("boom")


def test_error_reaches_the_sync_code_and_beyond() -> None:
    caught: list[BaseException] = []

    def code() -> None:
        try:
            await_(fail())
        except ValueError as e:
            caught.append(e)

        assert await_(double(1)) == 2
        await_(fail())

    async def main() -> None:
        await run_with_portal(code)

    with pytest.raises(ValueError, match="boom") as info:
        asyncio.run(main())

    assert len(caught) == 1
    assert "fail" in [f.name for f in info.traceback]


def test_error_raised_by_the_sync_code() -> None:
    greenlets: list[greenlet.greenlet] = []

    def code() -> None:
        greenlets.append(greenlet.getcurrent())
        await_(double(1))
        raise KeyError("after waiting")

    async def main() -> None:
        await run_with_portal(code)

    with pytest.raises(KeyError, match="after waiting"):
        asyncio.run(main())

    assert greenlets[0].dead


def test_cancellation_reaches_the_awaited_coroutine() -> None:
    events: list[str] = []
    greenlets: list[greenlet.greenlet] = []

    async def wait_forever() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            events.append("coroutine cancelled")
            raise

    def code() -> None:
        greenlets.append(greenlet.getcurrent())

        try:
            await_(wait_forever())
        finally:
            events.append("sync code unwound")

    async def main() -> None:
        task = asyncio.ensure_future(run_with_portal(code))
        await asyncio.sleep(0.01)
        task.cancel()

        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert events == ["coroutine cancelled", "sync code unwound"]
    assert greenlets[0].dead


def test_a_cancellation_handled_in_the_sync_code() -> None:
    def code() -> str:
        try:
            await_(asyncio.sleep(3600))
        except asyncio.CancelledError:
            return "handled"

        raise AssertionError("not cancelled")  # pragma: no cover

    async def main() -> str:
        task = asyncio.ensure_future(run_with_portal(code))
        await asyncio.sleep(0.01)
        task.cancel()
        return await task

    assert asyncio.run(main()) == "handled"


def test_closing_the_coroutine_unwinds_the_portal() -> None:
    events: list[str] = []
    greenlets: list[greenlet.greenlet] = []

    def code() -> None:
        greenlets.append(greenlet.getcurrent())

        try:
            await_(asyncio.sleep(3600))
        finally:
            events.append("unwound")

    async def main() -> None:
        coroutine = run_with_portal(code)
        coroutine.send(None)  # suspended in the sleep
        coroutine.close()

    asyncio.run(main())
    assert events == ["unwound"]
    assert greenlets[0].dead


# -- contexts -------------------------------------------------------------------


def test_context_variables_shared_both_ways() -> None:
    seen: list[str] = []

    async def read_and_set() -> None:
        seen.append(var.get())
        var.set("set by the awaited coroutine")

    def code() -> None:
        seen.append(var.get())
        await_(read_and_set())
        seen.append(var.get())
        var.set("set by the sync code")

    async def main() -> str:
        var.set("set by the task")
        await run_with_portal(code)
        return var.get()

    assert asyncio.run(main()) == "set by the sync code"
    assert seen == [
        "set by the task",
        "set by the task",
        "set by the awaited coroutine",
    ]


def test_handled_exception_stays_visible() -> None:
    def code() -> str:
        return repr(sys.exc_info()[1])

    async def main() -> tuple[str, BaseException | None]:
        try:
            raise KeyError("handled")
        except KeyError:
            return await run_with_portal(code), sys.exc_info()[1]

    seen, after = asyncio.run(main())
    assert seen == "KeyError('handled')"
    assert isinstance(after, KeyError)


# -- SyncPortal on an app ------------------------------------------------------------


@pytest.fixture
def shared_loop() -> cabc.Iterator[SharedLoop]:
    runner = SharedLoop()
    runner.loop  # noqa: B018 (start it before the loops are counted)
    yield runner
    runner.close(timeout=10)


def portal_app(app: Flask, order: str, shared_loop: SharedLoop) -> Flask:
    if order == "portal-first":
        SyncPortal(app)
        shared_loop.init_app(app)
    elif order == "loop-first":
        shared_loop.init_app(app)
        SyncPortal().init_app(app)
    else:
        SyncPortal(app)

    return app


BRIDGES = ["default", "portal-first", "loop-first"]


@pytest.mark.parametrize("order", BRIDGES)
def test_app_hooks_views_and_handlers_run_in_a_portal(
    app: Flask,
    order: str,
    shared_loop: SharedLoop,
    asyncext_shared_loop: t.Any,
    loops: LoopCounter,
) -> None:
    portal_app(app, order, shared_loop)
    running: set[asyncio.AbstractEventLoop] = set()

    async def path() -> str:
        running.add(asyncio.get_running_loop())
        return request.path

    def sync_helper() -> str:
        assert current_app._get_current_object() is app  # type: ignore[attr-defined]
        return ensure_sync(path)()

    @app.before_request
    async def before() -> None:
        g.before = sync_helper()

    @app.after_request
    async def after(response: t.Any) -> t.Any:
        response.headers["X-After"] = sync_helper()
        return response

    @app.errorhandler(ZeroDivisionError)
    async def handle(e: ZeroDivisionError) -> tuple[str, int]:
        # The exception being handled is visible in the portal too.
        assert sys.exc_info()[1] is e
        return f"handled {sync_helper()}", 500

    @app.get("/ok")
    async def ok() -> str:
        return f"{g.before} {sync_helper()}"

    @app.get("/fail")
    async def fail_view() -> str:
        sync_helper()
        sync_helper()
        return str(1 / 0)

    client = app.test_client()
    ok_response = client.get("/ok")
    assert (ok_response.text, ok_response.headers["X-After"]) == ("/ok /ok", "/ok")
    fail_response = client.get("/fail")
    assert (fail_response.status_code, fail_response.text) == (500, "handled /fail")

    if order == "default" and asyncext_shared_loop is None:
        # One loop per async call Flask makes (before, view, after; the error
        # handler), never one more for the sync helper.
        assert loops.created == 3 + 4
        assert len(running) == 7
    else:
        assert loops.created == 0
        assert len(running) == 1


def test_sync_code_may_call_the_apps_ensure_sync(app: Flask) -> None:
    SyncPortal(app)

    def sync_double(value: int) -> int:
        return value * 2

    @app.get("/")
    async def index() -> str:
        return str(
            current_app.ensure_sync(double)(1) + current_app.ensure_sync(sync_double)(2)
        )

    assert app.test_client().get("/").text == "6"


def test_sync_callable_returning_a_coroutine(app: Flask) -> None:
    SyncPortal(app)

    @app.get("/")
    async def index() -> str:
        return str(ensure_sync(lambda: double(5))())

    assert app.test_client().get("/").text == "10"


def test_init_app_twice(app: Flask) -> None:
    sync_portal = SyncPortal(app)
    wrapped = app.ensure_sync
    sync_portal.init_app(app)
    assert app.ensure_sync is wrapped
    assert app.extensions["flask_asyncext.portal"] is sync_portal


def test_sync_views_unchanged(app: Flask) -> None:
    SyncPortal(app)

    def view() -> str:
        return "sync"

    assert app.ensure_sync(view) is view


# -- without greenlet ------------------------------------------------------------------


def test_without_greenlet(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(portal, "_AVAILABLE", False)

    with pytest.raises(RuntimeError, match=r"'portal' extra"):
        SyncPortal(app)

    assert not has_portal()
    coroutine = double(1)

    with pytest.raises(RuntimeError, match=r"'portal' extra"):
        await_(coroutine)

    assert coroutine.cr_frame is None

    async def main() -> None:
        assert not has_portal()

        with pytest.raises(RuntimeError, match=r"'portal' extra"):
            await run_with_portal(lambda: None)

        with pytest.raises(RuntimeError, match="this thread is running an event loop"):
            ensure_sync(double)(1)

    asyncio.run(main())


def test_package_imports_without_greenlet() -> None:
    code = """if True:
        import asyncio, sys
        sys.modules["greenlet"] = None
        import flask_asyncext
        from flask_asyncext import ensure_sync, portal
        assert not portal._AVAILABLE and not portal.has_portal()

        async def double(value):
            return value * 2

        async def main():
            try:
                ensure_sync(double)(1)
            except RuntimeError as e:
                print(e)

        asyncio.run(main())
    """
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "this thread is running an event loop" in result.stdout


# -- the example extension -----------------------------------------------------------


@pytest.fixture
def example(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    monkeypatch.syspath_prepend(str(EXAMPLE))

    for name in ("flask_users", "users_app"):
        monkeypatch.delitem(sys.modules, name, raising=False)

    import users_app

    return users_app


@pytest.fixture(params=["default", "shared-loop"])
def example_app(
    request: pytest.FixtureRequest, example: types.ModuleType, shared_loop: SharedLoop
) -> Flask:
    app: Flask = example.create_app(
        shared_loop if request.param == "shared-loop" else None
    )
    app.testing = True
    return app


def expected_loops(app: Flask, asyncext_shared_loop: t.Any) -> int:
    """Event loops created per request that waits for async code: one with
    Flask's default bridge, none with a shared loop.
    """
    on_shared_loop = "flask_asyncext.shared_loop" in app.extensions
    return 0 if on_shared_loop or asyncext_shared_loop is not None else 1


@pytest.mark.parametrize("path", ["/me", "/me/async"])
def test_example_current_user(
    example_app: Flask, path: str, loops: LoopCounter, asyncext_shared_loop: t.Any
) -> None:
    client = example_app.test_client()
    client.post("/login/1")
    loops.created = 0
    assert client.get(path).json == {"name": "Ada"}
    assert client.get(path).json == {"name": "Ada"}
    assert loops.created == 2 * expected_loops(example_app, asyncext_shared_loop)


def test_example_anonymous(example_app: Flask, loops: LoopCounter) -> None:
    client = example_app.test_client()
    assert client.get("/me").json == {"name": "anonymous"}
    assert client.get("/me/async").json == {"name": "anonymous"}


def test_example_template(
    example_app: Flask, loops: LoopCounter, asyncext_shared_loop: t.Any
) -> None:
    client = example_app.test_client()
    client.post("/login/1")
    loops.created = 0
    assert client.get("/hello").text == "Hello, Ada!"
    assert loops.created == expected_loops(example_app, asyncext_shared_loop)


def test_example_validator(
    example_app: Flask, loops: LoopCounter, asyncext_shared_loop: t.Any
) -> None:
    client = example_app.test_client()
    taken = client.post("/signup", data={"name": "Ada"})
    free = client.post("/signup", data={"name": "Grace"})
    assert (taken.status_code, taken.json) == (400, {"error": "'Ada' is taken."})
    assert (free.status_code, free.json) == (201, {"created": "Grace"})
    assert loops.created == 2 * expected_loops(example_app, asyncext_shared_loop)


def test_example_loader_runs_on_the_views_loop(
    example: types.ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    running: list[asyncio.AbstractEventLoop] = []
    load_user = example.load_user

    async def recording_loader(user_id: str) -> t.Any:
        running.append(asyncio.get_running_loop())
        return await load_user(user_id)

    monkeypatch.setattr(example, "load_user", recording_loader)
    app: Flask = example.create_app()

    @app.get("/where")
    async def where() -> str:
        running.append(asyncio.get_running_loop())
        return str(example.current_user.name)

    client = app.test_client()
    client.post("/login/1")
    assert client.get("/where").text == "Ada"
    assert len(running) == 2
    assert running[0] is running[1]


def test_example_without_portal_is_refused(
    example: types.ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the example does without SyncPortal: a clear error, not a
    deadlock or a truthy coroutine.
    """
    monkeypatch.setattr(example, "SyncPortal", lambda app: None)
    app: Flask = example.create_app()
    app.testing = True
    client = app.test_client()
    client.post("/login/1")

    with pytest.raises(RuntimeError, match="this thread is running an event loop"):
        client.get("/me/async")

    assert client.get("/me").json == {"name": "Ada"}


def test_example_tests_pass(pytester: pytest.Pytester) -> None:
    for path in EXAMPLE.glob("*.py"):
        pytester.path.joinpath(path.name).write_text(path.read_text())

    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)
