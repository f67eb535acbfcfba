"""The apps and the probe views the conformance checks run against."""

from __future__ import annotations

import asyncio
import collections.abc as cabc
import dataclasses
import functools
import importlib
import importlib.util
import inspect
import sys
import typing as t

import flask
import flask.views

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

#: The kinds of app the checks can run on: Flask apps, and Quart apps when
#: Quart is installed.
APP_KINDS: tuple[str, ...] = ("flask", "quart")

#: The view kinds of a Quart app, in the same order: ``quart-`` and the
#: Flask view kind's id, except that Quart's ``as_view`` hands
#: ``View.decorators`` an ``async def``.
QUART_VIEW_KINDS: tuple[str, ...] = tuple(
    "quart-" + kind.replace("sync-view-decorators", "async-view-decorators")
    for kind in VIEW_KINDS
)


def view_kinds(app_kind: str) -> tuple[str, ...]:
    """The view kinds of an app kind, in the order the matrix shows them."""
    return QUART_VIEW_KINDS if app_kind == "quart" else VIEW_KINDS


def app_kind_of(view_kind: str) -> str:
    """The app kind a view kind's id names: ``"quart"`` for ``quart-...``,
    else ``"flask"``.
    """
    return "quart" if view_kind.startswith("quart-") else "flask"


def installed_app_kinds() -> tuple[str, ...]:
    """The app kinds this process can run: ``flask``, and ``quart`` when
    Quart can be imported.
    """
    if importlib.util.find_spec("quart") is None:
        return APP_KINDS[:1]

    return APP_KINDS


def check_app_kinds(value: object, owner: str = "app_kinds") -> tuple[str, ...]:
    """``value`` as a tuple of app kinds, without the ones not installed.

    :raise ValueError: Something other than a non-empty collection of
        :data:`APP_KINDS`, with a message naming ``owner``.
    """
    if isinstance(value, (str, bytes)) or not isinstance(value, cabc.Collection):
        items: tuple[object, ...] = ()
    else:
        items = tuple(t.cast("cabc.Collection[object]", value))

    if not items or any(item not in APP_KINDS for item in items):
        raise ValueError(
            f"{owner} must be a non-empty collection of app kinds out of"
            f" {APP_KINDS}, such as ('flask',); got {value!r}"
        )

    installed = installed_app_kinds()
    return tuple(kind for kind in APP_KINDS if kind in items and kind in installed)


@dataclasses.dataclass(frozen=True)
class Framework:
    """What the probe views and the checks use of an app kind's framework:
    its context proxies, helpers and classes.
    """

    app_kind: str
    app_class: type[t.Any]
    g: t.Any
    session: t.Any
    request: t.Any
    abort: cabc.Callable[[int], t.NoReturn]
    response_class: type[t.Any]
    blueprint_class: type[t.Any]
    view_class: type[t.Any]
    method_view_class: type[t.Any]
    #: A streamed body: ``"probe "``, then the session's marker, read while
    #: the response streams.
    stream: cabc.Callable[[], object]


def _flask_stream() -> object:
    def generate() -> cabc.Iterator[str]:
        yield "probe "
        yield flask.session.get("asyncext_marker", "no context")

    return flask.stream_with_context(generate())


FLASK = Framework(
    "flask",
    flask.Flask,
    flask.g,
    flask.session,
    flask.request,
    flask.abort,
    flask.Response,
    flask.Blueprint,
    flask.views.View,
    flask.views.MethodView,
    _flask_stream,
)


@functools.cache
def _quart() -> Framework:
    quart = importlib.import_module("quart")
    views = importlib.import_module("quart.views")

    def stream() -> object:
        async def generate() -> cabc.AsyncIterator[str]:
            yield "probe "
            yield quart.session.get("asyncext_marker", "no context")

        # Quart copies the request context when it decorates.
        return quart.stream_with_context(generate)()

    return Framework(
        "quart",
        quart.Quart,
        quart.g,
        quart.session,
        quart.request,
        quart.abort,
        quart.Response,
        quart.Blueprint,
        views.View,
        views.MethodView,
        stream,
    )


def framework(app_kind: str) -> Framework:
    """The framework of an app kind; importing Quart for ``"quart"``."""
    return _quart() if app_kind == "quart" else FLASK


def app_kind_of_app(app: object) -> str | None:
    """The app kind of an app object, or ``None`` when it is neither a Flask
    nor (with Quart imported) a Quart app.
    """
    if isinstance(app, flask.Flask):
        return "flask"

    quart = sys.modules.get("quart")

    if quart is not None and isinstance(app, quart.Quart):
        return "quart"

    return None


#: The default app's secret key: long enough for every common signer (PyJWT
#: warns about HMAC keys shorter than the hash, up to 64 bytes for HS512).
SECRET_KEY = "flask-asyncext-conformance-" + "0123456789abcdef" * 4


