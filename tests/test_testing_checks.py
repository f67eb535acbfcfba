"""Each check of the suite, run directly on decorators that break exactly
what it checks, reports a one-line failure that says so.
"""

from __future__ import annotations

import collections.abc as cabc
import functools
import gc
import inspect
import sys
import typing as t
import warnings

import pytest
from flask import g
from flask import make_response
from werkzeug.exceptions import HTTPException

from flask_asyncext.testing import _checks
from flask_asyncext.testing import CHECKS
from flask_asyncext.testing import make_app
from flask_asyncext.testing._checks import _release
from flask_asyncext.testing._harness import describe
from flask_asyncext.testing._harness import Subject
from flask_asyncext.testing._policy import run_check

_View = cabc.Callable[..., t.Any]


def wrapping(
    call: cabc.Callable[[_View, tuple[t.Any, ...], dict[str, t.Any]], t.Any],
) -> cabc.Callable[[_View], _View]:
    """A sync decorator (sync views only) whose wrapper runs ``call``."""

    def decorator(view: _View) -> _View:
        @functools.wraps(view)
        def wrapper(*args: t.Any, **kwargs: t.Any) -> t.Any:
            return call(view, args, kwargs)

        return wrapper

    return decorator


def check(name: str, decorator: _View, **options: t.Any) -> str:
    subject = Subject(decorator, make_app, **options)
    outcome = run_check(CHECKS[name], subject, "sync-function", None)
    assert outcome.status == "failed"
    assert "\n" not in outcome.message
    assert outcome.message.startswith(f"{name}: expected ")
    assert outcome.message.endswith(" [view kind sync-function]")
    return outcome.message


class Unraisable:
    def __del__(self) -> None:
        raise ValueError("boom")


def leave_unraisable(view: _View, args: t.Any, kwargs: t.Any) -> t.Any:
    Unraisable()
    return view(*args, **kwargs)


def test_unraisable_exception() -> None:
    message = check("test_allowed_request_reaches_view", wrapping(leave_unraisable))
    assert "without warnings; got Exception ignored" in message
    assert "Unraisable.__del__" in message
    assert message.endswith(": ValueError: boom [view kind sync-function]")


def test_decorator_raises() -> None:
    def refuse(view: _View) -> _View:
        raise TypeError("not this one")

    message = check("test_metadata_kept", refuse)
    assert "; got TypeError: not this one [" in message


def test_view_not_run() -> None:
    message = check(
        "test_allowed_request_reaches_view", wrapping(lambda v, a, k: "nope")
    )
    assert "; got status 200 and the view did not run [" in message


def test_denied_request_let_through() -> None:
    message = check(
        "test_denied_request_never_runs_view",
        wrapping(lambda v, a, k: v(*a, **k)),
        blocks_requests=True,
    )
    assert (
        "; got FAIL OPEN: a request that must be refused reached the view"
        " (status 200, the view ran 1 time(s)) [" in message
    )


def test_name_lost() -> None:
    def rename(view: _View) -> _View:
        def wrapper(*args: t.Any, **kwargs: t.Any) -> t.Any:
            return view(*args, **kwargs)

        return wrapper

    message = check("test_metadata_kept", rename)
    assert "expected __name__ 'probe_view' (functools.wraps); got 'wrapper'" in message


def test_attribute_lost() -> None:
    def forget(view: _View) -> _View:
        @functools.wraps(view, updated=())
        def wrapper(*args: t.Any, **kwargs: t.Any) -> t.Any:
            return view(*args, **kwargs)

        return wrapper

    message = check("test_metadata_kept", forget)
    assert "the view's attribute 'asyncext_marker' 'kept'" in message
    assert "got '<missing>'" in message


