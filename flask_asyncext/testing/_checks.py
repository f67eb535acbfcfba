"""The checks of the conformance suite, each a function of a
:class:`~flask_asyncext.testing._harness.Run` whose docstring is what the
docs say about it. Independent of pytest, so that the command line tool runs
them too.
"""

from __future__ import annotations

import collections.abc as cabc
import dataclasses
import functools
import importlib.metadata
import inspect
import re
import typing as t

from ._apps import Decorate
from ._apps import Framework
from ._harness import CheckSkipped
from ._harness import ProbeError
from ._harness import Run

_View = cabc.Callable[..., t.Any]
Level = t.Literal["required", "recommended"]

#: The level of the suite: the set of checks this release runs. A release
#: that adds checks raises it; adopters who pin a level (``suite_level``)
#: run only the checks of that level until they move their pin.
SUITE_LEVEL = 1


@dataclasses.dataclass(frozen=True)
class Check:
    """One check of the suite, named after the test that runs it.

    :param name: The name of the test that runs it (public API).
    :param column: Its column in the compatibility matrix.
    :param level: ``"required"`` (correctness) or ``"recommended"`` (cost).
    :param uses_requests: Whether it sends requests, so runs in each
        callback mode.
    :param run: The function that runs it.
    :param doc: What it checks, from the function's docstring.
    :param since: The suite level that added it.
    :param denials: Whether it is run once per denial the subject describes.

    .. versionadded:: 0.1
    """

    __module__ = "flask_asyncext.testing"

    name: str
    column: str
    level: Level
    uses_requests: bool
    run: cabc.Callable[[Run], None]
    doc: str
    since: int = 1
    denials: bool = False


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
    """An ``async def`` view stays an ``async def`` (as
    :func:`inspect.iscoroutinefunction`, which Flask uses, sees it) and a
    ``def`` view a ``def``, so that Flask runs an async view in one event
    loop.
    """
    d = _decoration(run)
    expected, got = _convention(d.view), _convention(d.decorated)

    if expected != got:
        run.fail(
            f"the decorated view to stay {expected} (inspect.iscoroutinefunction)",
            f"{got}; Flask then runs the view in a thread with a loop of its own",
        )


def check_metadata(run: Run) -> None:
    """The view's name, qualified name, module, docstring, attributes and
    ``__wrapped__`` are kept (:func:`functools.wraps`).
    """
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
    """:func:`inspect.signature` of the decorated view is the view's."""
    d = _decoration(run)
    want = inspect.signature(d.view)

    try:
        got = str(inspect.signature(d.decorated))
    except (TypeError, ValueError) as e:
        got = f"{type(e).__name__}: {e}"

    if got != str(want):
        run.fail(f"the signature {want}", got)


def check_allowed(run: Run) -> None:
    """A request prepared by ``allow`` runs the view once, with its URL
    arguments (and the keyword arguments the decorator declares it injects),
    and the view's body comes back, decoded from any ``Content-Encoding``.
    """
    probe = run.register()
    answer = run.allowed(probe)
    expected = "an allowed request to reach the view with item_id=7, name='alice'"
    run.expect_allowed(answer, probe, expected)

    if probe.calls != [(7, "alice")] or answer.status != 200:
        run.fail(
            expected,
            f"status {answer.status} and the view called with {probe.calls}",
        )

    injected = sorted(probe.injected[0])

    if injected != sorted(run.subject.injected):
        run.fail(
            f"the decorator to pass the view {sorted(run.subject.injected)} by"
            " keyword (injected)",
            f"{injected}",
        )

    if answer.body != b"probe 7 alice":
        run.fail("the view's body b'probe 7 alice' back", f"{answer.body!r}")

    run.expect_effect(answer)


def check_denied(run: Run) -> None:
    """A request prepared by ``deny`` (each denial, when there are several)
    answers one of ``denied_status`` and never runs the view body, for async
    views too. A denied request that reaches the view is a fail-open (``!``
    in the matrix), a security finding. Skipped unless ``blocks_requests``.
    """
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


_STREAM = "stream_with_context generator"

#: name -> (what the view returns, status, body, a header expected)
_Shapes = dict[str, tuple[cabc.Callable[[int, str], object], int, bytes, str]]


def _shapes(fw: Framework) -> _Shapes:
    """The values a view of ``fw``'s apps may return, and what they answer."""
    response_class = fw.response_class
    return {
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
        "Response": (lambda i, n: response_class("probe", 203), 203, b"probe", ""),
        _STREAM: (lambda i, n: fw.stream(), 200, b"probe marker", ""),
    }


def _mark_session(fw: Framework) -> cabc.Callable[[], None]:
    def mark_session() -> None:
        fw.session["asyncext_marker"] = "marker"

    return mark_session