def make_app(
    import_name: str = __name__, *, app_kind: str = "flask", **config: t.Any
) -> t.Any:
    """Create the app a conformance check runs against when the subject does
    not provide one: testing mode on, a secret key long enough for every
    common signer so that the session and tokens work, then ``config``.

    Start from it when overriding the ``app`` fixture, then initialise the
    extension under test:

    .. code-block:: python

        @pytest.fixture
        def app(self, asyncext_app_kind):
            app = make_app(app_kind=asyncext_app_kind)
            login_manager.init_app(app)
            return app

    Some extensions switch themselves off in testing mode (Flask-SeaSurf):
    pass ``TESTING=False``.

    :param import_name: Passed to the app class.
    :param app_kind: ``"flask"`` for a :class:`~flask.Flask` app,
        ``"quart"`` for a :class:`quart.Quart` one.
    :param config: Configuration keys set last, such as ``TESTING=False``.

    .. versionchanged:: 0.1
        Takes ``app_kind`` and configuration keys.

    .. versionadded:: 0.1
    """
    if app_kind not in APP_KINDS:
        raise ValueError(f"app_kind must be one of {APP_KINDS}; got {app_kind!r}")

    app = framework(app_kind).app_class(import_name)
    app.config["TESTING"] = True
    app.config["SECRET_KEY"] = SECRET_KEY
    for key, value in config.items():
        app.config[key] = value

    return app


ENDPOINT = "asyncext_probe"
RULE = "/asyncext-probe/<int:item_id>/<name>"
BLUEPRINT_PREFIX = "/asyncext-blueprint"


class Probe:
    """A view body shared by every view kind: it records each call, the
    event loop it ran in and what it saw of Flask's context, then does what
    the check asked (:attr:`action`).
    """

    def __init__(self, prefix: str, framework: Framework = FLASK) -> None:
        self.prefix = prefix
        self.framework = framework
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
        fw = self.framework
        self.seen = {
            "g": fw.g.get("asyncext_marker"),
            "session": fw.session.get("asyncext_marker"),
            "path": fw.request.path,
            "view_args": fw.request.view_args,
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
    def get(self: object, item_id: int, name: str, **injected: object) -> object:
        """Answer a conformance probe."""
        return probe.hit(item_id, name, injected)

    return get


def _async_method(probe: Probe) -> _View:
    async def get(self: object, item_id: int, name: str, **injected: object) -> object:
        """Answer a conformance probe."""
        return await probe.hit_async(item_id, name, injected)

    return get


def register_probe(
    app: t.Any,
    kind: str,
    decorate: Decorate,
    *,
    method: str = "GET",
    injected: tuple[str, ...] = (),
) -> Probe:
    """Register a probe view of the given kind on ``app`` (a Flask app, or a
    Quart app for a ``quart-`` kind), answering ``method``, decorated with
    ``decorate`` where that kind puts its decorators, and return the probe.
    """
    fw = framework(app_kind_of(kind))
    convention, _, shape = kind.removeprefix("quart-").partition("-")
    is_async = convention == "async"
    methods = allowed_methods = [method]

    if shape == "blueprint":
        probe = Probe(BLUEPRINT_PREFIX, fw)
        blueprint = fw.blueprint_class("asyncext_blueprint", __name__)
        blueprint.add_url_rule(
            RULE,
            ENDPOINT,
            decorate(_function(probe, is_async, injected)),
            methods=methods,
        )
        app.register_blueprint(blueprint, url_prefix=BLUEPRINT_PREFIX)
        return probe

    probe = Probe("", fw)

    if shape == "methodview":
        view_class: t.Any = type(
            "ProbeView",
            (fw.method_view_class,),
            {
                method.lower(): decorate(
                    _method(probe, is_async, injected, method.lower())
                ),
                "__module__": __name__,
            },
        )
        view = view_class.as_view(ENDPOINT)
    elif shape == "view-decorators":
        # Flask's as_view hands the decorators a def, Quart's an async def.
        dispatch = _method(probe, is_async, injected)
        view_class = type(
            "DecoratedView",
            (fw.view_class,),
            {
                "methods": allowed_methods,
                "decorators": [decorate],
                "dispatch_request": dispatch,
                "__module__": __name__,
            },
        )
        view = view_class.as_view(ENDPOINT)
    else:
        # "function" and "add-url-rule" both end in add_url_rule; the first
        # goes through the route decorator as most apps do.
        view = decorate(_function(probe, is_async, injected))

        if shape == "function":
            app.route(RULE, endpoint=ENDPOINT, methods=methods)(view)
            return probe

    app.add_url_rule(RULE, ENDPOINT, view, methods=methods)
    return probe
