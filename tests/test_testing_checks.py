"""Each check of the suite, run directly on decorators that break exactly
what it checks, reports a one-line failure that says so.
"""

from __future__ import annotations

import collections.abc as cabc
import functools
import gc
import typing as t

import pytest
from flask import g
from flask import make_response
from werkzeug.exceptions import HTTPException

from flask_asyncext.testing import CHECKS
from flask_asyncext.testing import make_app
from flask_asyncext.testing._checks import run_check
from flask_asyncext.testing._checks import Subject
from flask_asyncext.testing.suite import describe

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
    assert "; got status 200 and the view ran 1 time(s) [" in message


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
    def bad_signature(view: _View) -> _View:
        wrapper = functools.wraps(view)(lambda *a, **k: view(*a, **k))
        wrapper.__signature__ = "nonsense"  # type: ignore[attr-defined]
        return wrapper

    message = check("test_signature_kept", bad_signature)
    want = "(item_id: 'int', name: 'str') -> 'object'"
    assert f"expected the signature {want}; got TypeError" in message


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

        wrapper.once_only = True  # type: ignore[attr-defined]
        return wrapper

    message = check("test_stacks_with_itself", once_only)
    assert (
        "decorated twice, to answer an allowed request; got status 200, b'twice'"
        in message
    )


def test_already_frozen_garbage_collector() -> None:
    subject = Subject(wrapping(lambda v, a, k: v(*a, **k)), make_app)
    gc.freeze()

    try:
        outcome = run_check(
            CHECKS["test_metadata_kept"], subject, "sync-function", None
        )
    finally:
        gc.unfreeze()

    assert outcome.status == "passed"


def test_describe() -> None:
    partial = functools.partial(print)
    assert describe(partial) == repr(partial)
    assert describe(test_describe) == "test_describe"


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


@pytest.mark.parametrize("bridges", [0, 1])
def test_one_loop_check_passes(bridges: int) -> None:
    import asyncio

    async def nothing() -> None:
        await asyncio.sleep(0)

    def bridge(view: _View, args: t.Any, kwargs: t.Any) -> t.Any:
        for _ in range(bridges):
            asyncio.run(nothing())

        return view(*args, **kwargs)

    subject = Subject(wrapping(bridge), make_app)
    outcome = run_check(
        CHECKS["test_one_event_loop_per_request"], subject, "sync-function", None
    )
    assert outcome.status == ("passed" if bridges == 0 else "failed")