def check_response_shapes(run: Run) -> None:
    """Every value Flask accepts from a view passes through: ``str``,
    ``bytes``, ``dict``, ``list``, tuples with a status and headers, a
    ``Response`` and a ``stream_with_context`` generator. Bodies are compared
    decoded, and headers the decorator adds are fine. On Flask < 3.1.2 the
    generator is left out on async view kinds: Flask itself cannot stream it
    from an ``async def`` view there (`pallets/flask#5774
    <https://github.com/pallets/flask/issues/5774>`__), whatever the
    decorator.
    """
    run.app.before_request(_mark_session(run.framework))
    probe = run.register()
    leave_out_stream = (
        not ASYNC_VIEWS_STREAM and run.app_kind == "flask" and run.is_async
    )

    for shape, (action, status, body, header) in _shapes(run.framework).items():
        if shape == _STREAM and leave_out_stream:
            continue

        probe.action = action
        probe.calls.clear()
        answer = run.allowed(probe)
        expected = f"the view's {shape} to pass through as status {status}, {body!r}"
        run.expect_allowed(answer, probe, expected)

        if answer.status != status or answer.body != body:
            run.fail(expected, f"status {answer.status}, {answer.body!r}")

        if header and answer.headers.get(header) != "probe":
            run.fail(f"{expected} with header {header}", f"{dict(answer.headers)}")

        run.expect_effect(answer)


def _raise_probe_error(item_id: int, name: str) -> t.NoReturn:
    raise ProbeError(name)


def check_exceptions(run: Run) -> None:
    """An exception raised in the view reaches the app's error handler for
    its type.
    """
    handled: list[BaseException] = []

    def handle(e: ProbeError) -> tuple[str, int]:
        handled.append(e)
        return "handled", 418

    run.app.register_error_handler(ProbeError, handle)
    probe = run.register()
    probe.action = _raise_probe_error
    answer = run.allowed(probe)
    expected = "the view's ProbeError to reach the app's error handler (status 418)"
    run.expect_allowed(answer, probe, expected)

    if answer.status != 418 or len(handled) != 1:
        run.fail(
            expected, f"status {answer.status}, handler called {len(handled)} time(s)"
        )


def check_abort(run: Run) -> None:
    """:func:`flask.abort` in the view (``abort(409)``; Quart's on a Quart
    app) reaches the app's handler for that status.
    """
    abort = run.framework.abort

    def abort_409(item_id: int, name: str) -> t.NoReturn:
        abort(409)

    def handle(e: Exception) -> tuple[str, int]:
        return "conflict handled", 409

    run.app.register_error_handler(409, handle)
    probe = run.register()
    probe.action = abort_409
    answer = run.allowed(probe)
    expected = "abort(409) in the view to reach the app's 409 error handler"
    run.expect_allowed(answer, probe, expected)

    if answer.status != 409 or answer.body != b"conflict handled":
        run.fail(expected, f"status {answer.status}, {answer.body!r}")


def check_context(run: Run) -> None:
    """``g`` and ``session`` set in a ``before_request`` function, and
    ``request``, are visible in the view (Quart's on a Quart app).
    """
    fw = run.framework
    mark_session = _mark_session(fw)

    def mark_context() -> None:
        fw.g.asyncext_marker = "marker"
        mark_session()

    run.app.before_request(mark_context)
    probe = run.register()
    answer = run.allowed(probe)
    run.expect_allowed(answer, probe, "an allowed request to reach the view")
    run.expect_effect(answer)
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
    answer = run.allowed(probe)
    run.expect_allowed(answer, probe, expected)

    if probe.calls != [(7, "alice")] or answer.body != b"probe 7 alice":
        run.fail(expected, f"status {answer.status}, {answer.body!r}")

    run.expect_effect(answer)
    run.expect_denied(probe)


def check_stacked_with_itself(run: Run) -> None:
    """Applied twice, the decorator still allows and denies correctly."""
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
    """Below a plain :func:`functools.wraps` decorator, the decorator still
    allows and denies correctly.
    """
    decorator = run.subject.decorator
    _stacked(
        run,
        lambda view: wraps_decorator(decorator(view)),
        "the view to answer with a functools.wraps decorator above this one",
    )


def check_over_wraps_decorator(run: Run) -> None:
    """Above a plain :func:`functools.wraps` decorator, the decorator still
    allows and denies correctly.
    """
    decorator = run.subject.decorator
    _stacked(
        run,
        lambda view: decorator(wraps_decorator(view)),
        "the view to answer with a functools.wraps decorator below this one",
    )


def check_event_loops(run: Run) -> None:
    """A request uses at most one event loop, and none for a ``def`` view
    with sync callbacks: the loops created during the request plus the loop
    the view ran in are counted. On a Quart app, that one is Quart's own
    loop, for ``def`` views and their async callbacks too.
    """
    probe = run.register()
    answer = run.allowed(probe)
    run.expect_allowed(answer, probe, "an allowed request to reach the view")
    uses_a_loop = run.is_async or run.mode == "async" or run.app_kind == "quart"
    limit = 1 if uses_a_loop else 0

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
    denials: bool = False,
) -> Check:
    doc = inspect.cleandoc(run.__doc__ or "")
    return Check(name, column, level, uses_requests, run, doc, denials=denials)


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
        _check(
            "test_denied_request_never_runs_view",
            "denied",
            check_denied,
            denials=True,
        ),
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


def document_checks() -> str:
    """The reST list of the checks, from their docstrings, as the docs'
    testing page includes it: required checks, then recommended ones.
    """
    lines: list[str] = []

    for level, title in (
        ("required", "Required checks are about correctness and fail the run:"),
        ("recommended", "Recommended checks are about cost:"),
    ):
        lines.extend([title, ""])

        for check in CHECKS.values():
            if check.level == level:
                lines.append(f"``{check.name}`` (``{check.column}``)")
                lines.extend(f"    {line}".rstrip() for line in check.doc.splitlines())

        lines.append("")

    return "\n".join(lines)
