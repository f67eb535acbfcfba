"""The conformance suite extension authors subclass in their own tests."""

from __future__ import annotations

import collections.abc as cabc
import typing as t

import pytest
from flask import Flask
from flask.testing import FlaskClient

from ._apps import make_app
from ._apps import VIEW_KINDS
from ._checks import callback_modes
from ._checks import Check
from ._checks import check_keys
from ._checks import CHECKS
from ._checks import InstallCallbacks
from ._checks import param_id
from ._checks import run_check
from ._checks import Subject

DOCS_PAGE = "https://flask-asyncext.readthedocs.io/en/latest/testing/"

#: Where a conformance test leaves the label of its matrix row.
ROW_LABEL = pytest.StashKey[str]()

_MISSING_DECORATOR = (
    "{cls} does not override the 'decorator' fixture. Add a fixture named"
    " 'decorator' to the class that returns the decorator under test, as"
    " shown in 'Testing your decorators': " + DOCS_PAGE
)


def describe(decorator: object) -> str:
    """A short name for a decorator: its qualified name without
    ``<locals>``, or its ``repr``.
    """
    name = getattr(decorator, "__qualname__", None)

    if not isinstance(name, str):
        return repr(decorator)

    return name.replace(".<locals>", "")


def strict_from_ini(config: pytest.Config) -> bool:
    """The ``asyncext_strict`` ini option, ``False`` when the plugin that
    declares it is disabled.
    """
    try:
        return bool(config.getini("asyncext_strict"))
    except ValueError:
        return False


