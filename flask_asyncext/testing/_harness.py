"""The harness of the conformance checks: it makes a request to a probe view
decorated with the subject and observes what happened (status, decoded body,
warnings, event loops). Independent of pytest, so that the command line tool
runs it too.
"""

from __future__ import annotations

import asyncio.base_events
import collections.abc as cabc
import contextlib
import dataclasses
import functools
import gc
import gzip
import importlib
import re
import sys
import types
import typing as t
import warnings
import zlib

from flask.testing import FlaskClient
from werkzeug.datastructures import Headers
from werkzeug.test import TestResponse

from ._apps import app_kind_of
from ._apps import Decorate
from ._apps import framework
from ._apps import Probe
from ._apps import register_probe

_View = cabc.Callable[..., t.Any]
#: Takes the test client: a :class:`~flask.testing.FlaskClient`, or Quart's
#: test client on a Quart app.
Shaper = cabc.Callable[[t.Any], cabc.Mapping[str, t.Any]]
#: Takes the app: Flask's, or Quart's.
InstallCallbacks = cabc.Callable[[t.Any, str], None]
#: Takes the response: a :class:`~werkzeug.test.TestResponse`, or Quart's
#: response on a Quart app.
Effect = cabc.Callable[[t.Any], None]

#: The callback modes every request check runs in when the subject
#: registers callbacks.
CALLBACK_MODES: tuple[str, ...] = ("sync", "async")

#: The denial a subject has when it describes only one: its checks carry no
#: denial in their parameter ids.
ONE_DENIAL = ""

_NEVER_AWAITED = re.compile(r"coroutine .* was never awaited")


def no_shaping(client: t.Any) -> cabc.Mapping[str, t.Any]:
    """Send the request as it is."""
    return {}


