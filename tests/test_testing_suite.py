"""The conformance suite run by pytester on decorators that pass and on
decorators broken on purpose, which must fail on exactly the expected ids.
"""

from __future__ import annotations

import collections.abc as cabc
import importlib.util
import itertools
import pathlib
import textwrap

import pytest

from flask_asyncext.testing import CHECKS
from flask_asyncext.testing import make_app
from flask_asyncext.testing import VIEW_KINDS

ASYNC_KINDS = [k for k in VIEW_KINDS if k.startswith("async-")]
REQUIRED = [c.name for c in CHECKS.values() if c.level == "required"]
REQUEST = [c.name for c in CHECKS.values() if c.uses_requests]
#: Required checks that make an allowed request.
ALLOWED = [
    n for n in REQUEST if n in REQUIRED and n != "test_denied_request_never_runs_view"
]
STACKED = [n for n in REQUEST if n.startswith("test_stacks_")]
HAS_PYTEST_ASYNCIO = importlib.util.find_spec("pytest_asyncio") is not None

INI = """
[pytest]
filterwarnings = error
xfail_strict = true
"""

#: Decorators shared by the subjects below: good ones made with the
#: toolkit, and ones broken on purpose.
DECORATORS = """
import functools
import inspect

from flask import abort
from flask import current_app
from flask import make_response
from flask import request

from flask_asyncext import after_view
from flask_asyncext import async_compatible_decorator
from flask_asyncext import before_view


@async_compatible_decorator
def require_key(view, /, *args, **kwargs):
    ok = yield current_app.extensions["key_checker"](request.headers.get("X-Key"))
    if not ok:
        abort(403)
    return (yield view(*args, **kwargs))


@before_view
def before(*args, **kwargs):
    return None


@after_view
def after(response):
    response.headers["X-After"] = "yes"


def calls_without_awaiting(view):
    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        return view(*args, **kwargs)
    return wrapper


def drops_wrapped(view):
    decorated = async_compatible_decorator(lambda view, *a, **k: view(*a, **k))(view)
    del decorated.__wrapped__
    return decorated


def fails_open(view):
    def allowed():
        return current_app.extensions["key_checker"](request.headers.get("X-Key"))

    if inspect.iscoroutinefunction(view):
        @functools.wraps(view)
        async def async_wrapper(*args, **kwargs):
            if not allowed():
                abort(403)
            return await view(*args, **kwargs)
        return async_wrapper

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        if not allowed():
            abort(403)
        return view(*args, **kwargs)
    return wrapper


async def _refuse():
    abort(403)


def crashes_when_refusing(view):
    if inspect.iscoroutinefunction(view):
        @functools.wraps(view)
        async def async_wrapper(*args, **kwargs):
            if request.headers.get("X-Key") != "good":
                return current_app.ensure_sync(_refuse)()
            return await view(*args, **kwargs)
        return async_wrapper

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        if request.headers.get("X-Key") != "good":
            return current_app.ensure_sync(_refuse)()
        return view(*args, **kwargs)
    return wrapper


def only_in_view_decorators(view):
    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        response = make_response(view(*args, **kwargs))
        response.headers["X-Frame-Options"] = "DENY"
        return response
    return wrapper
"""

SUBJECT = """
import pytest

from flask_asyncext.testing import DecoratorConformance

from decorators import {decorator} as subject


class KeyRequired(DecoratorConformance):
    blocks_requests = True
    denied_status = (403,)

    def install_callbacks(self, app, mode):
        if mode == "sync":
            def check(key):
                return key == "good"
        else:
            async def check(key):
                return key == "good"
        app.extensions["key_checker"] = check

    def allow(self, client):
        return {{"headers": {{"X-Key": "good"}}}}

    def deny(self, client):
        return {{"headers": {{"X-Key": "bad"}}}}


class TestSubject({base}):
    app_kinds = {app_kinds!r}
{body}

    @pytest.fixture
    def decorator(self):
        return subject
"""


def make_ini(pytester: pytest.Pytester, extra: str = "") -> None:
    """Write the ini file of a pytester run: warnings are errors."""
    ini = INI + extra

    if HAS_PYTEST_ASYNCIO:
        ini += "asyncio_default_fixture_loop_scope = function\n"

    pytester.makeini(ini)


def make_subject(
    pytester: pytest.Pytester,
    decorator: str,
    base: str = "DecoratorConformance",
    body: str = "pass",
    app_kinds: tuple[str, ...] = ("flask",),
) -> None:
    """Write a subject of the suite; on Flask apps only unless told (the
    Quart app kind is tested in tests/test_quart.py).
    """
    make_ini(pytester)
    pytester.makepyfile(decorators=DECORATORS)
    pytester.makepyfile(
        test_subject=SUBJECT.format(
            decorator=decorator,
            base=base,
            body=textwrap.indent(body, "    "),
            app_kinds=app_kinds,
        )
    )


