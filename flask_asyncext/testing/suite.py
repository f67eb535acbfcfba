"""The conformance suite extension authors subclass in their own tests."""

from __future__ import annotations

import collections.abc as cabc
import inspect
import os
import pathlib
import typing as t

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from ._apps import app_kind_of
from ._apps import app_kind_of_app
from ._apps import APP_KINDS
from ._apps import check_app_kinds
from ._apps import make_app
from ._checks import Check
from ._checks import CHECKS
from ._harness import callback_modes
from ._harness import denied_statuses
from ._harness import describe
from ._harness import Effect
from ._harness import InstallCallbacks
from ._harness import ONE_DENIAL
from ._harness import Shaper
from ._harness import Subject
from ._policy import cases
from ._policy import check_keys
from ._policy import check_level
from ._policy import load_expected_failures
from ._policy import Outcome
from ._policy import param_id
from ._policy import Policy
from ._policy import run_settled

DOCS_PAGE = "https://flask-asyncext.readthedocs.io/en/latest/testing/"

#: Where a conformance test leaves the label of its matrix row.
ROW_LABEL = pytest.StashKey[str]()
#: Where a conformance test leaves whether it failed open.
FAIL_OPEN = pytest.StashKey[bool]()

_MISSING_DECORATOR = (
    "{cls} does not override the 'decorator' fixture. Add a fixture named"
    " 'decorator' to the class that returns the decorator under test, as"
    " shown in 'Testing your decorators': " + DOCS_PAGE
)

_WRONG_APP = (
    "{cls}'s 'app' fixture returned {got} for a check on {kind} apps."
    " Make the app the fixture 'asyncext_app_kind' names, with"
    " make_app(app_kind=asyncext_app_kind), or narrow {cls}.app_kinds to the"
    " app kinds the extension supports, such as ('flask',): " + DOCS_PAGE
)

ExpectedFailures = t.Union[cabc.Mapping[str, str], str, "os.PathLike[str]"]


def strict_from_ini(config: pytest.Config) -> bool:
    """The ``asyncext_strict`` ini option, ``False`` when the plugin that
    declares it is disabled.
    """
    try:
        return bool(config.getini("asyncext_strict"))
    except ValueError:
        return False


def level_from_ini(config: pytest.Config) -> int | None:
    """The ``asyncext_suite_level`` ini option, ``None`` when unset or when
    the plugin that declares it is disabled.

    :raise ValueError: A value that is not a suite level.
    """
    try:
        value = str(config.getini("asyncext_suite_level")).strip()
    except ValueError:
        return None

    if not value:
        return None

    try:
        level: object = int(value)
    except ValueError:
        level = value

    return check_level(level)


def act(outcome: Outcome) -> None:
    """End the running test as a settled outcome says."""
    if outcome.status == "skipped":
        pytest.skip(outcome.message)

    if outcome.status == "xfailed":
        pytest.xfail(outcome.message)

    if outcome.status == "failed":
        pytest.fail(outcome.message, pytrace=False)


