"""Real extensions as subjects of the conformance suite."""

from __future__ import annotations

import collections.abc as cabc
import typing as t

import pytest
from flask import Flask
from flask.testing import FlaskClient

from flask_asyncext.testing import DecoratorConformance
from flask_asyncext.testing import make_app
from flask_asyncext.testing import VIEW_KINDS
from flask_asyncext.testing.plugin import AsyncextCheck

flask_cors = pytest.importorskip("flask_cors")
flask_httpauth = pytest.importorskip("flask_httpauth")
flask_login = pytest.importorskip("flask_login")

ASYNC_KINDS = [k for k in VIEW_KINDS if k.startswith("async-")]


class User(flask_login.UserMixin):  # type: ignore[misc,name-defined]
    id = "1"


def login_app() -> Flask:
    app = make_app()
    manager = flask_login.LoginManager(app)
    manager.user_loader(lambda user_id: User() if user_id == "1" else None)
    return app


def log_in(client: FlaskClient) -> cabc.Mapping[str, t.Any]:
    with client.session_transaction() as session:
        session["_user_id"] = "1"

    return {}


class TestFlaskLoginRequired(DecoratorConformance):
    blocks_requests = True
    denied_status = (401,)

    @pytest.fixture
    def app(self) -> Flask:
        return login_app()

    @pytest.fixture
    def decorator(self) -> cabc.Callable[..., t.Any]:
        return flask_login.login_required  # type: ignore[no-any-return]

    def allow(self, client: FlaskClient) -> cabc.Mapping[str, t.Any]:
        return log_in(client)


def install_verify_password(auth: t.Any, mode: str) -> None:
    if mode == "sync":

        def verify(username: str, password: str) -> bool:
            return username == "alice" and password == "secret"

    else:

        async def verify(username: str, password: str) -> bool:  # type: ignore[misc]
            return username == "alice" and password == "secret"

    auth.verify_password(verify)


class TestHTTPAuthLoginRequired(DecoratorConformance):
    blocks_requests = True
    denied_status = (401,)

    @pytest.fixture
    def decorator(self) -> cabc.Callable[..., t.Any]:
        self.auth = flask_httpauth.HTTPBasicAuth()
        return self.auth.login_required  # type: ignore[no-any-return]

    def install_callbacks(self, app: Flask, mode: str) -> None:
        install_verify_password(self.auth, mode)

    def allow(self, client: FlaskClient) -> cabc.Mapping[str, t.Any]:
        return {"auth": ("alice", "secret")}

    def deny(self, client: FlaskClient) -> cabc.Mapping[str, t.Any]:
        return {"auth": ("alice", "wrong")}


def xfailed(outcomes: list[t.Any]) -> set[tuple[str, str, str | None]]:
    return {(o.check.name, o.kind, o.mode) for o in outcomes if o.status == "xfailed"}


def test_flask_login_costs(asyncext_check: AsyncextCheck) -> None:
    """Flask-Login passes every required check; the recommended ones show
    that its async views are turned into sync ones.
    """
    outcomes = asyncext_check(
        flask_login.login_required,
        app_factory=login_app,
        blocks_requests=True,
        denied_status=(401,),
        allow=log_in,
    )
    assert {o.status for o in outcomes} == {"passed", "xfailed"}
    assert xfailed(outcomes) == {
        ("test_calling_convention_kept", kind, None) for kind in ASYNC_KINDS
    }


def test_httpauth_costs(
    asyncext_check: AsyncextCheck, asyncext_shared_loop: t.Any
) -> None:
    """Flask-HTTPAuth passes every required check with sync and async
    password verifiers; an async verifier costs an async view a second
    event loop.
    """
    auth = flask_httpauth.HTTPBasicAuth()
    outcomes = asyncext_check(
        auth.login_required,
        blocks_requests=True,
        denied_status=(401,),
        allow=lambda client: {"auth": ("alice", "secret")},
        deny=lambda client: {"auth": ("alice", "wrong")},
        install_callbacks=lambda app, mode: install_verify_password(auth, mode),
    )
    assert {o.status for o in outcomes} == {"passed", "xfailed"}
    second_loop = {
        ("test_one_event_loop_per_request", kind, "async") for kind in ASYNC_KINDS
    }
    assert xfailed(outcomes) == {
        ("test_calling_convention_kept", kind, None) for kind in ASYNC_KINDS
    } | (second_loop if asyncext_shared_loop is None else set())