def esc(text: str) -> str:
    """Escape ``text`` for :meth:`pytest.LineMatcher.fnmatch_lines`."""
    return "".join(f"[{c}]" if c in "[]?" else c for c in text)


def statuses(rec: pytest.HookRecorder) -> dict[str, set[str]]:
    """Test ids (``test_x[param]``) by final status."""
    by_status: dict[str, set[str]] = {
        "passed": set(),
        "failed": set(),
        "skipped": set(),
        "xfailed": set(),
    }

    for report in rec.getreports("pytest_runtest_logreport"):
        if report.when == "call" or not report.passed:
            status = "xfailed" if hasattr(report, "wasxfail") else report.outcome
            by_status[status].add(report.nodeid.rpartition("::")[2])

    return by_status


def ids(
    names: cabc.Iterable[str], kinds: cabc.Iterable[str], suffix: str = ""
) -> set[str]:
    return {f"{n}[{k}{suffix}]" for n, k in itertools.product(names, kinds)}


def all_ids(modes: tuple[str, ...] = ()) -> set[str]:
    result = set()

    for check in CHECKS.values():
        suffixes = [f"-{m}-callbacks" for m in modes] if check.uses_requests else [""]

        for suffix in suffixes or [""]:
            result |= ids([check.name], VIEW_KINDS, suffix)

    return result


@pytest.mark.parametrize("decorator", ["before", "after"])
def test_toolkit_decorators_pass_strict(
    pytester: pytest.Pytester, decorator: str
) -> None:
    make_subject(pytester, decorator, body="strict = True")
    result = statuses(pytester.inline_run())
    expected_skips = ids(["test_denied_request_never_runs_view"], VIEW_KINDS)
    assert result["failed"] == set()
    assert result["xfailed"] == set()
    assert result["skipped"] == expected_skips
    assert result["passed"] == all_ids() - expected_skips


def test_toolkit_callbacks_pass_strict(pytester: pytest.Pytester) -> None:
    make_subject(pytester, "require_key", base="KeyRequired", body="strict = True")
    result = statuses(pytester.inline_run())
    assert result["failed"] == set()
    assert result["skipped"] == set()
    assert result["xfailed"] == set()
    assert result["passed"] == all_ids(("sync", "async"))


def test_sync_wrapper_that_never_awaits(pytester: pytest.Pytester) -> None:
    make_subject(pytester, "calls_without_awaiting")
    result = statuses(pytester.inline_run())
    assert result["failed"] == ids(ALLOWED, ASYNC_KINDS)
    assert result["xfailed"] == ids(
        ["test_calling_convention_kept", "test_one_event_loop_per_request"],
        ASYNC_KINDS,
    )


def test_dropped_wrapped(pytester: pytest.Pytester) -> None:
    make_subject(pytester, "drops_wrapped")
    result = statuses(pytester.inline_run())
    assert result["failed"] == ids(
        ["test_metadata_kept", "test_signature_kept"], VIEW_KINDS
    )
    assert result["xfailed"] == set()


def test_async_callback_result_used_as_boolean(pytester: pytest.Pytester) -> None:
    make_subject(pytester, "fails_open", base="KeyRequired")
    result = statuses(pytester.inline_run())
    required_requests = [n for n in REQUEST if n in REQUIRED]
    assert result["failed"] == ids(required_requests, VIEW_KINDS, "-async-callbacks")
    assert result["xfailed"] == ids(
        ["test_one_event_loop_per_request"], VIEW_KINDS, "-async-callbacks"
    )


def test_fail_open_message(pytester: pytest.Pytester) -> None:
    make_subject(pytester, "fails_open", base="KeyRequired")
    result = pytester.runpytest(
        "-k", "test_denied_request_never_runs_view and async-function-async"
    )
    result.assert_outcomes(failed=1, deselected=len(all_ids(("sync", "async"))) - 1)
    result.stdout.fnmatch_lines(
        [
            "test_denied_request_never_runs_view: expected a denied request to"
            " answer 403 without running the view; got FAIL OPEN: a request"
            " that must be refused reached the view (status 200, the view ran 1"
            " time(s)) (and RuntimeWarning: coroutine"
            " 'KeyRequired.install_callbacks.<locals>.check' was never awaited)"
            " [[]view kind async-function, async callbacks[]]"
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "TestSubject (fails_open), async callbacks",
            "  convention* metadata  signature allowed   denied    shapes*",
            "  ---------   --------- --------- --------- -!------- ---------*",
        ]
    )


