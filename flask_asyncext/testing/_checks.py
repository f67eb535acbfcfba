"""The conformance checks themselves, independent of pytest so that the
command line tool runs them too.
"""

from __future__ import annotations

import asyncio.base_events
import collections.abc as cabc
import contextlib
import dataclasses
import functools
import gc
import importlib.metadata
import inspect
import re
import sys
import typing as t
import warnings

from flask import abort
from flask import Flask
from flask import g
from flask import Response
from flask import session
from flask import stream_with_context
from flask.testing import FlaskClient

from ._apps import Decorate
from ._apps import Probe
from ._apps import register_probe
from ._apps import VIEW_KINDS

_View = cabc.Callable[..., t.Any]
Level = t.Literal["required", "recommended"]
Status = t.Literal["passed", "failed", "skipped", "xfailed"]
Shaper = cabc.Callable[[FlaskClient], cabc.Mapping[str, t.Any]]
InstallCallbacks = cabc.Callable[[Flask, str], None]

#: The callback modes every request check runs in when the subject
#: registers callbacks.
CALLBACK_MODES: tuple[str, ...] = ("sync", "async")


def no_shaping(client: FlaskClient) -> cabc.Mapping[str, t.Any]:
    """Send the request as it is."""
    return {}


@dataclasses.dataclass
class Subject:
    """A decorator under test and what the checks need to know about it."""

    decorator: _View
    make_app: cabc.Callable[[], Flask]
    blocks_requests: bool = False
    denied_status: tuple[int, ...] = (401, 403)
    allow: Shaper = no_shaping
    deny: Shaper = no_shaping
    install_callbacks: InstallCallbacks | None = None
    #: ``False`` when nothing can prepare an allowed request (the command
    #: line): a denied "allowed" request is then a skip, not a failure.
    shaping: bool = True

    @property
    def modes(self) -> tuple[str | None, ...]:
        return callback_modes(self.install_callbacks)


def callback_modes(
    install_callbacks: InstallCallbacks | None,
) -> tuple[str | None, ...]:
    """The callback modes request checks run in: both when the subject
    registers callbacks, else one without a mode (``None``).
    """
    return (None,) if install_callbacks is None else CALLBACK_MODES


class CheckFailed(Exception):
    """A check did not hold; the message says what was expected and got."""


class CheckSkipped(Exception):
    """A check does not apply to this subject."""


@dataclasses.dataclass(frozen=True)
class Check:
    """One check of the suite, named after the test that runs it.

    .. versionadded:: 0.1
    """

    __module__ = "flask_asyncext.testing"

    name: str
    column: str
    level: Level
    uses_requests: bool
    run: cabc.Callable[[Run], None]
    doc: str


@dataclasses.dataclass(frozen=True)
class Outcome:
    """How one check went on one view kind in one callback mode: ``status``
    is ``"passed"``, ``"failed"``, ``"skipped"`` or ``"xfailed"``, and
    ``message`` the one-line reason.

    .. versionadded:: 0.1
    """

    __module__ = "flask_asyncext.testing"

    check: Check
    kind: str
    mode: str | None
    status: Status
    message: str = ""


@dataclasses.dataclass
class Answer:
    """What came back from one request, and what happened meanwhile."""

    status: int | None
    body: bytes
    headers: dict[str, str]
    error: str | None
    problems: list[str]
    loops: int


def _one_line(text: str, limit: int = 240) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else f"{line[: limit - 3]}..."


def describe_error(error: BaseException) -> str:
    return _one_line(f"{type(error).__name__}: {error}")