def test_signature_unavailable() -> None:
    """A decorated view whose signature cannot be computed fails with the
    error :func:`inspect.signature` raised. A ``__wrapped__`` loop raises
    the same error on every supported Python (a bad ``__signature__`` is a
    ``TypeError`` before 3.12 and a ``ValueError`` since).
    """

    def wrapped_loop(view: _View) -> _View:
        wrapper = functools.wraps(view)(lambda *a, **k: view(*a, **k))
        vars(wrapper)["__wrapped__"] = wrapper
        return wrapper

    message = check("test_signature_kept", wrapped_loop)
    want = "(item_id: 'int', name: 'str', **injected: 'object') -> 'object'"
    assert (
        f"expected the signature {want}; got ValueError: wrapper loop when"
        " unwrapping <function " in message
    )


def test_wrong_arguments() -> None:
    message = check(
        "test_allowed_request_reaches_view",
        wrapping(lambda v, a, k: v(item_id=1, name="bob")),
    )
    assert "got status 200 and the view called with [(1, 'bob')]" in message


def test_body_changed() -> None:
    message = check(
        "test_allowed_request_reaches_view",
        wrapping(lambda v, a, k: v(*a, **k).upper()),
    )
    assert (
        "expected the view's body b'probe 7 alice' back; got b'PROBE 7 ALICE'"
        in message
    )


def test_shape_changed() -> None:
    message = check(
        "test_response_shapes_pass_through",
        wrapping(lambda v, a, k: str(v(*a, **k))),
    )
    assert (
        "expected the view's bytes to pass through as status 200, b'probe';" in message
    )
    assert "got status 200, b\"b'probe'\"" in message


def drop_header(view: _View, args: t.Any, kwargs: t.Any) -> t.Any:
    response = make_response(view(*args, **kwargs))
    response.headers.pop("X-Asyncext", None)
    return response


def test_header_dropped() -> None:
    message = check("test_response_shapes_pass_through", wrapping(drop_header))
    assert (
        "tuple with headers to pass through as status 200, b'probe' with header"
        in message
    )


def swallow(view: _View, args: t.Any, kwargs: t.Any) -> t.Any:
    try:
        return view(*args, **kwargs)
    except Exception:
        return "swallowed"


def test_exception_swallowed() -> None:
    message = check("test_exceptions_reach_error_handlers", wrapping(swallow))
    assert "; got status 200, handler called 0 time(s) [" in message


def catch_abort(view: _View, args: t.Any, kwargs: t.Any) -> t.Any:
    try:
        return view(*args, **kwargs)
    except HTTPException:
        return "caught"


def test_abort_caught() -> None:
    message = check("test_abort_reaches_error_handlers", wrapping(catch_abort))
    assert "; got status 200, b'caught' [" in message


def overwrite_g(view: _View, args: t.Any, kwargs: t.Any) -> t.Any:
    g.asyncext_marker = "other"
    return view(*args, **kwargs)


def test_context_changed() -> None:
    message = check("test_context_visible_in_view", wrapping(overwrite_g))
    assert "expected the view to see g as 'marker'; got 'other'" in message


def test_stacked_changes_body() -> None:
    def once_only(view: _View) -> _View:
        stacked = hasattr(view, "once_only")

        @functools.wraps(view)
        def wrapper(*args: t.Any, **kwargs: t.Any) -> t.Any:
            rv = view(*args, **kwargs)
            return "twice" if stacked else rv

        vars(wrapper)["once_only"] = True
        return wrapper

    message = check("test_stacks_with_itself", once_only)
    assert (
        "decorated twice, to answer an allowed request; got status 200, b'twice'"
        in message
    )


async def pending() -> None:
    pass


def leave_coroutine_in_cycle(view: _View, args: t.Any, kwargs: t.Any) -> t.Any:
    cycle: list[object] = [pending()]
    cycle.append(cycle)
    return view(*args, **kwargs)


