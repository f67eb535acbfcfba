"""The suite judges real-world decorator shapes right: plain-int denied
statuses, third-party warnings, compressed bodies, shaped probes, effects,
several denials, fail-opens, redirects, pinned levels and expected-failure
files. Each subject runs through pytester as an adopter's project would.
"""

from __future__ import annotations

import importlib.util
import json
import textwrap
import warnings

import pytest

from flask_asyncext.testing import CHECKS
from flask_asyncext.testing import make_app
from flask_asyncext.testing import VIEW_KINDS

HAS_PYTEST_ASYNCIO = importlib.util.find_spec("pytest_asyncio") is not None
ASYNC_KINDS = [k for k in VIEW_KINDS if k.startswith("async-")]
REQUEST_CHECKS = [c.name for c in CHECKS.values() if c.uses_requests]

DECORATORS = """
import gzip
import inspect
import warnings
import zlib

from flask import abort, current_app, make_response, request

from flask_asyncext import after_view, async_compatible_decorator, before_view


@before_view
def key_401(*args, **kwargs):
    if request.headers.get("X-Key") != "good":
        abort(401)


@before_view
def warns(*args, **kwargs):
    warnings.warn("key too short", UserWarning)


@after_view
def warns_and_shouts(response):
    warnings.warn("key too short", UserWarning)
    response.set_data(response.get_data().upper())


async def _pending():
    pass


@before_view
def leaves_coroutine(*args, **kwargs):
    _pending()


def _encoder(coding):
    @after_view
    def encode(response):
        if response.direct_passthrough or "Content-Encoding" in response.headers:
            return None
        data = response.get_data()
        if coding == "gzip":
            data = gzip.compress(data)
        elif coding == "deflate":
            data = zlib.compress(data)
        else:
            import brotli
            data = brotli.compress(data)
        response.set_data(data)
        response.headers["Content-Encoding"] = coding
        response.headers["Vary"] = "Accept-Encoding"
    return encode


gzipped = _encoder("gzip")
deflated = _encoder("deflate")
brotlied = _encoder("br")


@before_view
def csrf(*args, **kwargs):
    if request.method != "POST" or request.form.get("token") != "good":
        abort(403)


@async_compatible_decorator
def inject_body(view, /, *args, **kwargs):
    kwargs["body"] = request.get_json()
    return (yield view(*args, **kwargs))


@before_view
def off_when_testing(*args, **kwargs):
    if not current_app.testing and request.headers.get("X-Key") != "good":
        abort(401)


@after_view
def frame_options(response):
    response.headers["X-Frame-Options"] = "DENY"


def frame_options_sync_only(view):
    if inspect.iscoroutinefunction(view):
        return view

    return frame_options(view)


@async_compatible_decorator
def basic_auth(view, /, *args, **kwargs):
    auth = request.authorization
    check = current_app.extensions["check"]
    if auth is None or not (yield check(auth.username, auth.password)):
        abort(401)
    return (yield view(*args, **kwargs))


def basic_auth_used_as_bool(view):
    def authenticated():
        auth = request.authorization
        return auth and current_app.extensions["check"](auth.username, auth.password)

    if inspect.iscoroutinefunction(view):
        async def async_wrapper(*args, **kwargs):
            if not authenticated():
                abort(401)
            return await view(*args, **kwargs)
        return async_wrapper

    def wrapper(*args, **kwargs):
        if not authenticated():
            abort(401)
        return view(*args, **kwargs)
    return wrapper


@before_view
def redirect_to_login(*args, **kwargs):
    from flask import redirect
    if request.headers.get("X-Key") != "good":
        return redirect("/login")
"""

SUBJECT = """
import pytest

from flask_asyncext.testing import DecoratorConformance

import decorators


class TestSubject(DecoratorConformance):
    app_kinds = ("flask",)
{body}

    @pytest.fixture
    def decorator(self):
        return decorators.{decorator}
"""