def denied_statuses(value: object, owner: str = "denied_status") -> tuple[int, ...]:
    """``value`` as a tuple of HTTP statuses: an int, or any collection of
    ints.

    :raise TypeError: Anything else, with a message naming ``owner``.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        items: tuple[object, ...] = (value,)
    elif isinstance(value, cabc.Collection) and not isinstance(value, (str, bytes)):
        items = tuple(t.cast("cabc.Collection[object]", value))
    else:
        items = ()

    if items and all(
        isinstance(i, int) and not isinstance(i, bool) and 100 <= i <= 599
        for i in items
    ):
        return t.cast("tuple[int, ...]", items)

    raise TypeError(
        f"{owner} must be an HTTP status (an int such as 401) or a collection"
        f" of them, such as (302, 303); got {value!r}"
    )


@dataclasses.dataclass
class Subject:
    """A decorator under test and what the checks need to know about it."""

    decorator: _View
    #: Makes the app a check runs on: a Flask app, or a Quart app for the
    #: ``quart-`` view kinds.
    make_app: cabc.Callable[[], t.Any]
    blocks_requests: bool = False
    denied_status: tuple[int, ...] = (401, 403)
    allow: Shaper = no_shaping
    #: Denial name -> the shaper of a request the decorator must refuse.
    denials: cabc.Mapping[str, Shaper] = dataclasses.field(
        default_factory=lambda: {ONE_DENIAL: no_shaping}
    )
    install_callbacks: InstallCallbacks | None = None
    #: ``False`` when nothing can prepare an allowed request (the command
    #: line without request options): a denied "allowed" request is then a
    #: skip, not a failure.
    shaping: bool = True
    #: The method the probe view answers and requests are sent with.
    method: str = "GET"
    #: Keyword arguments the decorator passes to the view.
    injected: tuple[str, ...] = ()
    #: Called with every allowed response; raises to fail the check.
    effect: Effect | None = None
    #: The app kinds the checks run on (:data:`~._apps.APP_KINDS`).
    app_kinds: tuple[str, ...] = ("flask",)

    def __post_init__(self) -> None:
        self.denied_status = denied_statuses(self.denied_status)

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
    """A check did not hold: what was expected, what happened instead
    (:attr:`got`, the cause), and where.
    """

    fail_open = False

    def __init__(self, expected: str, got: str, where: str) -> None:
        super().__init__(f"expected {expected}; got {got} [{where}]")
        self.got = got


class FailOpen(CheckFailed):
    """A request that must be refused reached the view: a security finding,
    not a compatibility one.
    """

    fail_open = True


class CheckSkipped(Exception):
    """A check does not apply to this subject."""


@dataclasses.dataclass
class Answer:
    """What came back from one request, and what happened meanwhile."""

    status: int | None
    #: The body, decoded from its ``Content-Encoding``.
    body: bytes
    #: Looked up without regard to case.
    headers: Headers
    error: str | None
    #: What always fails: a coroutine never awaited, an exception ignored in
    #: a finalizer, a warning the adopter's warning filters make an error.
    problems: list[str]
    #: Warnings the adopter's filters let through, shown in failure details.
    notes: list[str]
    loops: int
    #: Flask's test response, or Quart's response on a Quart app.
    response: t.Any = None


def one_line(text: str, limit: int = 240) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else f"{line[: limit - 3]}..."


def describe_error(error: BaseException) -> str:
    return one_line(f"{type(error).__name__}: {error}")


def _module_name(filename: str) -> str | None:
    """The name of the imported module whose file is ``filename``, for
    warning filters that name a module.
    """
    for name, module in list(sys.modules.items()):
        if getattr(module, "__file__", None) == filename:
            return name

    return None


#: Where re-emitted warnings remember having been shown, so that a warning
#: the filters show "once per location" is shown once per session.
_REGISTRY: dict[t.Any, t.Any] = {}


def sort_warnings(
    caught: cabc.Iterable[warnings.WarningMessage],
) -> tuple[list[str], list[str]]:
    """Split warnings recorded during a request into problems (a coroutine
    never awaited, always; any other warning the filters in force make an
    error) and notes (shown where the filters say, and in failure details).
    """
    problems: list[str] = []
    notes: list[str] = []

    for w in caught:
        text = one_line(f"{w.category.__name__}: {w.message}")

        if issubclass(w.category, RuntimeWarning) and _NEVER_AWAITED.match(
            str(w.message)
        ):
            problems.append(text)
            continue

        # Passing module=None would match no filter at all: leave it out
        # when the file is no imported module.
        module = _module_name(w.filename)
        args = (str(w.message), w.category, w.filename, w.lineno)

        try:
            if module is None:
                warnings.warn_explicit(*args, registry=_REGISTRY)
            else:
                warnings.warn_explicit(*args, module=module, registry=_REGISTRY)
        except Warning:
            problems.append(f"{text} (an error under your warning filters)")
        else:
            notes.append(text)

    return problems, notes


@contextlib.contextmanager
def watch() -> cabc.Generator[
    tuple[list[str], list[object], list[warnings.WarningMessage]], None, None
]:
    """Collect, while active: every warning (none raises mid-request; see
    :func:`sort_warnings`), exceptions that could not be raised (finalizers)
    and every event loop created.
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
        problems.append(one_line(f"{where} {unraisable.object!r}: {error}"))

    # No automatic collection while watching: everything made meanwhile stays
    # in the youngest generation, so that collecting it alone afterwards
    # finds every garbage cycle the request left (an un-awaited coroutine
    # held by a traceback's frames) without walking the whole session's
    # objects, which costs tens of milliseconds.
    gc_enabled = gc.isenabled()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        setattr(base, "__init__", counting_init)  # noqa: B010
        sys.unraisablehook = collect
        gc.disable()

        try:
            yield problems, loops, caught
            gc.collect(0)
        finally:
            if gc_enabled:
                gc.enable()

            sys.unraisablehook = original_hook
            setattr(base, "__init__", original_init)  # noqa: B010