def test_never_awaited_in_garbage_cycle() -> None:
    """A coroutine only a garbage cycle holds is found by the collection
    after the request, however many objects the session already holds.
    """
    ballast = [[{} for _ in range(10)] for _ in range(10_000)]
    message = check(
        "test_allowed_request_reaches_view", wrapping(leave_coroutine_in_cycle)
    )
    assert len(ballast) == 10_000
    assert (
        "expected an allowed request to reach the view with item_id=7,"
        " name='alice' without warnings; got RuntimeWarning: coroutine"
        " 'pending' was never awaited [" in message
    )


@pytest.mark.parametrize("enabled", [True, False])
def test_garbage_collector_state_kept(enabled: bool) -> None:
    """Automatic collection is off only while a request is watched."""
    seen: list[bool] = []

    def record(view: _View, args: t.Any, kwargs: t.Any) -> t.Any:
        seen.append(gc.isenabled())
        return view(*args, **kwargs)

    subject = Subject(wrapping(record), make_app)
    check = CHECKS["test_allowed_request_reaches_view"]

    if not enabled:
        gc.disable()

    try:
        outcome = run_check(check, subject, "sync-function", None)
        assert gc.isenabled() is enabled
    finally:
        gc.enable()

    assert outcome.status == "passed"
    assert seen == [False]


@pytest.mark.parametrize(
    ("version", "release"),
    [
        ("3.1.2", (3, 1, 2)),
        ("3.0.0", (3, 0, 0)),
        ("3.1.2rc1", (3, 1, 2)),
        ("3.2.0.dev0", (3, 2, 0)),
        ("unknown", ()),
    ],
)
def test_release(version: str, release: tuple[int, ...]) -> None:
    assert _release(version) == release


def unstream(rv: t.Any) -> t.Any:
    return "no stream" if isinstance(rv, cabc.Iterator) else rv


def break_streams(view: _View) -> _View:
    """Replace a streamed response, on sync and async views alike."""
    if inspect.iscoroutinefunction(view):

        @functools.wraps(view)
        async def async_wrapper(*args: t.Any, **kwargs: t.Any) -> t.Any:
            return unstream(await view(*args, **kwargs))

        return async_wrapper

    @functools.wraps(view)
    def wrapper(*args: t.Any, **kwargs: t.Any) -> t.Any:
        return unstream(view(*args, **kwargs))

    return wrapper


@pytest.mark.parametrize("streams", [True, False])
@pytest.mark.parametrize("kind", ["sync-function", "async-function"])
def test_stream_shape_left_out_on_async_views_of_old_flask(
    monkeypatch: pytest.MonkeyPatch, streams: bool, kind: str
) -> None:
    """Where Flask cannot stream from async views, the stream shape is left
    out on async view kinds only.
    """
    monkeypatch.setattr(_checks, "ASYNC_VIEWS_STREAM", streams)
    subject = Subject(break_streams, make_app)
    check = CHECKS["test_response_shapes_pass_through"]
    outcome = run_check(check, subject, kind, None)

    if not streams and kind == "async-function":
        assert outcome.status == "passed"
    else:
        assert outcome.status == "failed"
        assert (
            "expected the view's stream_with_context generator to pass through"
            " as status 200, b'probe marker'; got " in outcome.message
        )


class Guard:
    def __call__(self, view: _View) -> _View:
        return view  # pragma: no cover


def test_describe() -> None:
    """Labels are names, never a repr with a memory address."""
    assert describe(functools.partial(print)) == "partial(print)"
    assert describe(test_describe) == "test_describe"
    assert describe(Guard()) == "Guard instance"
    assert describe(wrapping) == "wrapping"
    assert describe(wrapping(swallow)) == "wrapping.decorator"


def test_main_module_imports_without_running() -> None:
    import flask_asyncext.__main__ as module

    assert vars(module)["main"].__name__ == "main"


