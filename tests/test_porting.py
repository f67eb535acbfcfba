"""Run the porting guide's examples, before and after, on sync and async views
with sync and async callbacks.
"""

from __future__ import annotations

import asyncio
import importlib.util
import inspect
import pathlib
import types
import typing as t

import pytest
from flask import Flask
from flask import g

if t.TYPE_CHECKING:
    from conftest import LoopCounter

PORTING = pathlib.Path(__file__).parent.parent / "examples" / "porting"


def load(name: str) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(
        f"porting_{name}", PORTING / f"{name}.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TOKENS = {"token-ada": "ada"}


def verifiers() -> dict[str, t.Callable[[str], t.Any]]:
    def verify(token: str) -> str | None:
        return TOKENS.get(token)

    async def verify_async(token: str) -> str | None:
        await asyncio.sleep(0)
        return TOKENS.get(token)

    return {"sync": verify, "async": verify_async}


def current_user() -> str:
    user = g.user

    if inspect.iscoroutine(user):
        user.close()  # no "never awaited" warning
        return "<coroutine>"

    return user  # type: ignore[no-any-return]


def token_app(module: str, verifier: str) -> Flask:
    auth = load(module).TokenAuth()
    auth.verify_token(verifiers()[verifier])
    app = Flask(__name__)

    @app.get("/sync")
    @auth.login_required
    def sync_view() -> str:
        return current_user()

    @app.get("/async")
    @auth.login_required
    async def async_view() -> str:
        return current_user()

    app.extensions["views"] = (sync_view, async_view)
    return app


@pytest.mark.parametrize("verifier", ["sync", "async"])
@pytest.mark.parametrize("path", ["/sync", "/async"])
def test_ported_token_auth(verifier: str, path: str) -> None:
    client = token_app("token_auth_after", verifier).test_client()
    ok = client.get(path, headers={"Authorization": "token-ada"})
    assert (ok.status_code, ok.text) == (200, "ada")
    assert client.get(path, headers={"Authorization": "token-eve"}).status_code == 401


def test_ported_token_auth_keeps_async_views_async() -> None:
    sync_view, async_view = token_app("token_auth_after", "sync").extensions["views"]
    assert not inspect.iscoroutinefunction(sync_view)
    assert inspect.iscoroutinefunction(async_view)
    assert (sync_view.__name__, async_view.__name__) == ("sync_view", "async_view")


def test_ported_token_auth_refuses_a_non_callable_verifier() -> None:
    auth = load("token_auth_after").TokenAuth()

    with pytest.raises(TypeError, match="verify_token\\(\\) needs a callable"):
        auth.verify_token("not a function")


def test_ported_token_auth_without_verifier_is_an_error() -> None:
    auth = load("token_auth_after").TokenAuth()
    app = Flask(__name__)
    app.testing = True
    app.get("/")(auth.login_required(lambda: "never"))

    with pytest.raises(RuntimeError, match="no token verifier"):
        app.test_client().get("/")


@pytest.mark.parametrize("path", ["/sync", "/async"])
def test_before_port_sync_verifier_works(path: str) -> None:
    client = token_app("token_auth_before", "sync").test_client()
    assert client.get(path, headers={"Authorization": "token-ada"}).text == "ada"
    assert client.get(path, headers={"Authorization": "token-eve"}).status_code == 401


@pytest.mark.parametrize("path", ["/sync", "/async"])
def test_before_port_async_verifier_fails_open(path: str) -> None:
    # What the guide warns about: the coroutine object is truthy.
    client = token_app("token_auth_before", "async").test_client()
    response = client.get(path, headers={"Authorization": "token-eve"})
    assert (response.status_code, response.text) == (200, "<coroutine>")


def test_before_port_turns_async_views_sync() -> None:
    _, async_view = token_app("token_auth_before", "sync").extensions["views"]
    assert not inspect.iscoroutinefunction(async_view)


ROLES = {"ada": ["admin", "editor"], "bob": ["reader"], "eve": []}


def roles_app(loader: str) -> Flask:
    module = load("roles_required")
    roles_required = module.roles_required

    def load_roles(user: str) -> list[str]:
        return ROLES[user]

    async def load_roles_async(user: str) -> list[str]:
        await asyncio.sleep(0)
        return ROLES[user]

    app = Flask(__name__)
    module.Roles(load_roles if loader == "sync" else load_roles_async).init_app(app)

    @app.before_request
    def set_user() -> None:
        from flask import request

        g.user = request.args["user"]

    @app.get("/any")
    @roles_required
    def any_role() -> str:
        return "any"

    @app.get("/any/async")
    @roles_required
    async def any_role_async() -> str:
        return "any"

    @app.get("/admin")
    @roles_required("admin", "editor")
    def admin() -> str:
        return "admin"

    @app.get("/admin/async")
    @roles_required("admin")
    async def admin_async() -> str:
        return "admin"

    app.extensions["views"] = (any_role_async, admin_async)
    return app


@pytest.mark.parametrize("loader", ["sync", "async"])
@pytest.mark.parametrize("suffix", ["", "/async"])
@pytest.mark.parametrize(
    ("user", "path", "status"),
    [
        ("ada", "/any", 200),
        ("bob", "/any", 200),
        ("eve", "/any", 403),
        ("ada", "/admin", 200),
        ("bob", "/admin", 403),
    ],
)
def test_roles_required(
    loader: str, suffix: str, user: str, path: str, status: int
) -> None:
    client = roles_app(loader).test_client()
    assert client.get(f"{path}{suffix}?user={user}").status_code == status


def test_roles_required_keeps_async_views_async() -> None:
    for view in roles_app("sync").extensions["views"]:
        assert inspect.iscoroutinefunction(view)


def test_roles_required_refuses_a_non_string_role() -> None:
    roles_required = load("roles_required").roles_required

    with pytest.raises(TypeError, match="takes role names, got 42"):
        roles_required("admin", 42)


USERS = {"ada": "Ada Lovelace"}


def login_app(module_name: str, loader: str, *, portal: bool = False) -> Flask:
    module = load(module_name)
    app = Flask(__name__)
    app.testing = True
    app.secret_key = "test"
    manager = module.LoginManager(app)

    if portal:
        pytest.importorskip("greenlet")  # the 'portal' extra
        from flask_asyncext.portal import SyncPortal

        SyncPortal(app)

    if loader == "sync":

        @manager.user_loader
        def load_user(user_id: str) -> str | None:
            return USERS.get(user_id)

    else:

        @manager.user_loader
        async def load_user_async(user_id: str) -> str | None:
            await asyncio.sleep(0)
            return USERS.get(user_id)

    @app.post("/login/<name>")
    def login(name: str) -> tuple[str, int]:
        from flask import session

        session["_user_id"] = name
        return "", 204

    @app.get("/profile")
    @module.login_required
    def profile() -> str:
        return str(module.current_user)

    @app.get("/profile/async")
    @module.login_required
    async def profile_async() -> str:
        return str(module.current_user)

    @app.get("/public")
    def public() -> str:
        return str(module.current_user)

    @app.get("/public/async")
    async def public_async() -> str:
        return str(module.current_user)

    return app


@pytest.mark.parametrize("loader", ["sync", "async"])
@pytest.mark.parametrize("path", ["/profile", "/profile/async"])
def test_ported_login_required(loader: str, path: str) -> None:
    client = login_app("login_after", loader).test_client()
    assert client.get(path).status_code == 401
    client.post("/login/eve")
    assert client.get(path).status_code == 401
    client.post("/login/ada")
    response = client.get(path)
    assert (response.status_code, response.text) == (200, "Ada Lovelace")


@pytest.mark.parametrize("loader", ["sync", "async"])
def test_ported_current_user_outside_login_required(loader: str) -> None:
    client = login_app("login_after", loader).test_client()
    client.post("/login/ada")
    assert client.get("/public").text == "Ada Lovelace"


def test_ported_current_user_in_undecorated_async_view_needs_a_portal() -> None:
    client = login_app("login_after", "async").test_client()
    client.post("/login/ada")

    with pytest.raises(RuntimeError, match="maybe_await"):
        client.get("/public/async")


@pytest.mark.parametrize("loader", ["sync", "async"])
@pytest.mark.parametrize("path", ["/public", "/public/async", "/profile/async"])
def test_ported_current_user_with_portal(
    loader: str, path: str, loops: LoopCounter, asyncext_shared_loop: t.Any
) -> None:
    client = login_app("login_after", loader, portal=True).test_client()
    client.post("/login/ada")
    before = loops.created
    assert client.get(path).text == "Ada Lovelace"
    # The loader waits on the async view's own loop: no loop of its own.
    # The shared loop (tox -e shared-loop) exists already: no new one at all.
    expected = 0 if (path == "/public" and loader == "sync") else 1

    if asyncext_shared_loop is not None:
        expected = 0

    assert loops.created - before == expected


def test_ported_login_manager_refuses_a_bad_loader() -> None:
    manager = load("login_after").LoginManager()

    with pytest.raises(TypeError, match=r"LoginManager\.user_loader cannot be None"):
        manager.user_loader(None)


def test_ported_login_manager_without_loader_is_an_error() -> None:
    app = Flask(__name__)
    app.testing = True
    app.secret_key = "test"
    module = load("login_after")
    module.LoginManager(app)
    app.get("/")(module.login_required(lambda: "never"))
    client = app.test_client()

    with client.session_transaction() as session:
        session["_user_id"] = "ada"

    with pytest.raises(RuntimeError, match=r"No LoginManager\.user_loader callback"):
        client.get("/")


def test_before_port_login_async_loader_in_async_view_raises() -> None:
    # The issue the guide starts from: Flask's ensure_sync inside an async view.
    client = login_app("login_before", "async").test_client()
    client.post("/login/ada")
    assert client.get("/profile").text == "Ada Lovelace"
    # The sync wrapper loads the user before the view's loop starts.
    assert client.get("/profile/async").text == "Ada Lovelace"

    with pytest.raises(RuntimeError, match="event loop"):
        client.get("/public/async")


def test_login_app() -> None:
    pytest.importorskip("greenlet")  # the 'portal' extra
    import sys

    sys.path.insert(0, str(PORTING))

    try:
        client = load("login_app").create_app().test_client()
    finally:
        sys.path.remove(str(PORTING))
        sys.modules.pop("login_after", None)

    assert client.get("/").text == "hello anonymous"
    assert client.get("/profile").status_code == 401
    client.post("/login/ada")
    assert client.get("/").text == "hello Ada Lovelace"
    assert client.get("/profile").text == "profile of Ada Lovelace"