def make_subject(
    pytester: pytest.Pytester, decorator: str, body: str = "pass", ini: str = ""
) -> None:
    text = f"[pytest]\nxfail_strict = true\n{ini}"

    if HAS_PYTEST_ASYNCIO:
        text += "asyncio_default_fixture_loop_scope = function\n"

    pytester.makeini(text)
    pytester.makepyfile(decorators=DECORATORS)
    pytester.makepyfile(
        test_subject=SUBJECT.format(
            decorator=decorator, body=textwrap.indent(textwrap.dedent(body), "    ")
        )
    )


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


def ids(names: list[str], kinds: list[str], suffix: str = "") -> set[str]:
    return {f"{n}[{k}{suffix}]" for n in names for k in kinds}


KEY = """
blocks_requests = True
denied_status = {status}

def allow(self, client):
    return {{"headers": {{"X-Key": "good"}}}}
"""


def test_denied_status_as_int(pytester: pytest.Pytester) -> None:
    """Finding 1: ``denied_status = 401`` is accepted as one status."""
    make_subject(pytester, "key_401", KEY.format(status=401), "strict = True\n")
    result = statuses(pytester.inline_run())
    assert result["failed"] == set()
    assert (
        ids(["test_denied_request_never_runs_view"], list(VIEW_KINDS))
        <= (result["passed"])
    )


@pytest.mark.parametrize("status", ["'401'", "(401, 'x')", "True", "()", "99"])
def test_bad_denied_status_fails_collection(
    pytester: pytest.Pytester, status: str
) -> None:
    """Finding 1: anything but statuses is an error at collection, naming
    the attribute.
    """
    make_subject(pytester, "key_401", KEY.format(status=status))
    result = pytester.runpytest()
    result.stdout.fnmatch_lines(
        [
            "*TypeError: TestSubject.denied_status must be an HTTP status (an int"
            " such as 401) or a collection of them*"
        ]
    )
    assert result.ret == pytest.ExitCode.INTERRUPTED


def test_default_secret_key_is_long_enough_for_jwt() -> None:
    """Finding 2: PyJWT does not warn about the default app's key, for
    HS256 up to HS512.
    """
    jwt = pytest.importorskip("jwt")
    key = make_app().config["SECRET_KEY"]

    with warnings.catch_warnings():
        warnings.simplefilter("error")

        for algorithm in ("HS256", "HS384", "HS512"):
            token = jwt.encode({"sub": "alice"}, key, algorithm=algorithm)
            assert jwt.decode(token, key, algorithms=[algorithm]) == {"sub": "alice"}


def test_third_party_warning_follows_adopters_filters(
    pytester: pytest.Pytester,
) -> None:
    """Finding 2: a warning the adopter's filters let through is no failure
    (pytest shows it in its summary).
    """
    make_subject(pytester, "warns", ini="filterwarnings = default\n")
    result = pytester.runpytest("-k", "test_allowed_request_reaches_view")
    result.assert_outcomes(passed=len(VIEW_KINDS), deselected=13 * 9 - 9)
    result.stdout.fnmatch_lines(["*UserWarning: key too short*"])


def test_third_party_warning_as_error(pytester: pytest.Pytester) -> None:
    """Finding 2: with ``-W error`` (or ``filterwarnings = error``) the same
    warning fails the check, and the message says why.
    """
    make_subject(pytester, "warns")
    result = pytester.runpytest(
        "-W",
        "error",
        "-k",
        "test_allowed_request_reaches_view and sync-function and not async",
    )
    result.assert_outcomes(failed=1, deselected=13 * 9 - 1)
    result.stdout.fnmatch_lines(
        [
            "test_allowed_request_reaches_view: expected an allowed request to"
            " reach the view with item_id=7, name='alice' without warnings; got"
            " UserWarning: key too short (an error under your warning filters)"
            " [[]view kind sync-function[]]"
        ]
    )


def test_never_awaited_fails_whatever_the_filters(pytester: pytest.Pytester) -> None:
    """Finding 2: a coroutine never awaited fails even where the adopter
    ignores every warning.
    """
    make_subject(pytester, "leaves_coroutine", ini="filterwarnings = ignore\n")
    result = pytester.runpytest("-k", "test_allowed_request_reaches_view")
    result.assert_outcomes(failed=len(VIEW_KINDS), deselected=13 * 9 - 9)
    result.stdout.fnmatch_lines(
        ["*without warnings; got RuntimeWarning: coroutine '_pending' was never*"]
    )


