"""Real extensions as subjects of the conformance suite. For each, the
ground truth is established by hand, with plain test-client requests
independent of the suite (does a ``def`` view work, an ``async def`` view, a
``MethodView`` method, do ``async def`` callbacks refuse what they must?),
and the suite's verdict must equal it. The docs' table of extensions is
generated from :data:`EXTENSIONS` (``test_docs_table``).
"""

from __future__ import annotations

import base64
import collections.abc as cabc
import dataclasses
import functools
import gc
import importlib.metadata
import pathlib
import typing as t
import warnings

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask.views import MethodView

from flask_asyncext.testing import make_app
from flask_asyncext.testing import VIEW_KINDS
from flask_asyncext.testing._harness import Subject
from flask_asyncext.testing._policy import Outcome
from flask_asyncext.testing._policy import run_all

_View = cabc.Callable[..., t.Any]
Kwargs = cabc.Mapping[str, t.Any]
Shaper = cabc.Callable[[FlaskClient], Kwargs]
ASYNC_KINDS = {k for k in VIEW_KINDS if k.startswith("async-")}
METHODVIEW_KINDS = {"sync-methodview", "async-methodview"}

WORKS = "works"
ASYNC_VIEWS = "fails on async views"
METHOD_VIEWS = "ignored on MethodView methods"
FAILS_OPEN = "fails open with async callbacks"
CRASHES = "fails with async callbacks"

MEANINGS = {
    WORKS: "safe on ``def`` and ``async def`` views and callbacks",
    ASYNC_VIEWS: "an ``async def`` view it decorates fails (Flask gets a coroutine)",
    METHOD_VIEWS: "its per-view option is lost on ``MethodView`` methods",
    FAILS_OPEN: "an ``async def`` callback lets a request that must be refused in",
    CRASHES: "an ``async def`` callback makes allowed requests fail",
}


@dataclasses.dataclass
class Setup:
    """One extension's decorator on a new app."""

    app: Flask
    decorator: _View
    #: Registers the extension's user callbacks: ``install(mode)``.
    install: cabc.Callable[[str], None] | None = None
    allow: Shaper = lambda client: {}
    denials: dict[str, Shaper] = dataclasses.field(default_factory=dict)
    method: str = "GET"
    denied_status: tuple[int, ...] = (401, 403)
    effect: cabc.Callable[[t.Any], None] | None = None


@dataclasses.dataclass(frozen=True)
class Extension:
    """A row of the docs' table, and how to set the extension up."""

    dist: str
    decorator: str
    verdict: str
    setup: cabc.Callable[[], Setup]

    @property
    def version(self) -> str:
        return importlib.metadata.version(self.dist)

    def subject(self, before_app: cabc.Callable[[], None] | None = None) -> Subject:
        """The suite's subject: a new setup for each check's app, after
        ``before_app``.
        """
        first = self.setup()
        setups = [first]

        def make() -> Flask:
            if before_app is not None:
                before_app()

            setups.append(self.setup())
            return setups[-1].app

        def install(app: Flask, mode: str) -> None:
            install = setups[-1].install
            assert install is not None
            install(mode)

        def effect(response: t.Any) -> None:
            check = setups[-1].effect
            assert check is not None
            check(response)

        return Subject(
            decorator=lambda view: setups[-1].decorator(view),
            make_app=make,
            blocks_requests=bool(first.denials),
            denied_status=first.denied_status,
            allow=lambda client: setups[-1].allow(client),
            denials={
                name: _denial(setups, name) for name in first.denials or {"": None}
            },
            install_callbacks=install if first.install is not None else None,
            method=first.method,
            effect=effect if first.effect is not None else None,
        )


def _denial(setups: list[Setup], name: str) -> Shaper:
    return lambda client: setups[-1].denials[name](client) if name else {}


# --- the extensions ---------------------------------------------------------


def _flask_login(login_view: bool) -> Setup:
    import flask_login

    class User(flask_login.UserMixin):
        id = "1"

    app = make_app()
    manager = flask_login.LoginManager(app)

    if login_view:
        manager.login_view = "login"
        app.add_url_rule("/login", "login", lambda: "log in")

    def install(mode: str) -> None:
        async def load_async(user_id: str) -> User | None:
            return User() if user_id == "1" else None

        def load(user_id: str) -> User | None:
            return User() if user_id == "1" else None

        manager.user_loader(load if mode == "sync" else load_async)

    def log_in(client: FlaskClient) -> Kwargs:
        with client.session_transaction() as session:
            session["_user_id"] = "1"

        return {}

    return Setup(
        app,
        flask_login.login_required,
        install,
        allow=log_in,
        denials={"anonymous": lambda client: {}},
        denied_status=(302, 303) if login_view else (401,),
    )