def test_one_loop_check_counts_loops() -> None:
    """A sync view whose decorator bridges two coroutines uses two loops."""
    import asyncio

    async def nothing() -> None:
        await asyncio.sleep(0)

    def bridge_twice(view: _View, args: t.Any, kwargs: t.Any) -> t.Any:
        asyncio.run(nothing())
        asyncio.run(nothing())
        return view(*args, **kwargs)

    message = check("test_one_event_loop_per_request", wrapping(bridge_twice))
    assert "expected at most 0 event loop(s) for the request; got 2;" in message


@pytest.mark.parametrize(
    ("kind", "bridges", "message"),
    [
        ("sync-function", 0, None),
        (
            "sync-function",
            1,
            "expected at most 0 event loop(s) for the request; got 1;",
        ),
        ("async-function", 0, None),
        (
            "async-function",
            1,
            "expected at most 1 event loop(s) for the request; got 2;",
        ),
    ],
)
def test_one_loop_check_limit(kind: str, bridges: int, message: str | None) -> None:
    """A def view may use no loop, an async def view exactly its own: one
    loop more fails, with the count.
    """
    import asyncio

    async def nothing() -> None:
        await asyncio.sleep(0)

    def bridge(view: _View) -> _View:
        if inspect.iscoroutinefunction(view):

            @functools.wraps(view)
            async def async_wrapper(*args: t.Any, **kwargs: t.Any) -> t.Any:
                for _ in range(bridges):
                    await asyncio.to_thread(asyncio.run, nothing())

                return await view(*args, **kwargs)

            return async_wrapper

        @functools.wraps(view)
        def wrapper(*args: t.Any, **kwargs: t.Any) -> t.Any:
            for _ in range(bridges):
                asyncio.run(nothing())

            return view(*args, **kwargs)

        return wrapper

    subject = Subject(bridge, make_app)
    outcome = run_check(CHECKS["test_one_event_loop_per_request"], subject, kind, None)

    if message is None:
        assert outcome.status == "passed"
    else:
        assert outcome.status == "failed"
        assert message in outcome.message


def test_warning_from_no_module_file() -> None:
    """A warning whose file is no imported module is matched by the filters
    without a module name.
    """
    from flask_asyncext.testing._harness import sort_warnings

    message = warnings.WarningMessage(UserWarning("made up"), UserWarning, "<x>", 1)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert sort_warnings([message]) == (
            ["UserWarning: made up (an error under your warning filters)"],
            [],
        )


def test_no_brotli_module(monkeypatch: pytest.MonkeyPatch) -> None:
    from flask_asyncext.testing._harness import _brotli

    monkeypatch.setitem(sys.modules, "brotli", None)
    monkeypatch.setitem(sys.modules, "brotlicffi", None)
    assert _brotli() is None


def encode_unknown(view: _View, args: t.Any, kwargs: t.Any) -> t.Any:
    response = make_response(view(*args, **kwargs))
    response.headers["Content-Encoding"] = "zstd"
    return response


def test_undecodable_body() -> None:
    message = check("test_allowed_request_reaches_view", wrapping(encode_unknown))
    assert (
        "; got the response is encoded as 'zstd', which the suite cannot decode ["
        in message
    )


def test_no_asgiref_is_a_skip(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where Flask itself cannot run async code (no asgiref, the base
    install), async checks are skipped with what to install, not blamed on
    the decorator.
    """
    from flask_asyncext.testing.samples import traced

    def no_async(self: t.Any, func: t.Any) -> t.Any:
        raise RuntimeError(
            "Install Flask with the 'async' extra in order to use async views."
        )

    monkeypatch.setattr("flask.Flask.async_to_sync", no_async)
    subject = Subject(traced, make_app)
    check = CHECKS["test_allowed_request_reaches_view"]
    outcome = run_check(check, subject, "async-function", None)
    assert outcome.status == "skipped"
    assert outcome.message == (
        "test_allowed_request_reaches_view: Flask cannot run async code here:"
        " asgiref is not installed (pip install 'Flask-AsyncExt[async]')"
    )
    assert run_check(check, subject, "sync-function", None).status == "passed"