def test_warnings_shown_in_failure_detail(pytester: pytest.Pytester) -> None:
    """Finding 2: warnings that are no failure of their own are shown in the
    detail of a check that fails for another reason.
    """
    make_subject(pytester, "warns_and_shouts", ini="filterwarnings = default\n")
    result = pytester.runpytest(
        "-k", "test_allowed_request_reaches_view and sync-function and not async"
    )
    result.assert_outcomes(failed=1, deselected=13 * 9 - 1)
    result.stdout.fnmatch_lines(
        [
            "test_allowed_request_reaches_view: expected the view's body b'probe"
            " 7 alice' back; got b'PROBE 7 ALICE' [[]view kind sync-function;"
            " warnings meanwhile: UserWarning: key too short[]]"
        ]
    )


@pytest.mark.parametrize("decorator", ["gzipped", "deflated", "brotlied"])
def test_compressed_bodies_are_decoded(
    pytester: pytest.Pytester, decorator: str
) -> None:
    """Finding 3: a decorator that compresses (and adds ``Vary``) passes:
    bodies are compared decoded.
    """
    if decorator == "brotlied":
        pytest.importorskip("brotli")

    make_subject(pytester, decorator)
    result = statuses(pytester.inline_run())
    assert result["failed"] == set()
    assert (
        ids(REQUEST_CHECKS, list(VIEW_KINDS))
        - ids(["test_denied_request_never_runs_view"], list(VIEW_KINDS))
        <= (result["passed"])
    )