def _brotli() -> types.ModuleType | None:
    for name in ("brotli", "brotlicffi"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue

    return None


def decode_body(body: bytes, content_encoding: str | None) -> bytes:
    """Undo the ``Content-Encoding`` of a response body: ``gzip``,
    ``deflate``, and ``br`` when a brotli module is installed.

    :raise ValueError: An encoding the suite cannot decode, or a body that
        is not what its encoding says.
    """
    codings = [c.strip().lower() for c in (content_encoding or "").split(",")]

    for coding in reversed([c for c in codings if c and c != "identity"]):
        try:
            if coding in ("gzip", "x-gzip"):
                body = gzip.decompress(body)
            elif coding == "deflate":
                try:
                    body = zlib.decompress(body)
                except zlib.error:
                    body = zlib.decompress(body, -zlib.MAX_WBITS)
            elif coding == "br" and (brotli := _brotli()) is not None:
                body = brotli.decompress(body)
            else:
                hint = " (install brotli)" if coding == "br" else ""
                raise ValueError(
                    f"the response is encoded as {coding!r}, which the suite"
                    f" cannot decode{hint}"
                )
        except (OSError, EOFError, zlib.error) as e:
            raise ValueError(
                f"the response body is not valid {coding!r}: {describe_error(e)}"
            ) from None

    return body


_Sent = tuple[int, bytes, Headers, t.Any]


#: The function that sends the request, and the event loop the app runs
#: requests in (``None`` for a Flask app, which has none of its own).
_Sender = tuple[cabc.Callable[[], _Sent], asyncio.AbstractEventLoop | None]


@contextlib.contextmanager
def _send_flask(
    client: FlaskClient, url: str, kwargs: dict[str, t.Any]
) -> cabc.Generator[_Sender, None, None]:
    """Yield the function that sends a request with Flask's test client."""

    def send() -> _Sent:
        response: TestResponse = client.open(url, **kwargs)

        try:
            return (
                response.status_code,
                response.get_data(),
                Headers(response.headers),
                response,
            )
        finally:
            response.close()

    yield send, None


@contextlib.contextmanager
def _send_quart(
    client: t.Any, url: str, kwargs: dict[str, t.Any]
) -> cabc.Generator[_Sender, None, None]:
    """Yield the function that sends a request with Quart's test client, in
    the event loop the app runs on (as a server would, made beforehand and
    closed afterwards), and that loop.
    """

    async def send_async() -> _Sent:
        response = await client.open(url, **kwargs)
        body = await response.get_data()
        return response.status_code, body, Headers(response.headers), response

    loop = asyncio.new_event_loop()

    try:
        yield lambda: loop.run_until_complete(send_async()), loop
    finally:
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            loop.close()


class ProbeError(Exception):
    """Raised by the probe view to see it reach the app's error handler."""


def statuses_text(statuses: tuple[int, ...]) -> str:
    return " or ".join(map(str, statuses))


class Run:
    """One check on one view kind in one callback mode (and one denial)."""

    def __init__(
        self,
        subject: Subject,
        kind: str,
        mode: str | None,
        denial: str | None = None,
    ) -> None:
        self.subject = subject
        self.kind = kind
        self.mode = mode
        self.denial = denial
        #: Warnings seen by this run's requests, shown when it fails.
        self.notes: list[str] = []
        self.app_kind = app_kind_of(kind)
        self.framework = framework(self.app_kind)
        #: Whether the view kind hands the decorator an ``async def``.
        self.is_async = kind.removeprefix("quart-").startswith("async-")
        self.app = subject.make_app()

        if mode is not None and subject.install_callbacks is not None:
            subject.install_callbacks(self.app, mode)

    def fail(
        self, expected: str, got: str, error: type[CheckFailed] = CheckFailed
    ) -> t.NoReturn:
        where = f"view kind {self.kind}"

        if self.mode is not None:
            where = f"{where}, {self.mode} callbacks"

        if self.denial:
            where = f"{where}, denial {self.denial}"

        if self.notes:
            notes = "; ".join(dict.fromkeys(self.notes))
            where = f"{where}; warnings meanwhile: {notes}"

        raise error(expected, got, where)

    def register(self, decorate: Decorate | None = None) -> Probe:
        """Register the probe view decorated with the subject (or with
        ``decorate``); a decorator that raises fails the check.
        """
        decorate = self.subject.decorator if decorate is None else decorate

        try:
            return register_probe(
                self.app,
                self.kind,
                decorate,
                method=self.subject.method,
                injected=self.subject.injected,
            )
        except Exception as e:
            self.fail("the decorator to accept the view", f"{describe_error(e)}")

    def request(self, probe: Probe, shaper: Shaper) -> Answer:
        """Send a request to the probe view, prepared by ``shaper`` with the
        same client.
        """
        client = self.app.test_client()
        kwargs = dict(shaper(client))
        kwargs.setdefault("method", self.subject.method)
        send = _send_quart if self.app_kind == "quart" else _send_flask
        status: int | None = None
        body = b""
        headers = Headers()
        error: str | None = None
        response: t.Any = None

        with send(client, probe.url(), kwargs) as (sent, app_loop):
            with watch() as (problems, loops, caught):
                try:
                    status, body, headers, response = sent()
                except Exception as e:
                    # Keep only the text: the traceback holds the request's
                    # frames, which must be collected while still watched.
                    error = describe_error(e)

        found, notes = sort_warnings(caught)
        problems.extend(found)
        self.notes.extend(notes)

        if error is None:
            try:
                body = decode_body(body, headers.get("Content-Encoding"))
            except ValueError as e:
                error = str(e)

        # The loops made during the request, the loops the view ran in, and
        # the app's own loop (a Quart app's).
        seen = {id(loop): loop for loop in [*loops, *probe.loops]}

        if app_loop is not None:
            seen[id(app_loop)] = app_loop

        return Answer(
            status, body, headers, error, problems, notes, len(seen), response
        )

    def allowed(self, probe: Probe) -> Answer:
        return self.request(probe, self.subject.allow)

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
                " decorator needs a prepared request (allow(), or the"
                " command's request options)"
            )

        if not probe.calls:
            self.fail(expected, f"status {answer.status} and the view did not run")

    def expect_effect(self, answer: Answer) -> None:
        """Fail unless the subject's effect hook accepts an allowed response."""
        effect = self.subject.effect

        if effect is None or answer.response is None:
            return

        try:
            effect(answer.response)
        except Exception as e:
            self.fail(
                "the decorator's effect on the allowed response (expect_effect)",
                describe_error(e),
            )

    def denials(self) -> cabc.Iterable[str]:
        """The denials this run sends: its own, or every one the subject
        describes.
        """
        if self.denial is not None:
            return [self.denial]

        return list(self.subject.denials)

    def expect_denied(self, probe: Probe) -> None:
        """Fail unless every denied request is refused without running the
        view; a request that reached the view is a :class:`FailOpen`.
        """
        if not self.subject.blocks_requests:
            return

        for denial in self.denials():
            self.denial = denial or None
            probe.calls.clear()
            answer = self.request(probe, self.subject.denials[denial])
            expected = (
                "a denied request to answer"
                f" {statuses_text(self.subject.denied_status)} without running"
                " the view"
            )

            if probe.calls:
                got = (
                    "FAIL OPEN: a request that must be refused reached the view"
                    f" (status {answer.status}, the view ran"
                    f" {len(probe.calls)} time(s))"
                )

                if answer.problems:
                    got = f"{got} (and {answer.problems[0]})"

                self.fail(expected, got, FailOpen)

            if answer.error is None and answer.status not in (
                self.subject.denied_status
            ):
                self.fail(expected, f"status {answer.status}")

            self.expect_clean(answer, expected)


def describe(decorator: object) -> str:
    """A short name for a decorator, never a ``repr`` with an address: its
    qualified name without ``<locals>``, ``partial(name)`` for a
    :func:`functools.partial`, or ``Class instance`` for a callable object.
    """
    if isinstance(decorator, functools.partial):
        inner = t.cast("functools.partial[object]", decorator).func
        return f"partial({describe(inner)})"

    name = getattr(decorator, "__qualname__", None)

    if isinstance(name, str):
        return name.replace(".<locals>", "")

    return f"{describe(type(decorator))} instance"
