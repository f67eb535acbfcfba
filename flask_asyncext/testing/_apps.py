"""The app and the probe views the conformance checks run against."""

from __future__ import annotations

import asyncio
import collections.abc as cabc
import inspect
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


#: The default app's secret key: long enough for every common signer (PyJWT
#: warns about HMAC keys shorter than the hash, up to 64 bytes for HS512).
SECRET_KEY = "flask-asyncext-conformance-" + "0123456789abcdef" * 4


def make_app(import_name: str = __name__, **config: t.Any) -> Flask:
    """Create the app a conformance check runs against when the subject does
    not provide one: testing mode on, a secret key long enough for every
    common signer so that the session and tokens work, then ``config``.

    Start from it when overriding the ``app`` fixture, then initialise the
    extension under test:

    .. code-block:: python

        @pytest.fixture
        def app(self):
            app = make_app()
            login_manager.init_app(app)
            return app

    Some extensions switch themselves off in testing mode (Flask-SeaSurf):
    pass ``TESTING=False``.

    :param import_name: Passed to :class:`~flask.Flask`.
    :param config: Configuration keys set last, such as ``TESTING=False``.

    .. versionchanged:: 0.1
        Takes configuration keys.

    .. versionadded:: 0.1
    """
    app = Flask(import_name)
    app.config["TESTING"] = True
    app.config["SECRET_KEY"] = SECRET_KEY
    for key, value in config.items():
        app.config[key] = value

    return app


class Probe:
    """A view body shared by every view kind: it records each call, the
    event loop it ran in and what it saw of Flask's context, then does what
    the check asked (:attr:`action`).
    """

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.calls: list[tuple[object, object]] = []
        #: The keyword arguments the decorator injected, per call.
        self.injected: list[dict[str, object]] = []
        self.loops: list[asyncio.AbstractEventLoop] = []
        self.seen: dict[str, object] = {}
        self.action: cabc.Callable[[int, str], object] = default_action

    def url(self, item_id: int = 7, name: str = "alice") -> str:
        return f"{self.prefix}/asyncext-probe/{item_id}/{name}"

    def hit(self, item_id: int, name: str, injected: dict[str, object]) -> object:
        self.calls.append((item_id, name))
        self.injected.append(injected)
        self.seen = {
            "g": g.get("asyncext_marker"),
            "session": session.get("asyncext_marker"),
            "path": request.path,
            "view_args": request.view_args,
        }
        return self.action(item_id, name)

    async def hit_async(
        self, item_id: int, name: str, injected: dict[str, object]
    ) -> object:
        await asyncio.sleep(0)
        self.loops.append(asyncio.get_running_loop())
        return self.hit(item_id, name, injected)


def default_action(item_id: int, name: str) -> str:
    return f"probe {item_id} {name}"


def _declare(view: _View, injected: tuple[str, ...]) -> _View:
    """Mark a probe view and, when the decorator injects arguments, give it
    the signature it has for the decorator: its URL arguments, then those,
    by keyword.
    """
    vars(view)["asyncext_marker"] = "kept"

    if not injected:
        return view

    signature = inspect.signature(view)
    params = [p for p in signature.parameters.values() if p.kind != p.VAR_KEYWORD]
    params += [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY) for n in injected]
    vars(view)["__signature__"] = signature.replace(parameters=params)
    return view


def _function(probe: Probe, is_async: bool, injected: tuple[str, ...]) -> _View:
    view = _async_function(probe) if is_async else _sync_function(probe)
    return _declare(view, injected)


def _sync_function(probe: Probe) -> _View:
    def probe_view(item_id: int, name: str, **injected: object) -> object:
        """Answer a conformance probe."""
        return probe.hit(item_id, name, injected)

    return probe_view


def _async_function(probe: Probe) -> _View:
    async def probe_view(item_id: int, name: str, **injected: object) -> object:
        """Answer a conformance probe."""
        return await probe.hit_async(item_id, name, injected)

    return probe_view


def _method(
    probe: Probe, is_async: bool, injected: tuple[str, ...], method: str = "get"
) -> _View:
    view = _async_method(probe) if is_async else _sync_method(probe)
    view.__name__ = view.__qualname__ = method
    return _declare(view, injected)


def _sync_method(probe: Probe) -> _View:
    def get(self: MethodView, item_id: int, name: str, **injected: object) -> object:
        """Answer a conformance probe."""
        return probe.hit(item_id, name, injected)

    return get


def _async_method(probe: Probe) -> _View:
    async def get(
        self: MethodView, item_id: int, name: str, **injected: object
    ) -> object:
        """Answer a conformance probe."""
        return await probe.hit_async(item_id, name, injected)

    return get


def register_probe(
    app: Flask,
    kind: str,
    decorate: Decorate,
    *,
    method: str = "GET",
    injected: tuple[str, ...] = (),
) -> Probe:
    """Register a probe view of the given kind on ``app``, answering
    ``method``, decorated with ``decorate`` where that kind puts its
    decorators, and return the probe.
    """
    is_async = kind.startswith("async-")
    shape = kind.partition("-")[2]
    methods = allowed_methods = [method]

    if shape == "blueprint":
        probe = Probe(BLUEPRINT_PREFIX)
        blueprint = Blueprint("asyncext_blueprint", __name__)
        blueprint.add_url_rule(
            RULE,
            ENDPOINT,
            decorate(_function(probe, is_async, injected)),
            methods=methods,
        )
        app.register_blueprint(blueprint, url_prefix=BLUEPRINT_PREFIX)
        return probe

    probe = Probe("")

    if shape == "methodview":
        view_class: type[MethodView] = type(
            "ProbeView",
            (MethodView,),
            {
                method.lower(): decorate(
                    _method(probe, is_async, injected, method.lower())
                ),
                "__module__": __name__,
            },
        )
        view = view_class.as_view(ENDPOINT)
    elif shape == "view-decorators":
        dispatch = _method(probe, False, injected)

        class DecoratedView(View):
            methods: t.ClassVar[cabc.Collection[str] | None] = allowed_methods
            decorators: t.ClassVar[list[cabc.Callable[..., t.Any]]] = [decorate]

            def dispatch_request(self, **kwargs: t.Any) -> ft.ResponseReturnValue:
                # Whatever the check set the probe to answer.
                return t.cast("ft.ResponseReturnValue", dispatch(self, **kwargs))

        view = DecoratedView.as_view(ENDPOINT)
    else:
        # "function" and "add-url-rule" both end in add_url_rule; the first
        # goes through the route decorator as most apps do.
        view = decorate(_function(probe, is_async, injected))

        if shape == "function":
            app.route(RULE, endpoint=ENDPOINT, methods=methods)(view)
            return probe

    app.add_url_rule(RULE, ENDPOINT, view, methods=methods)
    return probe