def _basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def _httpauth() -> Setup:
    import flask_httpauth

    auth = flask_httpauth.HTTPBasicAuth()

    def install(mode: str) -> None:
        async def verify_async(username: str, password: str) -> bool:
            return username == "alice" and password == "secret"

        def verify(username: str, password: str) -> bool:
            return username == "alice" and password == "secret"

        auth.verify_password(verify if mode == "sync" else verify_async)

    return Setup(
        make_app(),
        auth.login_required,
        install,
        allow=lambda client: {"headers": _basic("alice", "secret")},
        denials={
            "no-credentials": lambda client: {},
            "wrong-password": lambda client: {"headers": _basic("alice", "wrong")},
        },
        denied_status=(401,),
    )


def _basicauth() -> Setup:
    import flask_basicauth

    checks: list[t.Any] = []

    base: t.Any = flask_basicauth.BasicAuth

    class Auth(base):
        def check_credentials(self, username: str, password: str) -> t.Any:
            return checks[-1](username, password)

    app = make_app()
    auth = Auth(app)

    def install(mode: str) -> None:
        async def check_async(username: str, password: str) -> bool:
            return username == "alice" and password == "secret"

        def check(username: str, password: str) -> bool:
            return username == "alice" and password == "secret"

        checks.append(check if mode == "sync" else check_async)

    return Setup(
        app,
        auth.required,
        install,
        allow=lambda client: {"headers": _basic("alice", "secret")},
        denials={
            "no-credentials": lambda client: {},
            "wrong-password": lambda client: {"headers": _basic("alice", "wrong")},
        },
        denied_status=(401,),
    )


def _cors() -> Setup:
    import flask_cors

    def effect(response: t.Any) -> None:
        origin = response.headers.get("Access-Control-Allow-Origin")
        assert origin == "https://example.org", response.headers

    return Setup(
        make_app(),
        flask_cors.cross_origin(),
        allow=lambda client: {"headers": {"Origin": "https://example.org"}},
        effect=effect,
    )


def _jwt() -> Setup:
    import flask_jwt_extended as jwt

    app = make_app()
    manager = jwt.JWTManager(app)

    def install(mode: str) -> None:
        async def lookup_async(header: t.Any, data: t.Any) -> str | None:
            return "alice" if data["sub"] == "alice" else None

        def lookup(header: t.Any, data: t.Any) -> str | None:
            return "alice" if data["sub"] == "alice" else None

        manager.user_lookup_loader(lookup if mode == "sync" else lookup_async)

    def token_for(user: str) -> Shaper:
        def shape(client: FlaskClient) -> Kwargs:
            with client.application.app_context():
                token = jwt.create_access_token(identity=user)

            return {"headers": {"Authorization": f"Bearer {token}"}}

        return shape

    return Setup(
        app,
        jwt.jwt_required(),
        install,
        allow=token_for("alice"),
        denials={"no-token": lambda client: {}, "unknown-user": token_for("mallory")},
        denied_status=(401,),
    )


def _compress() -> Setup:
    import flask_compress

    app = make_app(COMPRESS_REGISTER=False, COMPRESS_MIN_SIZE=0)
    compress = flask_compress.Compress(app)

    def effect(response: t.Any) -> None:
        # Set whenever the decorator's compressor ran (it leaves streams
        # uncompressed).
        assert "Accept-Encoding" in response.headers.get("Vary", ""), response.headers

    return Setup(
        app,
        compress.compressed(),
        allow=lambda client: {"headers": {"Accept-Encoding": "gzip"}},
        effect=effect,
    )


def _seasurf() -> Setup:
    import flask_seasurf

    # Testing mode switches SeaSurf off.
    app = make_app(TESTING=False)
    csrf = flask_seasurf.SeaSurf(app)
    return Setup(app, csrf.exempt, method="POST")


def _wtf() -> Setup:
    import flask_wtf.csrf

    app = make_app()
    csrf = flask_wtf.csrf.CSRFProtect(app)
    return Setup(app, csrf.exempt, method="POST")


def _talisman() -> Setup:
    import flask_talisman

    app = make_app()
    talisman = flask_talisman.Talisman(app, force_https=False)

    def effect(response: t.Any) -> None:
        assert response.headers.get("X-Frame-Options") == "DENY", response.headers

    return Setup(app, talisman(frame_options="DENY"), effect=effect)


def _principal() -> Setup:
    import flask_principal as fp
    from flask import request

    app = make_app()
    principal = fp.Principal(app, use_sessions=False)

    def install(mode: str) -> None:
        def load() -> fp.Identity:
            identity = fp.Identity(request.headers.get("X-User", "anonymous"))

            if identity.id == "admin":
                identity.provides.add(fp.RoleNeed("admin"))

            return identity

        async def load_async() -> fp.Identity:
            return load()

        principal.identity_loader(load if mode == "sync" else load_async)

    return Setup(
        app,
        fp.Permission(fp.RoleNeed("admin")).require(403),
        install,
        allow=lambda client: {"headers": {"X-User": "admin"}},
        denials={"not-admin": lambda client: {"headers": {"X-User": "bob"}}},
        denied_status=(403,),
    )