@contextlib.contextmanager
def watch() -> cabc.Generator[tuple[list[str], list[object]], None, None]:
    """Collect, while active: warnings (a "coroutine was never awaited"
    warning is always recorded, whatever the filters say), exceptions that
    could not be raised (finalizers) and every event loop created.
    """
    problems: list[str] = []
    loops: list[object] = []
    base = asyncio.base_events.BaseEventLoop
    original_init = base.__init__
    original_hook = sys.unraisablehook

    def counting_init(self: t.Any, *args: t.Any, **kwargs: t.Any) -> None:
        loops.append(self)
        original_init(self, *args, **kwargs)

    def collect(unraisable: t.Any) -> None:
        where = unraisable.err_msg or "Exception ignored in"
        error = describe_error(unraisable.exc_value)
        problems.append(_one_line(f"{where} {unraisable.object!r}: {error}"))

    # No automatic collection while watching: everything made meanwhile stays
    # in the youngest generation, so that collecting it alone afterwards
    # finds every garbage cycle the request left (an un-awaited coroutine
    # held by a traceback's frames) without walking the whole session's
    # objects, which costs tens of milliseconds.
    gc_enabled = gc.isenabled()

    with warnings.catch_warnings(record=True) as caught:
        warnings.filterwarnings(
            "always", message="coroutine .* was never awaited", category=RuntimeWarning
        )
        setattr(base, "__init__", counting_init)  # noqa: B010
        sys.unraisablehook = collect
        gc.disable()

        try:
            yield problems, loops
            gc.collect(0)
        finally:
            if gc_enabled:
                gc.enable()

            sys.unraisablehook = original_hook
            setattr(base, "__init__", original_init)  # noqa: B010
            problems.extend(
                _one_line(f"{w.category.__name__}: {w.message}") for w in caught
            )


class ProbeError(Exception):
    """Raised by the probe view to see it reach the app's error handler."""


class Run:
    """One check on one view kind in one callback mode."""

    def __init__(
        self, check: Check, subject: Subject, kind: str, mode: str | None
    ) -> None:
        self.check = check
        self.subject = subject
        self.kind = kind
        self.mode = mode
        self.app = subject.make_app()

        if mode is not None and subject.install_callbacks is not None:
            subject.install_callbacks(self.app, mode)

    def fail(self, expected: str, got: str) -> t.NoReturn:
        where = f"view kind {self.kind}"

        if self.mode is not None:
            where = f"{where}, {self.mode} callbacks"

        raise CheckFailed(f"expected {expected}; got {got} [{where}]")

    def register(self, decorate: Decorate | None = None) -> Probe:
        """Register the probe view decorated with the subject (or with
        ``decorate``); a decorator that raises fails the check.
        """
        decorate = self.subject.decorator if decorate is None else decorate

        try:
            return register_probe(self.app, self.kind, decorate)
        except Exception as e:
            self.fail("the decorator to accept the view", f"{describe_error(e)}")

    def request(self, probe: Probe, shaping: t.Literal["allow", "deny"]) -> Answer:
        """Send a GET request to the probe view, prepared by the subject's
        ``allow`` or ``deny`` with the same client.
        """
        client = self.app.test_client()
        shaper = self.subject.allow if shaping == "allow" else self.subject.deny
        kwargs = dict(shaper(client))
        kwargs.setdefault("method", "GET")
        status: int | None = None
        body = b""
        headers: dict[str, str] = {}
        error: str | None = None

        with watch() as (problems, loops):
            try:
                response = client.open(probe.url(), **kwargs)
                try:
                    status = response.status_code
                    body = response.get_data()
                    headers = dict(response.headers)
                finally:
                    response.close()
            except Exception as e:
                # Keep only the text: the traceback holds the request's
                # frames, which must be collected while still watched.
                error = describe_error(e)

        seen = {id(loop): loop for loop in [*loops, *probe.loops]}
        return Answer(status, body, headers, error, problems, len(seen))

    def expect_clean(self, answer: Answer, expected: str) -> None:
        """Fail with what happened if the request raised or warned."""
        if answer.error is not None:
            got = answer.error

            if answer.problems:
                got = f"{got} (and {answer.problems[0]})"

            self.fail(expected, got)

        if answer.problems:
            self.fail(f"{expected} without warnings", answer.problems[0])

    def expect_allowed(self, answer: Answer, probe: Probe, expected: str) -> None:
        """Fail unless an allowed request reached the view."""
        self.expect_clean(answer, expected)

        if (
            not self.subject.shaping
            and not probe.calls
            and answer.status in self.subject.denied_status
        ):
            raise CheckSkipped(
                f"the request was denied with status {answer.status}; this"
                " decorator needs a prepared request (allow()), which only a"
                " DecoratorConformance subclass can give"
            )

        if not probe.calls:
            self.fail(expected, f"status {answer.status} and the view did not run")

    def expect_denied(self, probe: Probe) -> None:
        """Fail unless a denied request is refused without running the view."""
        if not self.subject.blocks_requests:
            return

        answer = self.request(probe, "deny")
        expected = (
            f"a denied request to answer {_statuses(self.subject.denied_status)}"
            " without running the view"
        )

        if answer.error is None and (
            probe.calls or answer.status not in self.subject.denied_status
        ):
            got = f"status {answer.status} and the view ran {len(probe.calls)} time(s)"

            if answer.problems:
                got = f"{got} (and {answer.problems[0]})"

            self.fail(expected, got)

        self.expect_clean(answer, expected)


