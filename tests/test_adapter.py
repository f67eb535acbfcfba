"""adapt_decorator: legacy sync-only decorators on async views."""

from __future__ import annotations

import asyncio
import collections.abc as cabc
import functools
import inspect
import pathlib
import sys
import threading
import types
import typing as t

import pytest
from flask import abort
from flask import Flask
from flask import g
from flask import request
from flask.testing import FlaskClient

from flask_asyncext import adapt_decorator
from flask_asyncext import portal
from flask_asyncext.testing import DecoratorConformance
from flask_asyncext.testing import make_app
from flask_asyncext.testing import VIEW_KINDS
from flask_asyncext.testing.cli import main
from flask_asyncext.testing.plugin import AsyncextCheck

if t.TYPE_CHECKING:
    from conftest import LoopCounter

flask_cors = pytest.importorskip("flask_cors")
flask_principal = pytest.importorskip("flask_principal")

EXAMPLE = pathlib.Path(__file__).parent.parent / "examples" / "adapter"
ASYNC_KINDS = [k for k in VIEW_KINDS if k.startswith("async-")]
View = cabc.Callable[..., t.Any]


@pytest.fixture
def example(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    monkeypatch.syspath_prepend(str(EXAMPLE))
    monkeypatch.delitem(sys.modules, "legacy_app", raising=False)
    import legacy_app

    return legacy_app


@pytest.fixture(params=["portal", "thread"])
def mechanism(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Adapt with the portal (greenlet installed) or, as without greenlet,
    with a worker thread.
    """
    if request.param == "thread":
        monkeypatch.setattr(portal, "_AVAILABLE", False)
    elif not portal._AVAILABLE:
        pytest.skip("the portal needs greenlet (the 'portal' extra)")

    return str(request.param)


def require_token(view: View) -> View:
    """A short-circuiting check written the old way."""

    @functools.wraps(view)
    def wrapper(*args: t.Any, **kwargs: t.Any) -> t.Any:
        if request.headers.get("Authorization") != "Bearer secret":
            return "a valid token is required", 401

        return view(*args, **kwargs)

    return wrapper


# -- the conformance suite, adapted -------------------------------------------


class TestAdaptedCrossOrigin(DecoratorConformance):
    app_kinds = ("flask",)

    @pytest.fixture
    def decorator(self, mechanism: str) -> View:
        return adapt_decorator(flask_cors.cross_origin())


def principal_app() -> Flask:
    app = make_app()
    principal = flask_principal.Principal(app, use_sessions=False)

    @principal.identity_loader  # type: ignore[untyped-decorator]
    def load_identity() -> t.Any:
        role = request.headers.get("X-Role")
        return None if role is None else flask_principal.Identity(role)

    @flask_principal.identity_loaded.connect_via(app)  # type: ignore[untyped-decorator]
    def add_role(sender: Flask, identity: t.Any) -> None:
        identity.provides.add(flask_principal.RoleNeed(identity.id))

    return app


def admin_required() -> t.Any:
    return flask_principal.Permission(flask_principal.RoleNeed("admin")).require(403)


def as_admin(client: FlaskClient) -> cabc.Mapping[str, t.Any]:
    return {"headers": {"X-Role": "admin"}}


def as_guest(client: FlaskClient) -> cabc.Mapping[str, t.Any]:
    return {"headers": {"X-Role": "guest"}}


class TestAdaptedPermissionRequire(DecoratorConformance):
    app_kinds = ("flask",)
    blocks_requests = True
    denied_status = (403,)

    @pytest.fixture
    def app(self) -> Flask:
        return principal_app()

    @pytest.fixture
    def decorator(self, mechanism: str) -> View:
        return adapt_decorator(admin_required())

    def allow(self, client: FlaskClient) -> cabc.Mapping[str, t.Any]:
        return as_admin(client)

    def deny(self, client: FlaskClient) -> cabc.Mapping[str, t.Any]:
        return as_guest(client)


def with_token(client: FlaskClient) -> cabc.Mapping[str, t.Any]:
    return {"headers": {"Authorization": "Bearer secret"}}


class TestAdaptedShortCircuit(DecoratorConformance):
    app_kinds = ("flask",)
    blocks_requests = True
    denied_status = (401,)

    @pytest.fixture
    def decorator(self, mechanism: str) -> View:
        return adapt_decorator(require_token)

    def allow(self, client: FlaskClient) -> cabc.Mapping[str, t.Any]:
        return with_token(client)


flask_login = pytest.importorskip("flask_login")


class LoginUser(flask_login.UserMixin):  # type: ignore[misc,name-defined]
    id = "1"


def login_app() -> Flask:
    app = make_app()
    manager = flask_login.LoginManager(app)
    manager.user_loader(lambda user_id: LoginUser() if user_id == "1" else None)
    return app


def log_in(client: FlaskClient) -> cabc.Mapping[str, t.Any]:
    with client.session_transaction() as session:
        session["_user_id"] = "1"

    return {}


class TestAdaptedFlaskLoginRequired(DecoratorConformance):
    """Flask-Login's login_required already works on async views, as a sync
    wrapper (tests/test_testing_extensions.py); adapted, the view stays an
    async def.
    """

    app_kinds = ("flask",)

    blocks_requests = True
    denied_status = (401,)

    @pytest.fixture
    def app(self) -> Flask:
        return login_app()

    @pytest.fixture
    def decorator(self, mechanism: str) -> View:
        return adapt_decorator(flask_login.login_required)

    def allow(self, client: FlaskClient) -> cabc.Mapping[str, t.Any]:
        return log_in(client)


# -- before: the same decorators as they ship ------------------------------------


def failed_kinds(outcomes: list[t.Any], check: str) -> set[str]:
    return {o.kind for o in outcomes if o.check.name == check and o.status == "failed"}


@pytest.mark.parametrize(
    ("decorator", "options"),
    [
        pytest.param(flask_cors.cross_origin, {}, id="cross_origin"),
        pytest.param(
            admin_required,
            {
                "app_factory": principal_app,
                "blocks_requests": True,
                "denied_status": (403,),
                "allow": as_admin,
                "deny": as_guest,
            },
            id="Permission.require",
        ),
        pytest.param(
            lambda: require_token,
            {"blocks_requests": True, "denied_status": (401,), "allow": with_token},
            id="short-circuit",
        ),
    ],
)
def test_unadapted_decorators_fail_on_async_views(
    asyncext_check: AsyncextCheck,
    decorator: cabc.Callable[[], View],
    options: dict[str, t.Any],
) -> None:
    with pytest.raises(pytest.fail.Exception, match=r"failed \d+ check\(s\)") as info:
        asyncext_check(decorator(), **options)

    # Every failure is on an async view kind: the view's coroutine object is
    # taken for the response.
    message = str(info.value)
    assert "[view kind async-function" in message
    assert "[view kind sync-" not in message


# -- flask-asyncext check ------------------------------------------------------------


def test_check_command(
    example: types.ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    """``flask-asyncext check`` fails cross_origin() as flask-cors ships it
    and passes it adapted.
    """
    assert main(["check", "legacy_app:legacy_cors"]) == 1
    assert "FAILED legacy_app:legacy_cors" in capsys.readouterr().out
    assert main(["check", "legacy_app:cors"]) == 0
    assert "FAILED" not in capsys.readouterr().out


def test_example_tests_pass(pytester: pytest.Pytester) -> None:
    for path in EXAMPLE.glob("*.py"):
        pytester.path.joinpath(path.name).write_text(path.read_text())

    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=5)


# -- behaviour ------------------------------------------------------------------


def test_sync_views_get_the_decorator_as_is() -> None:
    wrappers: list[View] = []

    def legacy(view: View) -> View:
        wrappers.append(require_token(view))
        return wrappers[-1]

    def view() -> str:
        return "sync"

    assert adapt_decorator(legacy)(view) is wrappers[0]


def test_async_views_stay_async(mechanism: str) -> None:
    async def view(item_id: int) -> str:
        """Doc."""
        return "async"

    view.marker = "kept"  # type: ignore[attr-defined]
    decorated = adapt_decorator(require_token)(view)
    assert inspect.iscoroutinefunction(decorated)
    assert decorated.__name__ == "view"
    assert decorated.__doc__ == "Doc."
    assert decorated.__wrapped__ is view  # type: ignore[attr-defined]
    assert decorated.marker == "kept"  # type: ignore[attr-defined]
    assert inspect.signature(decorated) == inspect.signature(view)


def test_attributes_the_decorator_sets_are_kept() -> None:
    def flagging(view: View) -> View:
        @functools.wraps(view)
        def wrapper(*args: t.Any, **kwargs: t.Any) -> t.Any:
            return view(*args, **kwargs)

        wrapper.provide_automatic_options = False  # type: ignore[attr-defined]
        return wrapper

    async def view() -> str:
        return ""

    decorated = adapt_decorator(flagging)(view)
    assert decorated.provide_automatic_options is False  # type: ignore[attr-defined]


def test_marking_decorators_mark_the_async_view() -> None:
    seen: list[str] = []

    def exempt(view: View) -> View:
        seen.append(view.__name__)
        view.exempt = True  # type: ignore[attr-defined]
        return view

    async def view() -> str:
        return ""

    assert adapt_decorator(exempt)(view) is view
    assert view.exempt is True  # type: ignore[attr-defined]
    assert seen == ["view"]


def test_adapter_carries_the_decorators_name() -> None:
    assert adapt_decorator(require_token).__name__ == "require_token"  # type: ignore[attr-defined]
    adapted = adapt_decorator(admin_required())
    assert adapted.__qualname__ == "IdentityContext"  # type: ignore[attr-defined]


@pytest.mark.parametrize("bad", [None, "cross_origin", str, 42], ids=repr)
def test_bad_views_are_refused(bad: t.Any) -> None:
    decorator = adapt_decorator(require_token)

    with pytest.raises(TypeError, match=r"'require_token'.*adapted, cannot decorate"):
        decorator(bad)


@pytest.mark.parametrize("bad", [None, 42], ids=repr)
def test_bad_decorators_are_refused(bad: t.Any) -> None:
    with pytest.raises(TypeError, match=r"adapt_decorator\(\) needs a view decorator"):
        adapt_decorator(bad)


def test_async_decorators_are_refused() -> None:
    async def deco(view: View) -> View:  # pragma: no cover
        return view

    with pytest.raises(
        TypeError, match=r"'test_async_decorators_are_refused.<locals>.deco'"
    ):
        adapt_decorator(deco)


@pytest.mark.parametrize("sync_portal", [False, True], ids=["app", "SyncPortal-app"])
def test_view_runs_on_the_requests_loop(
    app: Flask,
    mechanism: str,
    sync_portal: bool,
    loops: LoopCounter,
    asyncext_shared_loop: t.Any,
) -> None:
    if sync_portal:
        if mechanism == "thread":
            pytest.skip("SyncPortal needs greenlet, which the thread path is without")

        portal.SyncPortal(app)

    running: list[asyncio.AbstractEventLoop] = []
    threads: list[int] = []

    def recording(view: View) -> View:
        @functools.wraps(view)
        def wrapper(*args: t.Any, **kwargs: t.Any) -> t.Any:
            threads.append(threading.get_ident())
            g.seen_by_decorator = request.path
            return view(*args, **kwargs) + " decorated"

        return wrapper

    @app.before_request
    async def before() -> None:
        running.append(asyncio.get_running_loop())

    @app.get("/")
    @adapt_decorator(recording)
    async def index() -> str:
        running.append(asyncio.get_running_loop())
        threads.append(threading.get_ident())
        await asyncio.sleep(0)
        return str(g.seen_by_decorator)

    loops.created = 0
    assert app.test_client().get("/").text == "/ decorated"
    assert running[1] is not None
    # The view ran on the request's loop, not one the adapter started.
    expected = 0 if asyncext_shared_loop is not None else 2
    assert loops.created == expected

    if mechanism == "portal":
        # The decorator ran in the loop's thread, in the portal.
        assert threads[0] == threads[1]


def test_exceptions_and_abort_propagate(app: Flask, mechanism: str) -> None:
    def legacy(view: View) -> View:
        @functools.wraps(view)
        def wrapper(*args: t.Any, **kwargs: t.Any) -> t.Any:
            if request.args.get("deny"):
                abort(418)

            try:
                return view(*args, **kwargs)
            except KeyError as e:
                return f"caught {e}", 500

        return wrapper

    @app.get("/")
    @adapt_decorator(legacy)
    async def index() -> str:
        await asyncio.sleep(0)

        if request.args.get("fail"):
            raise KeyError("from the view")

        return "ok"

    client = app.test_client()
    assert client.get("/").text == "ok"
    assert client.get("/?deny=1").status_code == 418
    failed = client.get("/?fail=1")
    assert (failed.status_code, failed.text) == (500, "caught 'from the view'")