EXTENSIONS = [
    Extension("Flask-Login", "login_required", CRASHES, lambda: _flask_login(False)),
    Extension(
        "Flask-Login",
        "login_required with login_view (302)",
        CRASHES,
        lambda: _flask_login(True),
    ),
    Extension("Flask-HTTPAuth", "HTTPBasicAuth().login_required", WORKS, _httpauth),
    Extension(
        "Flask-BasicAuth",
        "BasicAuth().required",
        f"{ASYNC_VIEWS}; {FAILS_OPEN}",
        _basicauth,
    ),
    Extension("flask-cors", "cross_origin()", ASYNC_VIEWS, _cors),
    Extension("Flask-JWT-Extended", "jwt_required()", FAILS_OPEN, _jwt),
    Extension("Flask-Compress", "Compress().compressed()", ASYNC_VIEWS, _compress),
    Extension("Flask-SeaSurf", "SeaSurf().exempt", METHOD_VIEWS, _seasurf),
    Extension("Flask-WTF", "CSRFProtect().exempt", METHOD_VIEWS, _wtf),
    Extension("flask-talisman", "talisman(frame_options=...)", METHOD_VIEWS, _talisman),
    Extension(
        "Flask-Principal",
        "Permission(...).require(403)",
        f"{ASYNC_VIEWS}; {CRASHES}",
        _principal,
    ),
]

IDS = [
    f"{e.dist}:{e.decorator.partition('(')[0]}{'-302' if '302' in e.decorator else ''}"
    for e in EXTENSIONS
]


# --- ground truth by hand ---------------------------------------------------


def _quiet(call: cabc.Callable[[], t.Any]) -> t.Any:
    """Run ``call`` with warnings silenced and its garbage collected: a hand
    check observes behaviour only; an exception is its result.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")

        try:
            return call()
        except Exception as e:
            return e
        finally:
            gc.collect()


def _hand_app(setup: Setup, calls: list[str]) -> None:
    """Register a ``def`` view, an ``async def`` view and a ``MethodView``
    method, each decorated with the extension's decorator.
    """
    app, decorate, methods = setup.app, setup.decorator, [setup.method]

    def sync_view() -> str:
        calls.append("sync")
        return "ok"

    async def async_view() -> str:
        calls.append("async")
        return "ok"

    def handler(self: MethodView) -> str:
        calls.append("methodview")
        return "ok"

    handler.__name__ = setup.method.lower()
    app.add_url_rule("/sync", "sync", decorate(sync_view), methods=methods)
    app.add_url_rule("/async", "async", decorate(async_view), methods=methods)
    view_class = type("Hand", (MethodView,), {setup.method.lower(): decorate(handler)})
    app.add_url_rule("/mv", view_func=view_class.as_view("mv"), methods=methods)


def _allowed(setup: Setup, path: str, calls: list[str]) -> bool:
    client = setup.app.test_client()
    response = _quiet(
        lambda: client.open(path, method=setup.method, **setup.allow(client))
    )

    if isinstance(response, Exception) or response.status_code != 200 or not calls:
        return False

    if setup.effect is not None:
        try:
            setup.effect(response)
        except AssertionError:
            return False

    return True


def _denied(setup: Setup, path: str, calls: list[str]) -> str:
    """``"refused"`` when every denial is refused with one of its statuses
    and the view not run, ``"reached the view"`` when one ran it, else
    ``"error"``.
    """
    for shape in setup.denials.values():
        client = setup.app.test_client()
        response = _quiet(functools.partial(_send, setup, client, path, shape))

        if calls:
            return "reached the view"

        if isinstance(response, Exception) or (
            response.status_code not in setup.denied_status
        ):
            return "error"

    return "refused"


def _send(setup: Setup, client: FlaskClient, path: str, shape: Shaper) -> t.Any:
    return client.open(path, method=setup.method, **shape(client))


def hand_verdict(extension: Extension) -> str:
    """The verdict from plain test-client requests, independent of the suite."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")

        try:
            return _hand_verdict(extension)
        finally:
            # Collect what the failed requests left (un-awaited coroutines
            # held by tracebacks) while warnings are still silenced.
            gc.collect()