def _statuses(statuses: tuple[int, ...]) -> str:
    return " or ".join(map(str, statuses))


@dataclasses.dataclass
class _Decoration:
    """A view and what the decorator made of it, with their attributes as
    they were right then (``View.as_view`` overwrites some afterwards).
    """

    view: _View
    decorated: _View
    view_attrs: dict[str, object]
    decorated_attrs: dict[str, object]


_METADATA = ("__name__", "__qualname__", "__module__", "__doc__")


def _attrs(obj: object) -> dict[str, object]:
    attrs: dict[str, object] = {name: getattr(obj, name, None) for name in _METADATA}
    attrs.update(getattr(obj, "__dict__", {}))
    return attrs


def _decoration(run: Run) -> _Decoration:
    decorations: list[_Decoration] = []

    def decorate(view: _View) -> _View:
        decorated: _View = run.subject.decorator(view)
        decorations.append(
            _Decoration(view, decorated, _attrs(view), _attrs(decorated))
        )
        return decorated

    run.register(decorate)
    return decorations[0]


def _convention(callable_: object) -> str:
    if inspect.iscoroutinefunction(callable_):
        return "an async def"

    return "a def"


def check_calling_convention(run: Run) -> None:
    d = _decoration(run)
    expected, got = _convention(d.view), _convention(d.decorated)

    if expected != got:
        run.fail(
            f"the decorated view to stay {expected} (inspect.iscoroutinefunction)",
            f"{got}; Flask then runs the view in a thread with a loop of its own",
        )


def check_metadata(run: Run) -> None:
    d = _decoration(run)

    for name, value in d.view_attrs.items():
        got = d.decorated_attrs.get(name, "<missing>")

        if got is not value and got != value:
            what = name if name in _METADATA else f"the view's attribute {name!r}"
            run.fail(f"{what} {value!r} (functools.wraps)", f"{got!r}")

    if inspect.unwrap(d.decorated) is not inspect.unwrap(d.view):
        run.fail(
            "__wrapped__ to lead back to the view (functools.wraps)",
            f"{inspect.unwrap(d.decorated)!r}",
        )


def check_signature(run: Run) -> None:
    d = _decoration(run)
    want = inspect.signature(d.view)

    try:
        got = str(inspect.signature(d.decorated))
    except (TypeError, ValueError) as e:
        got = describe_error(e)

    if got != str(want):
        run.fail(f"the signature {want}", got)


def check_allowed(run: Run) -> None:
    probe = run.register()
    answer = run.request(probe, "allow")
    expected = "an allowed request to reach the view with item_id=7, name='alice'"
    run.expect_allowed(answer, probe, expected)

    if probe.calls != [(7, "alice")] or answer.status != 200:
        run.fail(
            expected,
            f"status {answer.status} and the view called with {probe.calls}",
        )

    if answer.body != b"probe 7 alice":
        run.fail("the view's body b'probe 7 alice' back", f"{answer.body!r}")


def check_denied(run: Run) -> None:
    if not run.subject.blocks_requests:
        raise CheckSkipped("blocks_requests is False")

    run.expect_denied(run.register())