class DecoratorConformance:
    """The conformance suite for a view decorator. Subclass it in a test
    module (name the subclass ``Test...`` so pytest collects it), override
    the ``decorator`` fixture, and every check runs on every view kind.

    .. code-block:: python

        from flask_asyncext.testing import DecoratorConformance

        class TestLoginRequired(DecoratorConformance):
            blocks_requests = True

            @pytest.fixture
            def decorator(self):
                return login_required

            def allow(self, client):
                return {"headers": {"X-Api-Key": "good"}}

    Test names are public API: they can be selected with ``-k`` and named
    in :attr:`expected_failures`.

    .. versionadded:: 0.1
    """

    #: Whether the decorator refuses some requests; :meth:`deny` then
    #: prepares a request it must refuse with one of :attr:`denied_status`.
    blocks_requests: t.ClassVar[bool] = False

    #: The statuses a refused request may answer with.
    denied_status: t.ClassVar[tuple[int, ...]] = (401, 403)

    #: Checks known to fail, as strict xfails: a test name, or a test name
    #: with a parameter id in brackets, mapped to the reason.
    expected_failures: t.ClassVar[cabc.Mapping[str, str]] = {}

    #: Whether a failed recommended check fails the run. ``None`` uses the
    #: ``asyncext_strict`` ini option.
    strict: t.ClassVar[bool | None] = None

    @pytest.fixture
    def decorator(self) -> cabc.Callable[..., t.Any]:
        """The decorator under test. Override this fixture."""
        pytest.fail(_MISSING_DECORATOR.format(cls=type(self).__name__), pytrace=False)

    @pytest.fixture
    def app(self) -> Flask:
        """The app each check registers its views on, a new one per test.
        Override it to initialise the extension, starting from
        :func:`~flask_asyncext.testing.make_app`.
        """
        return make_app()

    def allow(self, client: FlaskClient) -> cabc.Mapping[str, t.Any]:
        """Prepare ``client`` for a request the decorator lets through (log
        in, set a cookie) and return extra keyword arguments for
        :meth:`~werkzeug.test.Client.open`, such as ``headers``.
        """
        return {}

    def deny(self, client: FlaskClient) -> cabc.Mapping[str, t.Any]:
        """Like :meth:`allow`, for a request the decorator must refuse.
        Used when :attr:`blocks_requests` is true.
        """
        return {}

    def install_callbacks(self, app: Flask, mode: str) -> None:
        """Register the extension's user callbacks on ``app``: plain ``def``
        versions when ``mode`` is ``"sync"``, ``async def`` versions when it
        is ``"async"``. When a subclass overrides it, every request check
        runs in both modes.
        """

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        check = CHECKS.get(metafunc.definition.originalname)

        if check is None or "asyncext_view_kind" not in metafunc.fixturenames:
            return

        modes = callback_modes(self._asyncext_callbacks())
        check_keys(type(self).expected_failures, modes)
        metafunc.parametrize(
            ("asyncext_view_kind", "asyncext_callback_mode"),
            [
                pytest.param(
                    kind,
                    mode,
                    id=param_id(kind, mode),
                    marks=self._asyncext_marks(check, param_id(kind, mode)),
                )
                for mode in (modes if check.uses_requests else (None,))
                for kind in VIEW_KINDS
            ],
        )

    def _asyncext_marks(self, check: Check, param: str) -> list[pytest.MarkDecorator]:
        """A strict xfail mark when :attr:`expected_failures` lists the
        check on that parameter id, or the whole check.
        """
        failures = type(self).expected_failures
        reason = failures.get(f"{check.name}[{param}]", failures.get(check.name))

        if reason is None:
            return []

        return [pytest.mark.xfail(reason=reason, strict=True)]

    def _asyncext_callbacks(self) -> InstallCallbacks | None:
        """:meth:`install_callbacks` if the subclass overrides it."""
        if type(self).install_callbacks is DecoratorConformance.install_callbacks:
            return None

        return self.install_callbacks

    def _asyncext_subject(
        self, decorator: cabc.Callable[..., t.Any], make: cabc.Callable[[], Flask]
    ) -> Subject:
        return Subject(
            decorator=decorator,
            make_app=make,
            blocks_requests=self.blocks_requests,
            denied_status=tuple(self.denied_status),
            allow=self.allow,
            deny=self.deny,
            install_callbacks=self._asyncext_callbacks(),
        )

    def _asyncext_run(
        self,
        request: pytest.FixtureRequest,
        app: Flask,
        decorator: cabc.Callable[..., t.Any],
        kind: str,
        mode: str | None,
    ) -> None:
        check = CHECKS[request.node.originalname]
        request.node.stash[ROW_LABEL] = f"{type(self).__name__} ({describe(decorator)})"
        outcome = run_check(
            check, self._asyncext_subject(decorator, lambda: app), kind, mode
        )

        if outcome.status == "skipped":
            pytest.skip(outcome.message)

        if outcome.status == "failed":
            strict = self.strict

            if strict is None:
                strict = strict_from_ini(request.config)

            if check.level == "recommended" and not strict:
                pytest.xfail(f"recommended, {outcome.message}")

            pytest.fail(outcome.message, pytrace=False)

    def test_calling_convention_kept(
        self,
        request: pytest.FixtureRequest,
        app: Flask,
        decorator: cabc.Callable[..., t.Any],
        asyncext_view_kind: str,
        asyncext_callback_mode: str | None,
    ) -> None:
        """Recommended: an ``async def`` view stays an ``async def`` (as
        :func:`inspect.iscoroutinefunction` sees it) and a ``def`` view a
        ``def``, so Flask runs an async view in one event loop.
        """
        self._asyncext_run(
            request, app, decorator, asyncext_view_kind, asyncext_callback_mode
        )

    def test_metadata_kept(
        self,
        request: pytest.FixtureRequest,
        app: Flask,
        decorator: cabc.Callable[..., t.Any],
        asyncext_view_kind: str,
        asyncext_callback_mode: str | None,
    ) -> None:
        """The view's name, qualified name, module, docstring, attributes and
        ``__wrapped__`` are kept (:func:`functools.wraps`).
        """
        self._asyncext_run(
            request, app, decorator, asyncext_view_kind, asyncext_callback_mode
        )

    def test_signature_kept(
        self,
        request: pytest.FixtureRequest,
        app: Flask,
        decorator: cabc.Callable[..., t.Any],
        asyncext_view_kind: str,
        asyncext_callback_mode: str | None,
    ) -> None:
        """:func:`inspect.signature` of the decorated view is the view's."""
        self._asyncext_run(
            request, app, decorator, asyncext_view_kind, asyncext_callback_mode
        )

    def test_allowed_request_reaches_view(
        self,
        request: pytest.FixtureRequest,
        app: Flask,
        decorator: cabc.Callable[..., t.Any],
        asyncext_view_kind: str,
        asyncext_callback_mode: str | None,
    ) -> None:
        """A request prepared by :meth:`allow` runs the view once, with its
        URL arguments, and its body comes back unchanged.
        """
        self._asyncext_run(
            request, app, decorator, asyncext_view_kind, asyncext_callback_mode
        )

    def test_denied_request_never_runs_view(
        self,
        request: pytest.FixtureRequest,
        app: Flask,
        decorator: cabc.Callable[..., t.Any],
        asyncext_view_kind: str,
        asyncext_callback_mode: str | None,
    ) -> None:
        """A request prepared by :meth:`deny` answers one of
        :attr:`denied_status` and never runs the view body. Skipped unless
        :attr:`blocks_requests`.
        """
        self._asyncext_run(
            request, app, decorator, asyncext_view_kind, asyncext_callback_mode
        )

    def test_response_shapes_pass_through(
        self,
        request: pytest.FixtureRequest,
        app: Flask,
        decorator: cabc.Callable[..., t.Any],
        asyncext_view_kind: str,
        asyncext_callback_mode: str | None,
    ) -> None:
        """Every value Flask accepts from a view passes through: ``str``,
        ``bytes``, ``dict``, ``list``, tuples with a status and headers, a
        :class:`~flask.Response` and a ``stream_with_context`` generator.
        On Flask < 3.1.2 the generator is left out on async view kinds:
        Flask itself cannot stream it from an ``async def`` view there
        (pallets/flask#5774).
        """
        self._asyncext_run(
            request, app, decorator, asyncext_view_kind, asyncext_callback_mode
        )

    def test_exceptions_reach_error_handlers(
        self,
        request: pytest.FixtureRequest,
        app: Flask,
        decorator: cabc.Callable[..., t.Any],
        asyncext_view_kind: str,
        asyncext_callback_mode: str | None,
    ) -> None:
        """An exception raised in the view reaches the app's error handler
        for its type.
        """
        self._asyncext_run(
            request, app, decorator, asyncext_view_kind, asyncext_callback_mode
        )

    def test_abort_reaches_error_handlers(
        self,
        request: pytest.FixtureRequest,
        app: Flask,
        decorator: cabc.Callable[..., t.Any],
        asyncext_view_kind: str,
        asyncext_callback_mode: str | None,
    ) -> None:
        """:func:`flask.abort` in the view reaches the app's handler for
        that status.
        """
        self._asyncext_run(
            request, app, decorator, asyncext_view_kind, asyncext_callback_mode
        )

    def test_context_visible_in_view(
        self,
        request: pytest.FixtureRequest,
        app: Flask,
        decorator: cabc.Callable[..., t.Any],
        asyncext_view_kind: str,
        asyncext_callback_mode: str | None,
    ) -> None:
        """``g`` and ``session`` set in a ``before_request`` function, and
        ``request``, are visible in the view.
        """
        self._asyncext_run(
            request, app, decorator, asyncext_view_kind, asyncext_callback_mode
        )

    def test_stacks_with_itself(
        self,
        request: pytest.FixtureRequest,
        app: Flask,
        decorator: cabc.Callable[..., t.Any],
        asyncext_view_kind: str,
        asyncext_callback_mode: str | None,
    ) -> None:
        """The decorator applied twice still allows and denies correctly."""
        self._asyncext_run(
            request, app, decorator, asyncext_view_kind, asyncext_callback_mode
        )

    def test_stacks_under_wraps_decorator(
        self,
        request: pytest.FixtureRequest,
        app: Flask,
        decorator: cabc.Callable[..., t.Any],
        asyncext_view_kind: str,
        asyncext_callback_mode: str | None,
    ) -> None:
        """Below a plain :func:`functools.wraps` decorator, the decorator
        still allows and denies correctly.
        """
        self._asyncext_run(
            request, app, decorator, asyncext_view_kind, asyncext_callback_mode
        )

    def test_stacks_over_wraps_decorator(
        self,
        request: pytest.FixtureRequest,
        app: Flask,
        decorator: cabc.Callable[..., t.Any],
        asyncext_view_kind: str,
        asyncext_callback_mode: str | None,
    ) -> None:
        """Above a plain :func:`functools.wraps` decorator, the decorator
        still allows and denies correctly.
        """
        self._asyncext_run(
            request, app, decorator, asyncext_view_kind, asyncext_callback_mode
        )

    def test_one_event_loop_per_request(
        self,
        request: pytest.FixtureRequest,
        app: Flask,
        decorator: cabc.Callable[..., t.Any],
        asyncext_view_kind: str,
        asyncext_callback_mode: str | None,
    ) -> None:
        """Recommended: a request uses at most one event loop (none for a
        ``def`` view with sync callbacks), counted as the loops created
        during the request plus the loop the view ran in.
        """
        self._asyncext_run(
            request, app, decorator, asyncext_view_kind, asyncext_callback_mode
        )