def _hand_verdict(extension: Extension) -> str:
    results: dict[tuple[str, str | None], tuple[bool, str]] = {}
    modes: list[str | None] = (
        [None] if extension.setup().install is None else ["sync", "async"]
    )

    for mode in modes:
        for path in ("/sync", "/async", "/mv"):
            setup = extension.setup()

            if mode is not None:
                assert setup.install is not None
                setup.install(mode)

            calls: list[str] = []
            _hand_app(setup, calls)
            allowed = _allowed(setup, path, calls)
            calls.clear()
            denied = _denied(setup, path, calls)
            results[path, mode] = (allowed, denied)

    plain = [m for m in modes if m != "async"]
    found: list[str] = []

    works = (True, "refused")

    if not all(results["/sync", m] == works for m in plain):
        found.append("fails on def views")
    if not all(results["/async", m] == works for m in plain):
        found.append(ASYNC_VIEWS)
    elif not all(results["/mv", m] == works for m in plain):
        found.append(METHOD_VIEWS)

    if "async" in modes:
        allowed, denied = results["/sync", "async"]

        if denied == "reached the view":
            found.append(FAILS_OPEN)
        elif not allowed or denied != "refused":
            found.append(CRASHES)

    return "; ".join(found) or WORKS


def suite_verdict(outcomes: list[Outcome]) -> str:
    """The verdict the suite's required failures give."""
    failed = [o for o in outcomes if o.status == "failed"]
    plain = {o.kind for o in failed if o.mode != "async"}
    found: list[str] = []

    if plain - ASYNC_KINDS - METHODVIEW_KINDS or (
        "sync-methodview" in plain and plain - METHODVIEW_KINDS
    ):
        found.append("fails on def views")
    elif plain and plain <= ASYNC_KINDS:
        found.append(ASYNC_VIEWS)
    elif plain == METHODVIEW_KINDS:
        found.append(METHOD_VIEWS)

    in_async = [o for o in failed if o.mode == "async" and o.kind not in plain]

    if any(o.fail_open for o in in_async):
        found.append(FAILS_OPEN)
    elif in_async:
        found.append(CRASHES)

    return "; ".join(found) or WORKS


@pytest.mark.parametrize("extension", EXTENSIONS, ids=IDS)
def test_ground_truth_by_hand(extension: Extension) -> None:
    """Plain test-client requests give the verdict the table states."""
    assert hand_verdict(extension) == extension.verdict


@pytest.mark.parametrize("extension", EXTENSIONS, ids=IDS)
def test_suite_verdict(extension: Extension, asyncext_shared_loop: t.Any) -> None:
    """The suite's failures give the same verdict."""

    async def nothing() -> None:
        pass

    def drain() -> None:
        # The shared loop keeps the context of its last call, hence the last
        # request's app context and ``g``, until its next call: run one
        # between checks, so that what the last request left (an un-awaited
        # callback coroutine) is not collected in the next check's request.
        if asyncext_shared_loop is not None:
            asyncext_shared_loop.async_to_sync(nothing)()
            gc.collect()

    # What the process holds now is no garbage of the checks: leave it out of
    # the collections that drain() makes, which then take a fraction of the
    # time (10.6 s down to 1.5 s for one extension, measured alone).
    gc.collect()
    gc.freeze()

    try:
        with warnings.catch_warnings():
            # Un-awaited callback coroutines that outlive a request (kept by
            # the extension) are collected here, not in the request that made
            # them.
            warnings.simplefilter("ignore", RuntimeWarning)
            outcomes = run_all(extension.subject(drain))
            drain()
            gc.collect()
    finally:
        gc.unfreeze()

    assert suite_verdict(outcomes) == extension.verdict
    fail_open = {o.param_id for o in outcomes if o.fail_open}
    assert bool(fail_open) == (FAILS_OPEN in extension.verdict)


TABLE = pathlib.Path(__file__).parent.parent / "docs" / "testing" / "extensions.rst.inc"


def docs_table() -> str:
    rows = [
        (
            e.dist,
            e.version,
            f"``{e.decorator}``",
            e.verdict,
            "; ".join(MEANINGS[v] for v in e.verdict.split("; ")),
        )
        for e in EXTENSIONS
    ]
    lines = [
        ".. list-table::",
        "    :header-rows: 1",
        "",
        "    * - Extension",
        "      - Version",
        "      - Decorator",
        "      - Verdict",
        "      - What it means",
    ]

    for row in rows:
        lines.append(f"    * - {row[0]}")
        lines.extend(f"      - {cell}" for cell in row[1:])

    return "\n".join(lines) + "\n"


def test_docs_table() -> None:
    """The docs' table is generated from EXTENSIONS (run this module as a
    script to rewrite it).
    """
    assert TABLE.read_text() == docs_table()


def test_pinned() -> None:
    """The versions the table names are the ones pinned for the tests."""
    pyproject = (pathlib.Path(__file__).parent.parent / "pyproject.toml").read_text()

    for extension in EXTENSIONS:
        assert f'"{extension.dist.lower()}=={extension.version}' in pyproject.lower()


if __name__ == "__main__":
    TABLE.write_text(docs_table())