def test_undecodable_body_fails_with_its_encoding(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Finding 3: an encoding the suite cannot decode is named."""
    from flask_asyncext.testing import _harness

    monkeypatch.setattr(_harness, "_brotli", lambda: None)

    with pytest.raises(ValueError, match=r"encoded as 'br', .* \(install brotli\)"):
        _harness.decode_body(b"x", "br")

    with pytest.raises(ValueError, match="encoded as 'zstd'"):
        _harness.decode_body(b"x", "zstd")

    with pytest.raises(ValueError, match="not valid 'gzip'"):
        _harness.decode_body(b"not gzip", "gzip")

    raw = __import__("zlib").compressobj(wbits=-15)
    data = raw.compress(b"probe") + raw.flush()
    assert _harness.decode_body(data, "deflate") == b"probe"
    assert _harness.decode_body(b"probe", "identity") == b"probe"


def test_post_with_a_body(pytester: pytest.Pytester) -> None:
    """Finding 4: the probe answers the adopter's method, with a body."""
    body = """
    blocks_requests = True
    method = "POST"

    def allow(self, client):
        return {"data": {"token": "good"}}

    def deny(self, client):
        return {"data": {"token": "bad"}}
    """
    make_subject(pytester, "csrf", body, "strict = True\n")
    result = statuses(pytester.inline_run())
    assert result["failed"] == set()
    assert ids(REQUEST_CHECKS, list(VIEW_KINDS)) <= result["passed"]


def test_injected_view_arguments(pytester: pytest.Pytester) -> None:
    """Finding 4: a decorator that passes the view a parsed body passes
    when it declares so, and fails when it does not.
    """
    body = """
    injected = ("body",)
    method = "POST"

    def allow(self, client):
        return {"json": {"a": 1}}
    """
    make_subject(pytester, "inject_body", body, "strict = True\n")
    result = statuses(pytester.inline_run())
    assert result["failed"] == set()
    assert (
        ids(REQUEST_CHECKS, list(VIEW_KINDS))
        - ids(["test_denied_request_never_runs_view"], list(VIEW_KINDS))
        <= (result["passed"])
    )


def test_injected_argument_missing(pytester: pytest.Pytester) -> None:
    body = 'injected = ("body",)\n'
    make_subject(pytester, "key_401", body + KEY.format(status=401))
    result = pytester.runpytest("-k", "allowed_request and sync-function and not async")
    result.assert_outcomes(failed=1, deselected=13 * 9 - 1)
    result.stdout.fnmatch_lines(
        [
            "test_allowed_request_reaches_view: expected the decorator to pass"
            " the view [[]'body'[]] by keyword (injected); got [[][]]*"
        ]
    )


def test_app_config(pytester: pytest.Pytester) -> None:
    """Finding 4: ``app_config`` reaches the default app: an extension that
    testing mode switches off is really checked.
    """
    body = 'app_config = {"TESTING": False}\n'
    make_subject(pytester, "off_when_testing", body + KEY.format(status=401))
    result = statuses(pytester.inline_run("-k", "denied"))
    assert result["passed"] == ids(
        ["test_denied_request_never_runs_view"], list(VIEW_KINDS)
    )


EFFECT = """
def expect_effect(self, response):
    assert response.headers.get("X-Frame-Options") == "DENY", response.headers
"""


def test_effect_hook(pytester: pytest.Pytester) -> None:
    """Finding 5: the effect hook runs on every allowed response and
    catches a decorator that does nothing on async views.
    """
    make_subject(pytester, "frame_options_sync_only", EFFECT)
    result = statuses(pytester.inline_run())
    effect_checks = [
        "test_allowed_request_reaches_view",
        "test_response_shapes_pass_through",
        "test_context_visible_in_view",
        *[n for n in REQUEST_CHECKS if n.startswith("test_stacks_")],
    ]
    assert result["failed"] == ids(effect_checks, ASYNC_KINDS)


def test_effect_hook_passes(pytester: pytest.Pytester) -> None:
    make_subject(pytester, "frame_options", EFFECT, "strict = True\n")
    result = statuses(pytester.inline_run())
    assert result["failed"] == set()
    assert result["xfailed"] == set()


def test_effect_failure_message(pytester: pytest.Pytester) -> None:
    make_subject(pytester, "frame_options_sync_only", EFFECT)
    result = pytester.runpytest("-k", "allowed_request and async-function")
    result.stdout.fnmatch_lines(
        [
            "test_allowed_request_reaches_view: expected the decorator's effect on"
            " the allowed response (expect_effect); got AssertionError: *"
            " [[]view kind async-function[]]"
        ]
    )


DENIALS = """
blocks_requests = True
denied_status = 401
denials = ("no-credentials", "wrong-password")

def install_callbacks(self, app, mode):
    if mode == "sync":
        def check(username, password):
            return password == "secret"
    else:
        async def check(username, password):
            return password == "secret"
    app.extensions["check"] = check

def allow(self, client):
    return {"auth": ("alice", "secret")}

def deny(self, client, denial):
    if denial == "wrong-password":
        return {"auth": ("alice", "wrong")}
    return {}
"""


def test_several_denials_catch_a_wrong_password_let_in(
    pytester: pytest.Pytester,
) -> None:
    """Findings 6 and 7: with "no credentials" alone the password check never
    runs; the "wrong password" denial shows the fail-open of an async
    callback used as a boolean, with its own mark.
    """
    make_subject(pytester, "basic_auth_used_as_bool", DENIALS)
    result = pytester.inline_run("-k", "denied")
    by_status = statuses(result)
    denied = ["test_denied_request_never_runs_view"]
    assert by_status["passed"] == ids(
        denied, list(VIEW_KINDS), "-sync-callbacks-no-credentials"
    ) | ids(denied, list(VIEW_KINDS), "-sync-callbacks-wrong-password") | ids(
        denied, list(VIEW_KINDS), "-async-callbacks-no-credentials"
    )
    assert by_status["failed"] == ids(
        denied, list(VIEW_KINDS), "-async-callbacks-wrong-password"
    )


def test_several_denials_matrix(pytester: pytest.Pytester) -> None:
    make_subject(pytester, "basic_auth_used_as_bool", DENIALS)
    result = pytester.runpytest("-k", "denied or stacks_with_itself")
    result.stdout.fnmatch_lines(
        [
            "TestSubject (basic_auth_used_as_bool), async callbacks",
            "  convention* metadata  signature allowed   denied    shapes*",
            "  ---------   --------- --------- --------- !!!!!!!!! ---------*",
            "  abort     context   stack-self under-wraps*",
            "  --------- --------- FFFFFFFFF  ---------*",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "*FAIL OPEN: a request that must be refused reached the view*[[]view"
            " kind sync-function, async callbacks, denial wrong-password*"
        ]
    )


def test_several_denials_pass_with_a_correct_decorator(
    pytester: pytest.Pytester,
) -> None:
    make_subject(pytester, "basic_auth", DENIALS, "strict = True\n")
    result = statuses(pytester.inline_run())
    assert result["failed"] == set()
    # 3 checks without requests, then 10 request checks in 2 callback modes,
    # the denied one once per denial.
    assert len(result["passed"]) == 9 * 3 + 9 * 11 * 2


def test_redirect_denial(pytester: pytest.Pytester) -> None:
    """Finding 8: a decorator that denies with a redirect passes with
    ``denied_status = (302, 303)``, and fails without it.
    """
    make_subject(pytester, "redirect_to_login", KEY.format(status=(302, 303)))
    result = statuses(pytester.inline_run())
    assert result["failed"] == set()
    make_subject(pytester, "redirect_to_login", KEY.format(status=401))
    result = statuses(pytester.inline_run("-k", "denied"))
    assert result["failed"] == ids(
        ["test_denied_request_never_runs_view"], list(VIEW_KINDS)
    )


PINNED = KEY.format(status=401) + "suite_level = "


def test_pinned_suite_level(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Finding 10: a check added after the pinned level is skipped, with a
    reason; unpinned, it runs.
    """
    import dataclasses

    from flask_asyncext.testing import _checks

    newer = dataclasses.replace(CHECKS["test_metadata_kept"], since=2)
    monkeypatch.setitem(_checks.CHECKS, "test_metadata_kept", newer)
    monkeypatch.setattr(_checks, "SUITE_LEVEL", 2)
    monkeypatch.setattr("flask_asyncext.testing._policy.SUITE_LEVEL", 2)
    make_subject(pytester, "key_401", PINNED + "1\n")
    result = pytester.inline_run("-k", "metadata")
    assert statuses(result)["skipped"] == ids(["test_metadata_kept"], list(VIEW_KINDS))
    skipped = [r for r in result.getreports() if r.skipped]
    assert "added in suite level 2; this project pins level 1" in str(
        skipped[0].longrepr
    )
    make_subject(pytester, "key_401", PINNED + "2\n")
    assert statuses(pytester.inline_run("-k", "metadata"))["passed"] == ids(
        ["test_metadata_kept"], list(VIEW_KINDS)
    )


@pytest.mark.parametrize(
    ("args", "body"),
    [([], "suite_level = 0\n"), (["-o", "asyncext_suite_level=9"], "")],
)
def test_unknown_suite_level(
    pytester: pytest.Pytester, args: list[str], body: str
) -> None:
    make_subject(pytester, "key_401", KEY.format(status=401) + body)
    result = pytester.runpytest("-k", "metadata and sync-function", *args)
    result.stdout.fnmatch_lines(["*suite_level must be a suite level from 1 to 1*"])
    assert result.ret != 0


def test_suite_level_from_ini(pytester: pytest.Pytester) -> None:
    make_subject(pytester, "key_401", KEY.format(status=401))
    result = pytester.runpytest("-o", "asyncext_suite_level=1", "-k", "metadata")
    result.assert_outcomes(passed=9, deselected=13 * 9 - 9)


def test_expected_failures_file(pytester: pytest.Pytester) -> None:
    """Finding 10: expected failures live in a file, with reasons or links."""
    pytester.path.joinpath("expected.txt").write_text(
        "# our header is set on sync views only\n\n"
        "test_allowed_request_reaches_view = https://example.org/issues/1\n"
        "test_response_shapes_pass_through[async-function] = same\n"
    )
    make_subject(
        pytester,
        "frame_options_sync_only",
        EFFECT + 'expected_failures = "expected.txt"\n',
    )
    result = statuses(pytester.inline_run("-k", "allowed or shapes"))
    assert result["xfailed"] == ids(
        ["test_allowed_request_reaches_view"], ASYNC_KINDS
    ) | {"test_response_shapes_pass_through[async-function]"}
    sync_kinds = [k for k in VIEW_KINDS if k.startswith("sync-")]
    assert result["failed"] == ids(
        ["test_allowed_request_reaches_view"], sync_kinds
    ) | ids(["test_response_shapes_pass_through"], ASYNC_KINDS[1:])


def test_expected_failures_file_errors(pytester: pytest.Pytester) -> None:
    from flask_asyncext.testing import load_expected_failures

    path = pytester.path / "bad.txt"
    path.write_text("test_metadata_kept\n")

    with pytest.raises(ValueError, match=r"bad.txt, line 1: write 'test name = "):
        load_expected_failures(path)


def test_matrix_as_json(pytester: pytest.Pytester) -> None:
    """Finding 10: the matrix is written as JSON for CI."""
    make_subject(pytester, "basic_auth_used_as_bool", DENIALS)
    pytester.runpytest("-k", "denied or metadata", "--asyncext-matrix-json=m.json")
    data = json.loads(pytester.path.joinpath("m.json").read_text())
    assert data["suite_level"] == 1
    assert data["view_kinds"] == list(VIEW_KINDS)
    assert [c["name"] for c in data["checks"]] == list(CHECKS)
    rows = {row["callback_mode"]: row for row in data["rows"]}
    assert rows["async"]["label"] == "TestSubject (basic_auth_used_as_bool)"
    assert rows["async"]["app_kind"] == "flask"
    denied = rows["async"]["results"]["test_denied_request_never_runs_view"]
    assert denied == dict.fromkeys(VIEW_KINDS, "fail-open")
    sync_denied = rows["sync"]["results"]["test_denied_request_never_runs_view"]
    assert sync_denied == dict.fromkeys(VIEW_KINDS, "passed")
    # No functools.wraps: checks without a callback mode show in both rows.
    metadata = rows["async"]["results"]["test_metadata_kept"]
    assert metadata == dict.fromkeys(VIEW_KINDS, "failed")
    assert rows["sync"]["results"]["test_signature_kept"] == dict.fromkeys(
        VIEW_KINDS, None
    )


def test_matrix_json_from_ini(pytester: pytest.Pytester) -> None:
    make_subject(
        pytester,
        "key_401",
        KEY.format(status=401),
        "asyncext_matrix_json = out/m.json\n",
    )
    pytester.mkdir("out")
    result = pytester.runpytest("-k", "metadata")
    result.stdout.fnmatch_lines(["flask-asyncext matrix written to *m.json"])
    data = json.loads(pytester.path.joinpath("out", "m.json").read_text())
    assert data["rows"][0]["results"]["test_metadata_kept"] == dict.fromkeys(
        VIEW_KINDS, "passed"
    )


def test_asyncext_check_policy_options(pytester: pytest.Pytester) -> None:
    """The fixture takes a pinned level and an expected-failures file, and
    reads them through the same policy as the suite class.
    """
    pytester.path.joinpath("expected.txt").write_text(
        "test_calling_convention_kept[async-function] = ensure_sync recipe\n"
    )
    make_subject(pytester, "key_401")
    pytester.makepyfile(
        test_fixture="""
        import pathlib
        from flask_asyncext.testing.samples import traced_recipe

        def test_it(asyncext_check):
            outcomes = asyncext_check(
                traced_recipe,
                suite_level=1,
                expected_failures=pathlib.Path(__file__).parent / "expected.txt",
            )
            xfailed = [o for o in outcomes if o.status == "xfailed"]
            assert xfailed[0].message.startswith(
                "expected failure (ensure_sync recipe), test_calling_convention_kept"
            )
        """
    )
    pytester.runpytest("test_fixture.py").assert_outcomes(passed=1)


def test_suite_level_not_a_number(pytester: pytest.Pytester) -> None:
    make_subject(pytester, "key_401", KEY.format(status=401))
    result = pytester.runpytest("-o", "asyncext_suite_level=one", "-k", "metadata")
    result.stdout.fnmatch_lines(["*suite_level must be a suite level*got 'one'*"])


def test_expected_failures_absolute_path(pytester: pytest.Pytester) -> None:
    path = pytester.path / "expected.txt"
    path.write_text("test_metadata_kept[sync-function] = why\n")
    make_subject(pytester, "key_401", f"expected_failures = {str(path)!r}\n")
    result = statuses(pytester.inline_run("-k", "metadata"))
    assert result["failed"] == {"test_metadata_kept[sync-function]"}