def _release(version: str) -> tuple[int, ...]:
    """The release numbers a version string starts with: ``(3, 1, 2)`` for
    ``"3.1.2"`` and ``"3.1.2rc1"``, ``()`` when there are none.
    """
    match = re.match(r"\d+(?:\.\d+)*", version)

    if match is None:
        return ()

    return tuple(int(part) for part in match.group().split("."))


#: Whether Flask can stream a :func:`~flask.stream_with_context` generator
#: returned by an ``async def`` view. Before Flask 3.1.2 it cannot, whatever
#: the decorator (pallets/flask#5774), so the response shapes check leaves
#: that shape out on async view kinds there.
ASYNC_VIEWS_STREAM = _release(importlib.metadata.version("flask")) >= (3, 1, 2)


def _stream(item_id: int, name: str) -> object:
    def generate() -> cabc.Iterator[str]:
        yield "probe "
        yield session.get("asyncext_marker", "no context")

    return stream_with_context(generate())


_STREAM = "stream_with_context generator"

#: name -> (what the view returns, status, body, a header expected)
_SHAPES: dict[str, tuple[cabc.Callable[[int, str], object], int, bytes, str]] = {
    "str": (lambda i, n: "probe", 200, b"probe", ""),
    "bytes": (lambda i, n: b"probe", 200, b"probe", ""),
    "dict": (lambda i, n: {"probe": n}, 200, b'{"probe":"alice"}\n', ""),
    "list": (lambda i, n: [n, i], 200, b'["alice",7]\n', ""),
    "tuple with status": (lambda i, n: ("probe", 201), 201, b"probe", ""),
    "tuple with headers": (
        lambda i, n: ("probe", {"X-Asyncext": "probe"}),
        200,
        b"probe",
        "X-Asyncext",
    ),
    "tuple with status and headers": (
        lambda i, n: ("probe", 202, [("X-Asyncext", "probe")]),
        202,
        b"probe",
        "X-Asyncext",
    ),
    "Response": (lambda i, n: Response("probe", 203), 203, b"probe", ""),
    _STREAM: (_stream, 200, b"probe marker", ""),
}


def _mark_session() -> None:
    session["asyncext_marker"] = "marker"


def check_response_shapes(run: Run) -> None:
    """Every value Flask accepts from a view passes through: ``str``,
    ``bytes``, ``dict``, ``list``, tuples with a status and headers, a
    ``Response`` and a ``stream_with_context`` generator. On Flask < 3.1.2
    the generator is left out on async view kinds: Flask itself cannot
    stream it from an ``async def`` view there (pallets/flask#5774).
    """
    run.app.before_request(_mark_session)
    probe = run.register()
    leave_out_stream = not ASYNC_VIEWS_STREAM and run.kind.startswith("async-")

    for shape, (action, status, body, header) in _SHAPES.items():
        if shape == _STREAM and leave_out_stream:
            continue

        probe.action = action
        probe.calls.clear()
        answer = run.request(probe, "allow")
        expected = f"the view's {shape} to pass through as status {status}, {body!r}"
        run.expect_allowed(answer, probe, expected)

        if answer.status != status or answer.body != body:
            run.fail(expected, f"status {answer.status}, {answer.body!r}")

        if header and answer.headers.get(header) != "probe":
            run.fail(f"{expected} with header {header}", f"{answer.headers}")


def _raise_probe_error(item_id: int, name: str) -> t.NoReturn:
    raise ProbeError(name)


def check_exceptions(run: Run) -> None:
    handled: list[BaseException] = []

    def handle(e: ProbeError) -> tuple[str, int]:
        handled.append(e)
        return "handled", 418

    run.app.register_error_handler(ProbeError, handle)
    probe = run.register()
    probe.action = _raise_probe_error
    answer = run.request(probe, "allow")
    expected = "the view's ProbeError to reach the app's error handler (status 418)"
    run.expect_allowed(answer, probe, expected)

    if answer.status != 418 or len(handled) != 1:
        run.fail(
            expected, f"status {answer.status}, handler called {len(handled)} time(s)"
        )