class ConformanceCase:
    """What every test of :class:`DecoratorConformance` runs: one check on
    one view kind, in one callback mode, with one denial. Its tests get it
    from the ``asyncext_case`` fixture.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        suite: DecoratorConformance,
        request: pytest.FixtureRequest,
        subject: Subject,
        case: tuple[str, str | None, str | None],
    ) -> None:
        self._suite = suite
        self._request = request
        self.subject = subject
        #: The view kind's id, the callback mode and the denial's name.
        self.kind: str = case[0]
        self.mode: str | None = case[1]
        self.denial: str | None = case[2]

    def run(self) -> Outcome:
        """Run the check of the calling test and end it as the policy says:
        pass, fail, skip or xfail.
        """
        node = self._request.node
        check = CHECKS[node.originalname]
        node.stash[ROW_LABEL] = (
            f"{type(self._suite).__name__} ({describe(self.subject.decorator)})"
        )
        outcome = run_settled(
            check,
            self.subject,
            self.kind,
            self.mode,
            self.denial,
            self._suite._asyncext_policy(self._request.config),
        )
        node.stash[FAIL_OPEN] = outcome.status == "failed" and outcome.fail_open
        act(outcome)
        return outcome


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

    #: The statuses a refused request may answer with: an int or any
    #: collection of ints. ``(302, 303)`` for an extension that redirects
    #: to a login page.
    denied_status: t.ClassVar[int | cabc.Collection[int]] = (401, 403)

    #: The names of the denial shapes :meth:`deny` prepares (no credentials,
    #: a wrong password, an expired token); each is a parameter of the
    #: denied checks. Empty: :meth:`deny` prepares one denial.
    denials: t.ClassVar[cabc.Sequence[str]] = ()

    #: Checks known to fail, as strict xfails: a test name, or a test name
    #: with a parameter id in brackets, mapped to the reason; or the path of
    #: a file of them (see :func:`load_expected_failures`), relative to the
    #: test module.
    expected_failures: t.ClassVar[ExpectedFailures] = {}

    #: Whether a failed recommended check fails the run. ``None`` uses the
    #: ``asyncext_strict`` ini option.
    strict: t.ClassVar[bool | None] = None

    #: The suite level to run: the checks of that level only, so that a
    #: release that adds checks does not fail the run until the pin moves.
    #: ``None`` uses the ``asyncext_suite_level`` ini option, else the
    #: newest level.
    suite_level: t.ClassVar[int | None] = None

    #: The method the probe view answers and requests are sent with (a
    #: CSRF-protected ``"POST"``); :meth:`allow` and :meth:`deny` may add a
    #: body (``data``, ``json``).
    method: t.ClassVar[str] = "GET"

    #: Keyword arguments the decorator passes to the view (a parsed body):
    #: the probe view accepts them, and the allowed check asserts they came.
    injected: t.ClassVar[tuple[str, ...]] = ()

    #: Configuration of the default ``app`` fixture, passed to
    #: :func:`~flask_asyncext.testing.make_app`, e.g. ``{"TESTING": False}``
    #: for an extension that testing mode switches off.
    app_config: t.ClassVar[cabc.Mapping[str, t.Any]] = {}

    #: The kinds of app every check runs on: ``"flask"``, and ``"quart"``
    #: where Quart is installed (the view kinds of a Quart app are named
    #: ``quart-...``). Narrow it to ``("flask",)`` for an extension that
    #: works on Flask apps only.
    app_kinds: t.ClassVar[cabc.Collection[str]] = APP_KINDS

    @pytest.fixture
    def decorator(self) -> cabc.Callable[..., t.Any]:
        """The decorator under test. Override this fixture."""
        pytest.fail(_MISSING_DECORATOR.format(cls=type(self).__name__), pytrace=False)

    @pytest.fixture
    def asyncext_app_kind(self, request: pytest.FixtureRequest) -> str:
        """The app kind of the running check: ``"flask"`` or ``"quart"``
        (``"flask"`` in a test that is not one of the suite's).
        """
        callspec = getattr(request.node, "callspec", None)
        params: dict[str, object] = {} if callspec is None else callspec.params
        return app_kind_of(str(params.get("asyncext_view_kind", "")))

    @pytest.fixture
    def app(self, asyncext_app_kind: str) -> t.Any:
        """The app each check registers its views on, a new one per test: a
        Flask app, or a Quart app when ``asyncext_app_kind`` is ``"quart"``.
        Override it to initialise the extension, starting from
        :func:`~flask_asyncext.testing.make_app` (pass it
        ``app_kind=asyncext_app_kind`` and :attr:`app_config`).
        """
        return make_app(app_kind=asyncext_app_kind, **self.app_config)

    def allow(self, client: FlaskClient) -> cabc.Mapping[str, t.Any]:
        """Prepare ``client`` for a request the decorator lets through (log
        in, set a cookie) and return extra keyword arguments for
        :meth:`~werkzeug.test.Client.open`, such as ``headers``, ``data`` or
        ``json``. On a Quart app, ``client`` is Quart's test client, and the
        keyword arguments are those of its ``open``.
        """
        return {}

    def deny(self, client: FlaskClient, denial: str = "") -> cabc.Mapping[str, t.Any]:
        """Like :meth:`allow`, for a request the decorator must refuse. Used
        when :attr:`blocks_requests` is true. With :attr:`denials`, it is
        called with the name of each denial in turn. The denial must reach
        your extension's user callback (a wrong password, not a missing
        one), or an async callback that fails open is never seen.
        """
        return {}

    def install_callbacks(self, app: t.Any, mode: str) -> None:
        """Register the extension's user callbacks on ``app``: plain ``def``
        versions when ``mode`` is ``"sync"``, ``async def`` versions when it
        is ``"async"``. When a subclass overrides it, every request check
        runs in both modes.
        """

    def expect_effect(self, response: TestResponse) -> None:
        """Assert what the decorator does to an allowed response (a header it
        sets, an encoding): raise :exc:`AssertionError` to fail the check.
        When a subclass overrides it, it is called on every allowed response
        of every view kind and callback mode.
        """

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        check = CHECKS.get(metafunc.definition.originalname)

        if check is None or "asyncext_view_kind" not in metafunc.fixturenames:
            return

        cls = type(self)
        denied_statuses(cls.denied_status, f"{cls.__name__}.denied_status")
        modes = callback_modes(self._asyncext_callbacks())
        denials = self._asyncext_denials()
        # Keys may name the cases of an app kind not installed here.
        check_app_kinds(cls.app_kinds, f"{cls.__name__}.app_kinds")
        check_keys(self._asyncext_expected(), modes, denials, APP_KINDS)
        metafunc.parametrize(
            ("asyncext_view_kind", "asyncext_callback_mode", "asyncext_denial"),
            [
                pytest.param(kind, mode, denial, id=param_id(kind, mode, denial))
                for kind, mode, denial in cases(
                    check, modes, denials, self._asyncext_app_kinds()
                )
            ],
        )

    def _asyncext_app_kinds(self) -> tuple[str, ...]:
        """:attr:`app_kinds`, without those not installed."""
        cls = type(self)
        return check_app_kinds(cls.app_kinds, f"{cls.__name__}.app_kinds")

    def _asyncext_denials(self) -> list[str]:
        return list(type(self).denials) or [ONE_DENIAL]

    def _asyncext_expected(self) -> cabc.Mapping[str, str]:
        """:attr:`expected_failures`, read from its file when it is a path."""
        failures = type(self).expected_failures

        if isinstance(failures, cabc.Mapping):
            return failures

        path = pathlib.Path(failures)

        if not path.is_absolute():
            path = pathlib.Path(inspect.getfile(type(self))).parent / path

        return load_expected_failures(path)

    def _asyncext_policy(self, config: pytest.Config) -> Policy:
        cls = type(self)
        strict = strict_from_ini(config) if cls.strict is None else cls.strict
        level = cls.suite_level

        if level is None:
            level = level_from_ini(config)

        if level is None:
            return Policy(self._asyncext_expected(), strict)

        return Policy(self._asyncext_expected(), strict, check_level(level))

    def _asyncext_callbacks(self) -> InstallCallbacks | None:
        """:meth:`install_callbacks` if the subclass overrides it."""
        if type(self).install_callbacks is DecoratorConformance.install_callbacks:
            return None

        return self.install_callbacks

    def _asyncext_effect(self) -> Effect | None:
        """:meth:`expect_effect` if the subclass overrides it."""
        if type(self).expect_effect is DecoratorConformance.expect_effect:
            return None

        return self.expect_effect

    def _asyncext_deny(self, denial: str) -> Shaper:
        if not type(self).denials:
            return self.deny

        return lambda client: self.deny(client, denial)

    @pytest.fixture
    def asyncext_case(
        self,
        request: pytest.FixtureRequest,
        app: t.Any,
        decorator: cabc.Callable[..., t.Any],
        asyncext_app_kind: str,
        asyncext_view_kind: str,
        asyncext_callback_mode: str | None,
        asyncext_denial: str | None,
    ) -> ConformanceCase:
        """The check a test of the suite runs, on its view kind, callback
        mode and denial.
        """
        cls = type(self)
        got = app_kind_of_app(app)

        if got != asyncext_app_kind:
            pytest.fail(
                _WRONG_APP.format(
                    cls=cls.__name__,
                    kind=asyncext_app_kind,
                    got=(
                        f"a {type(app).__qualname__!r} object"
                        if got is None
                        else f"a {got.title()} app"
                    ),
                ),
                pytrace=False,
            )

        subject = Subject(
            decorator=decorator,
            make_app=lambda: app,
            blocks_requests=cls.blocks_requests,
            denied_status=denied_statuses(cls.denied_status),
            allow=self.allow,
            denials={d: self._asyncext_deny(d) for d in self._asyncext_denials()},
            install_callbacks=self._asyncext_callbacks(),
            method=cls.method,
            injected=tuple(cls.injected),
            effect=self._asyncext_effect(),
            app_kinds=(asyncext_app_kind,),
        )
        return ConformanceCase(
            self,
            request,
            subject,
            (asyncext_view_kind, asyncext_callback_mode, asyncext_denial),
        )

    def test_calling_convention_kept(self, asyncext_case: ConformanceCase) -> None:
        asyncext_case.run()

    def test_metadata_kept(self, asyncext_case: ConformanceCase) -> None:
        asyncext_case.run()

    def test_signature_kept(self, asyncext_case: ConformanceCase) -> None:
        asyncext_case.run()

    def test_allowed_request_reaches_view(self, asyncext_case: ConformanceCase) -> None:
        asyncext_case.run()

    def test_denied_request_never_runs_view(
        self, asyncext_case: ConformanceCase
    ) -> None:
        asyncext_case.run()

    def test_response_shapes_pass_through(self, asyncext_case: ConformanceCase) -> None:
        asyncext_case.run()

    def test_exceptions_reach_error_handlers(
        self, asyncext_case: ConformanceCase
    ) -> None:
        asyncext_case.run()

    def test_abort_reaches_error_handlers(self, asyncext_case: ConformanceCase) -> None:
        asyncext_case.run()

    def test_context_visible_in_view(self, asyncext_case: ConformanceCase) -> None:
        asyncext_case.run()

    def test_stacks_with_itself(self, asyncext_case: ConformanceCase) -> None:
        asyncext_case.run()

    def test_stacks_under_wraps_decorator(self, asyncext_case: ConformanceCase) -> None:
        asyncext_case.run()

    def test_stacks_over_wraps_decorator(self, asyncext_case: ConformanceCase) -> None:
        asyncext_case.run()

    def test_one_event_loop_per_request(self, asyncext_case: ConformanceCase) -> None:
        asyncext_case.run()


def _document(check: Check) -> str:
    prefix = "Recommended: " if check.level == "recommended" else ""
    return prefix + check.doc


# The tests' docstrings are the checks' own (one source for the docs too).
for _check in CHECKS.values():
    vars(DecoratorConformance)[_check.name].__doc__ = _document(_check)