def test_short_circuit_crashes_on_async_views(pytester: pytest.Pytester) -> None:
    make_subject(pytester, "crashes_when_refusing", base="KeyRequired")
    result = statuses(pytester.inline_run())
    failing = ["test_denied_request_never_runs_view", *STACKED]
    assert result["failed"] == ids(failing, ASYNC_KINDS, "-sync-callbacks") | ids(
        failing, ASYNC_KINDS, "-async-callbacks"
    )
    assert result["xfailed"] == set()


def test_only_works_in_view_decorators(pytester: pytest.Pytester) -> None:
    make_subject(pytester, "only_in_view_decorators")
    result = statuses(pytester.inline_run())
    assert result["failed"] == ids(ALLOWED, ASYNC_KINDS)
    assert ids(ALLOWED, ["sync-view-decorators"]) <= result["passed"]


def test_expected_failures_become_strict_xfails(pytester: pytest.Pytester) -> None:
    failures = {name: "never awaits" for name in ALLOWED[:-1]}
    failures[f"{ALLOWED[-1]}[async-function]"] = "never awaits"
    failures[f"{ALLOWED[-1]}[async-methodview]"] = "never awaits"
    failures[f"{ALLOWED[-1]}[async-blueprint]"] = "never awaits"
    failures[f"{ALLOWED[-1]}[async-add-url-rule]"] = "never awaits"
    failures["test_metadata_kept[sync-function]"] = "not really"
    make_subject(
        pytester, "calls_without_awaiting", body=f"expected_failures = {failures!r}"
    )
    result = statuses(pytester.inline_run())
    # Listed whole, a test's sync kinds pass: each is an unexpected pass.
    sync_kinds = [k for k in VIEW_KINDS if k.startswith("sync-")]
    unexpected = ids(ALLOWED[:-1], sync_kinds) | {"test_metadata_kept[sync-function]"}
    assert result["failed"] == unexpected
    assert ids(ALLOWED, ASYNC_KINDS) <= result["xfailed"]


def test_unexpected_pass_is_reported(pytester: pytest.Pytester) -> None:
    body = "expected_failures = {'test_metadata_kept[sync-function]': 'reason x'}"
    make_subject(pytester, "before", body=body)
    result = pytester.runpytest("-k", "test_metadata_kept")
    result.assert_outcomes(
        passed=len(VIEW_KINDS) - 1, failed=1, deselected=len(all_ids()) - 9
    )
    result.stdout.fnmatch_lines(
        [
            "_*_ TestSubject.test_metadata_kept[[]sync-function[]] _*_",
            "test_metadata_kept: passed but is listed in expected_failures (reason x)",
        ]
    )


@pytest.mark.parametrize(
    "key",
    [
        "test_nothing",
        "test_metadata_kept[async-function-sync-callbacks]",
        "test_allowed_request_reaches_view[nowhere]",
        "test_metadata_kept[sync-function",
    ],
)
def test_unknown_expected_failure(pytester: pytest.Pytester, key: str) -> None:
    make_subject(pytester, "before", body=f"expected_failures = {{{key!r}: 'x'}}")
    result = pytester.runpytest()
    result.stdout.fnmatch_lines(
        [f"*ValueError: expected_failures key {esc(repr(key))}*"]
    )
    assert result.ret == pytest.ExitCode.INTERRUPTED


def test_missing_decorator_fixture(pytester: pytest.Pytester) -> None:
    make_ini(pytester)
    pytester.makepyfile(
        """
        from flask_asyncext.testing import DecoratorConformance

        class TestForgotten(DecoratorConformance):
            app_kinds = ("flask",)
        """
    )
    result = pytester.runpytest("-k", "test_metadata_kept and not async-function")
    result.assert_outcomes(errors=len(VIEW_KINDS) - 1, deselected=len(all_ids()) - 8)
    result.stdout.fnmatch_lines(
        [
            "TestForgotten does not override the 'decorator' fixture. Add a"
            " fixture named 'decorator' *'Testing your decorators':"
            " https://flask-asyncext.readthedocs.io/en/latest/testing/"
        ]
    )


@pytest.mark.parametrize(
    ("body", "args", "failed"),
    [
        ("strict = True", [], 4),
        ("", ["-o", "asyncext_strict=true"], 4),
        ("strict = False", ["-o", "asyncext_strict=true"], 0),
        ("", [], 0),
        ("", ["-p", "no:flask_asyncext"], 0),
    ],
)
def test_strict(
    pytester: pytest.Pytester, body: str, args: list[str], failed: int
) -> None:
    make_subject(pytester, "calls_without_awaiting", body=body or "pass")
    pytester.makepyfile(
        decorators="from flask_asyncext.testing.samples import traced_recipe"
        " as calls_without_awaiting\n"
    )
    result = pytester.runpytest("-k", "test_calling_convention_kept", *args)
    result.assert_outcomes(
        passed=5, failed=failed, xfailed=4 - failed, deselected=len(all_ids()) - 9
    )