def _abort(item_id: int, name: str) -> t.NoReturn:
    abort(409)


def check_abort(run: Run) -> None:
    run.app.register_error_handler(409, lambda e: ("conflict handled", 409))
    probe = run.register()
    probe.action = _abort
    answer = run.request(probe, "allow")
    expected = "abort(409) in the view to reach the app's 409 error handler"
    run.expect_allowed(answer, probe, expected)

    if answer.status != 409 or answer.body != b"conflict handled":
        run.fail(expected, f"status {answer.status}, {answer.body!r}")


def _mark_context() -> None:
    g.asyncext_marker = "marker"
    _mark_session()


def check_context(run: Run) -> None:
    run.app.before_request(_mark_context)
    probe = run.register()
    answer = run.request(probe, "allow")
    run.expect_allowed(answer, probe, "an allowed request to reach the view")
    expected = {
        "g": "marker",
        "session": "marker",
        "path": probe.url(),
        "view_args": {"item_id": 7, "name": "alice"},
    }

    for name, value in expected.items():
        if probe.seen[name] != value:
            run.fail(f"the view to see {name} as {value!r}", f"{probe.seen[name]!r}")


def _stacked(run: Run, decorate: Decorate, expected: str) -> None:
    probe = run.register(decorate)
    answer = run.request(probe, "allow")
    run.expect_allowed(answer, probe, expected)

    if probe.calls != [(7, "alice")] or answer.body != b"probe 7 alice":
        run.fail(expected, f"status {answer.status}, {answer.body!r}")

    probe.calls.clear()
    run.expect_denied(probe)


def check_stacked_with_itself(run: Run) -> None:
    decorator = run.subject.decorator
    _stacked(
        run,
        lambda view: decorator(decorator(view)),
        "the view, decorated twice, to answer an allowed request",
    )


def wraps_decorator(view: _View) -> _View:
    """A well-behaved third-party decorator made with
    :func:`functools.wraps`, stacked with the subject: it keeps the calling
    convention of whatever it is given.
    """
    if inspect.iscoroutinefunction(view):

        @functools.wraps(view)
        async def async_wrapper(*args: t.Any, **kwargs: t.Any) -> t.Any:
            return await view(*args, **kwargs)

        return async_wrapper

    @functools.wraps(view)
    def wrapper(*args: t.Any, **kwargs: t.Any) -> t.Any:
        return view(*args, **kwargs)

    return wrapper


def check_under_wraps_decorator(run: Run) -> None:
    decorator = run.subject.decorator
    _stacked(
        run,
        lambda view: wraps_decorator(decorator(view)),
        "the view to answer with a functools.wraps decorator above this one",
    )


def check_over_wraps_decorator(run: Run) -> None:
    decorator = run.subject.decorator
    _stacked(
        run,
        lambda view: decorator(wraps_decorator(view)),
        "the view to answer with a functools.wraps decorator below this one",
    )


def check_event_loops(run: Run) -> None:
    probe = run.register()
    answer = run.request(probe, "allow")
    run.expect_allowed(answer, probe, "an allowed request to reach the view")
    limit = 0 if run.kind.startswith("sync-") and run.mode != "async" else 1

    if answer.loops > limit:
        run.fail(
            f"at most {limit} event loop(s) for the request",
            f"{answer.loops}; each one costs a thread and a new loop",
        )


def _check(
    name: str,
    column: str,
    run: cabc.Callable[[Run], None],
    *,
    level: Level = "required",
    uses_requests: bool = True,
) -> Check:
    doc = " ".join((run.__doc__ or "").split())
    return Check(name, column, level, uses_requests, run, doc)


