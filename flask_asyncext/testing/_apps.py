"""The app and the probe views the conformance checks run against."""

from __future__ import annotations

import asyncio
import collections.abc as cabc
import typing as t

from flask import Blueprint
from flask import Flask
from flask import g
from flask import request
from flask import session
from flask import typing as ft
from flask.views import MethodView
from flask.views import View

_View = cabc.Callable[..., t.Any]
#: What a check applies where a view kind puts its decorators.
Decorate = cabc.Callable[[_View], _View]

#: The view kinds every check runs on, in the order the matrix shows them.
#: An id says whether the decorator is handed a ``def`` or an ``async def``
#: function: ``View.decorators`` always receives a ``def`` (Flask's
#: ``as_view``), so it only comes as ``sync``.
VIEW_KINDS: tuple[str, ...] = (
    "sync-function",
    "async-function",
    "sync-methodview",
    "async-methodview",
    "sync-view-decorators",
    "sync-blueprint",
    "async-blueprint",
    "sync-add-url-rule",
    "async-add-url-rule",
)

ENDPOINT = "asyncext_probe"
RULE = "/asyncext-probe/<int:item_id>/<name>"
BLUEPRINT_PREFIX = "/asyncext-blueprint"


def make_app(import_name: str = __name__) -> Flask:
    """Create the app a conformance check runs against when the subject does
    not provide one: testing mode on, and a secret key so that the session
    works.

    Start from it when overriding the ``app`` fixture, then initialise the
    extension under test:

    .. code-block:: python

        @pytest.fixture
        def app(self):
            app = make_app()
            login_manager.init_app(app)
            return app

    :param import_name: Passed to :class:`~flask.Flask`.

    .. versionadded:: 0.1
    """
    app = Flask(import_name)
    app.config["TESTING"] = True
    app.config["SECRET_KEY"] = "flask-asyncext-conformance"
    return app


class Probe:
    """A view body shared by every view kind: it records each call, the
    event loop it ran in and what it saw of Flask's context, then does what
    the check asked (:attr:`action`).
    """

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.calls: list[tuple[object, object]] = []
        self.loops: list[asyncio.AbstractEventLoop] = []
        self.seen: dict[str, object] = {}
        self.action: cabc.Callable[[int, str], object] = default_action

    def url(self, item_id: int = 7, name: str = "alice") -> str:
        return f"{self.prefix}/asyncext-probe/{item_id}/{name}"

    def hit(self, item_id: int, name: str) -> object:
        self.calls.append((item_id, name))
        self.seen = {
            "g": g.get("asyncext_marker"),
            "session": session.get("asyncext_marker"),
            "path": request.path,
            "view_args": request.view_args,
        }
        return self.action(item_id, name)

    async def hit_async(self, item_id: int, name: str) -> object:
        await asyncio.sleep(0)
        self.loops.append(asyncio.get_running_loop())
        return self.hit(item_id, name)


def default_action(item_id: int, name: str) -> str:
    return f"probe {item_id} {name}"


def _function(probe: Probe, is_async: bool) -> _View:
    view = _async_function(probe) if is_async else _sync_function(probe)
    vars(view)["asyncext_marker"] = "kept"
    return view


def _sync_function(probe: Probe) -> _View:
    def probe_view(item_id: int, name: str) -> object:
        """Answer a conformance probe."""
        return probe.hit(item_id, name)

    return probe_view


def _async_function(probe: Probe) -> _View:
    async def probe_view(item_id: int, name: str) -> object:
        """Answer a conformance probe."""
        return await probe.hit_async(item_id, name)

    return probe_view


def _method(probe: Probe, is_async: bool) -> _View:
    view = _async_method(probe) if is_async else _sync_method(probe)
    vars(view)["asyncext_marker"] = "kept"
    return view


def _sync_method(probe: Probe) -> _View:
    def get(self: MethodView, item_id: int, name: str) -> object:
        """Answer a conformance probe."""
        return probe.hit(item_id, name)

    return get


def _async_method(probe: Probe) -> _View:
    async def get(self: MethodView, item_id: int, name: str) -> object:
        """Answer a conformance probe."""
        return await probe.hit_async(item_id, name)

    return get


def register_probe(app: Flask, kind: str, decorate: Decorate) -> Probe:
    """Register a probe view of the given kind on ``app``, decorated with
    ``decorate`` where that kind puts its decorators, and return the probe.
    """
    is_async = kind.startswith("async-")
    shape = kind.partition("-")[2]

    if shape == "blueprint":
        probe = Probe(BLUEPRINT_PREFIX)
        blueprint = Blueprint("asyncext_blueprint", __name__)
        blueprint.add_url_rule(
            RULE, ENDPOINT, decorate(_function(probe, is_async)), methods=["GET"]
        )
        app.register_blueprint(blueprint, url_prefix=BLUEPRINT_PREFIX)
        return probe

    probe = Probe("")

    if shape == "methodview":
        view_class: type[MethodView] = type(
            "ProbeView",
            (MethodView,),
            {"get": decorate(_method(probe, is_async)), "__module__": __name__},
        )
        view = view_class.as_view(ENDPOINT)
    elif shape == "view-decorators":
        dispatch = _method(probe, is_async=False)

        class DecoratedView(View):
            decorators: t.ClassVar[list[cabc.Callable[..., t.Any]]] = [decorate]

            def dispatch_request(self, **kwargs: t.Any) -> ft.ResponseReturnValue:
                # Whatever the check set the probe to answer.
                return t.cast("ft.ResponseReturnValue", dispatch(self, **kwargs))

        view = DecoratedView.as_view(ENDPOINT)
    else:
        # "function" and "add-url-rule" both end in add_url_rule; the first
        # goes through the route decorator as most apps do.
        view = decorate(_function(probe, is_async))

        if shape == "function":
            app.route(RULE, endpoint=ENDPOINT)(view)
            return probe

    app.add_url_rule(RULE, ENDPOINT, view, methods=["GET"])
    return probe