def test_recommended_xfail_reason(pytester: pytest.Pytester) -> None:
    make_subject(pytester, "calls_without_awaiting")
    pytester.makepyfile(
        decorators="from flask_asyncext.testing.samples import traced_recipe"
        " as calls_without_awaiting\n"
    )
    result = pytester.runpytest("-rx", "-k", "convention and async-function")
    result.stdout.fnmatch_lines(
        [
            "XFAIL test_subject.py::TestSubject::test_calling_convention_kept"
            "[[]async-function[]] - recommended, test_calling_convention_kept:"
            " expected the decorated view to stay an async def*; got a def;*"
            " [[]view kind async-function[]]"
        ]
    )


def test_own_tests_in_subclass_are_left_alone(pytester: pytest.Pytester) -> None:
    make_subject(
        pytester,
        "before",
        body="def test_mine(self):\n    assert True",
    )
    result = pytester.runpytest("-k", "test_mine")
    result.assert_outcomes(passed=1, deselected=len(all_ids()))


def test_own_tests_get_a_flask_app(pytester: pytest.Pytester) -> None:
    """Outside the suite's checks the ``app`` fixture makes a Flask app."""
    make_subject(
        pytester,
        "before",
        body="def test_mine(self, app, asyncext_app_kind):\n"
        "    assert (type(app).__name__, asyncext_app_kind) == ('Flask', 'flask')",
    )
    result = pytester.runpytest("-k", "test_mine")
    result.assert_outcomes(passed=1, deselected=len(all_ids()))


@pytest.mark.parametrize("app_kinds", ["('django',)", "'flask'", "()", "None"])
def test_app_kinds_are_checked(pytester: pytest.Pytester, app_kinds: str) -> None:
    make_subject(pytester, "before", body=f"app_kinds = {app_kinds}")
    result = pytester.runpytest()
    result.stdout.fnmatch_lines(
        [
            "*ValueError: TestSubject.app_kinds must be a non-empty collection of"
            " app kinds out of ('flask', 'quart'), such as ('flask',); got"
            f" {esc(app_kinds)}*"
        ]
    )
    assert result.ret == pytest.ExitCode.INTERRUPTED


def test_app_fixture_returning_no_app_fails_clearly(pytester: pytest.Pytester) -> None:
    make_subject(
        pytester,
        "before",
        body="@pytest.fixture\ndef app(self):\n    return object()",
    )
    result = pytester.runpytest("-k", "test_metadata_kept")
    result.assert_outcomes(errors=len(VIEW_KINDS), deselected=len(all_ids()) - 9)
    result.stdout.fnmatch_lines(
        [
            "*TestSubject's 'app' fixture returned a 'object' object for a check"
            " on flask apps*"
        ]
    )


def test_make_app_refuses_an_unknown_app_kind() -> None:
    with pytest.raises(
        ValueError, match=r"app_kind must be one of \('flask', 'quart'\); got 'django'"
    ):
        make_app(app_kind="django")


CORS_SUBJECT = """
import pytest
from flask_cors import cross_origin
from flask_asyncext.testing import DecoratorConformance

class TestCrossOrigin(DecoratorConformance):
    app_kinds = ("flask",)

    @pytest.fixture
    def decorator(self):
        return cross_origin()
"""


def test_flask_cors_fails_on_async_views_only(pytester: pytest.Pytester) -> None:
    """flask-cors' ``cross_origin()`` hands Flask the coroutine of an async
    view: the suite reports that on every async view kind, and nothing else;
    ``View.decorators`` (a sync function) passes and proves nothing.
    """
    pytest.importorskip("flask_cors")
    make_ini(pytester)
    pytester.makepyfile(test_cors=CORS_SUBJECT)
    result = statuses(pytester.inline_run())
    assert result["failed"] == ids(ALLOWED, ASYNC_KINDS)
    assert result["xfailed"] == ids(
        ["test_calling_convention_kept", "test_one_event_loop_per_request"],
        ASYNC_KINDS,
    )
    assert result["skipped"] == ids(["test_denied_request_never_runs_view"], VIEW_KINDS)
    assert ids(ALLOWED, ["sync-view-decorators"]) <= result["passed"]


def test_example_adopter_passes_strict(pytester: pytest.Pytester) -> None:
    """The example extension in ``examples/extension`` passes every check,
    recommended ones included, in both callback modes.
    """
    example = pathlib.Path(__file__).parent.parent / "examples" / "extension"
    make_ini(pytester, "asyncext_strict = true\n")

    for name in ("flask_apikey.py", "test_flask_apikey.py"):
        pytester.path.joinpath(name).write_text(example.joinpath(name).read_text())

    result = statuses(pytester.inline_run())
    assert result["passed"] == all_ids(("sync", "async"))
    assert not result["failed"] | result["skipped"] | result["xfailed"]