#: Every check, by the name of the test that runs it (public API).
CHECKS: dict[str, Check] = {
    c.name: c
    for c in (
        _check(
            "test_calling_convention_kept",
            "convention",
            check_calling_convention,
            level="recommended",
            uses_requests=False,
        ),
        _check("test_metadata_kept", "metadata", check_metadata, uses_requests=False),
        _check(
            "test_signature_kept", "signature", check_signature, uses_requests=False
        ),
        _check("test_allowed_request_reaches_view", "allowed", check_allowed),
        _check("test_denied_request_never_runs_view", "denied", check_denied),
        _check("test_response_shapes_pass_through", "shapes", check_response_shapes),
        _check("test_exceptions_reach_error_handlers", "errors", check_exceptions),
        _check("test_abort_reaches_error_handlers", "abort", check_abort),
        _check("test_context_visible_in_view", "context", check_context),
        _check("test_stacks_with_itself", "stack-self", check_stacked_with_itself),
        _check(
            "test_stacks_under_wraps_decorator",
            "under-wraps",
            check_under_wraps_decorator,
        ),
        _check(
            "test_stacks_over_wraps_decorator", "over-wraps", check_over_wraps_decorator
        ),
        _check(
            "test_one_event_loop_per_request",
            "one-loop",
            check_event_loops,
            level="recommended",
        ),
    )
}


def run_check(check: Check, subject: Subject, kind: str, mode: str | None) -> Outcome:
    """Run one check and tell how it went, before any expected failure or
    strictness is applied.
    """
    try:
        check.run(Run(check, subject, kind, mode))
    except CheckFailed as e:
        return Outcome(check, kind, mode, "failed", f"{check.name}: {e}")
    except CheckSkipped as e:
        return Outcome(check, kind, mode, "skipped", f"{check.name}: {e}")

    return Outcome(check, kind, mode, "passed")


def param_id(kind: str, mode: str | None) -> str:
    """The parameter id of a check on a view kind in a callback mode."""
    return kind if mode is None else f"{kind}-{mode}-callbacks"


def settle(
    outcome: Outcome, *, strict: bool, expected_failures: cabc.Mapping[str, str]
) -> Outcome:
    """Apply what the subject declared: expected failures become xfails (and
    an expected failure that passes fails), recommended checks that fail
    become xfails unless ``strict``.
    """
    name = outcome.check.name
    reason = expected_failures.get(
        f"{name}[{param_id(outcome.kind, outcome.mode)}]", expected_failures.get(name)
    )

    if outcome.status == "passed" and reason is not None:
        return dataclasses.replace(
            outcome,
            status="failed",
            message=f"{name}: passed but is listed in expected_failures ({reason})",
        )

    if outcome.status == "failed" and (
        reason is not None or (outcome.check.level == "recommended" and not strict)
    ):
        return dataclasses.replace(outcome, status="xfailed")

    return outcome


def check_keys(
    expected_failures: cabc.Mapping[str, str], modes: tuple[str | None, ...]
) -> None:
    """Raise :exc:`ValueError` naming a key of ``expected_failures`` that names
    no check, or no parameter id of that check.
    """
    for key in expected_failures:
        name, bracket, rest = key.partition("[")
        check = CHECKS.get(name)

        if check is not None and not bracket:
            continue

        if check is not None and rest.endswith("]"):
            check_modes = modes if check.uses_requests else (None,)
            ids = {param_id(kind, mode) for kind in VIEW_KINDS for mode in check_modes}

            if rest[:-1] in ids:
                continue

        raise ValueError(
            f"expected_failures key {key!r} names no test of the suite; use a"
            " test name, optionally with one of its parameter ids in brackets,"
            " e.g. 'test_denied_request_never_runs_view[async-function]'"
        )


def run_all(
    subject: Subject,
    *,
    strict: bool = False,
    expected_failures: cabc.Mapping[str, str] | None = None,
) -> list[Outcome]:
    """Run every check on every view kind (and callback mode) and return the
    settled outcomes.
    """
    expected: cabc.Mapping[str, str] = (
        {} if expected_failures is None else expected_failures
    )
    check_keys(expected, subject.modes)
    outcomes: list[Outcome] = []

    for check in CHECKS.values():
        modes = subject.modes if check.uses_requests else (None,)

        for mode in modes:
            for kind in VIEW_KINDS:
                outcome = run_check(check, subject, kind, mode)
                outcomes.append(
                    settle(outcome, strict=strict, expected_failures=expected)
                )

    return outcomes
