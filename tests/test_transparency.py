"""Transparency, by property-based testing: a stack of pass-through toolkit
decorators changes nothing a client can see.

For every generated view (sync or async) x response shape x status x
headers x raised exception x stack of 0-4 pass-through decorators (generator,
plain and ``async def`` bodies, and a generator body that awaits before
calling the view), on Flask's default bridge and on SharedLoop, the decorated
app answers exactly what the undecorated one does: status, headers (in
order) and body.

The Hypothesis database is off (nothing written to the repository) and the
examples are derandomized, so every CI run checks the same ones.
"""

from __future__ import annotations

import asyncio
import collections.abc as cabc
import typing as t

import pytest
from flask import abort
from flask import Flask
from flask import Response

from flask_asyncext import async_compatible_decorator
from flask_asyncext.shared_loop import SharedLoop

# In the "servers" dependency group: only the slow test env installs it.
pytest.importorskip("hypothesis")

from hypothesis import given
from hypothesis import HealthCheck
from hypothesis import settings
from hypothesis import strategies as st

pytestmark = pytest.mark.slow

EXAMPLES = 200
#: Examples run, per bridge (printed at the end of the module).
examples_run: dict[str, int] = {"default": 0, "shared": 0}


def generator_body(
    view: cabc.Callable[..., t.Any], /, *args: t.Any, **kwargs: t.Any
) -> cabc.Generator[t.Any, t.Any, t.Any]:
    return (yield view(*args, **kwargs))


def awaiting_generator_body(
    view: cabc.Callable[..., t.Any], /, *args: t.Any, **kwargs: t.Any
) -> cabc.Generator[t.Any, t.Any, t.Any]:
    yield asyncio.sleep(0)
    response = yield view(*args, **kwargs)
    yield asyncio.sleep(0)
    return response


def plain_body(
    view: cabc.Callable[..., t.Any], /, *args: t.Any, **kwargs: t.Any
) -> t.Any:
    return view(*args, **kwargs)


async def async_body(
    view: cabc.Callable[..., t.Any], /, *args: t.Any, **kwargs: t.Any
) -> t.Any:
    return await view(*args, **kwargs)


BODIES: dict[str, t.Any] = {
    "generator": generator_body,
    "awaiting-generator": awaiting_generator_body,
    "plain": plain_body,
    "async": async_body,
}
DECORATORS = {name: async_compatible_decorator(body) for name, body in BODIES.items()}

SHAPES = [
    "str",
    "bytes",
    "dict",
    "list",
    "status",
    "headers",
    "status-headers",
    "response",
    "stream",
    "none",
]
EXCEPTIONS = [None, "abort", "handled", "unhandled"]

header_names = st.from_regex(r"\AX-[A-Za-z]{1,8}\Z")
header_values = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=12
).map(str.strip)


class Case(t.NamedTuple):
    kind: str
    shape: str
    status: int
    headers: dict[str, str]
    exception: str | None
    stack: list[str]


cases = st.builds(
    Case,
    kind=st.sampled_from(["sync", "async"]),
    shape=st.sampled_from(SHAPES),
    status=st.sampled_from([200, 201, 202, 299, 302, 400, 404, 418, 500, 503]),
    headers=st.dictionaries(header_names, header_values, max_size=3),
    exception=st.sampled_from(EXCEPTIONS),
    stack=st.lists(st.sampled_from(list(BODIES)), max_size=4),
)


def answer(case: Case) -> t.Any:
    if case.exception == "abort":
        abort(case.status if case.status >= 400 else 403)

    if case.exception == "handled":
        raise ValueError("handled by the app's error handler")

    if case.exception == "unhandled":
        raise RuntimeError("unhandled: 500")

    shape, status, headers = case.shape, case.status, case.headers

    if shape == "str":
        return "text"
    if shape == "bytes":
        return b"bytes"
    if shape == "dict":
        return {"status": status, "headers": headers}
    if shape == "list":
        return [1, "two", None]
    if shape == "status":
        return "text", status
    if shape == "headers":
        return "text", headers
    if shape == "status-headers":
        return "text", status, headers
    if shape == "response":
        return Response("response", status=status, headers=headers)
    if shape == "stream":
        return (chunk for chunk in ("a", "b", "c")), status, headers

    return None  # Flask refuses it: TypeError, 500


def build_app(case: Case, decorated: bool, runner: SharedLoop | None) -> Flask:
    app = Flask(__name__)

    if runner is not None:
        runner.init_app(app)

    @app.errorhandler(ValueError)
    def handle_value_error(e: ValueError) -> t.Any:
        return "handled", 409

    if case.kind == "sync":

        def view() -> t.Any:
            return answer(case)

    else:

        async def view() -> t.Any:  # type: ignore[misc]
            await asyncio.sleep(0)
            return answer(case)

    if decorated:
        for name in reversed(case.stack):
            view = DECORATORS[name](view)

    app.add_url_rule("/", "view", view)
    return app


def observe(app: Flask) -> tuple[int, list[tuple[str, str]], bytes]:
    response = app.test_client().get("/")
    return response.status_code, list(response.headers), response.get_data()


@pytest.fixture(scope="module")
def shared_runner() -> cabc.Iterator[SharedLoop]:
    runner = SharedLoop()
    yield runner
    runner.close(timeout=5)
    print(f"\nHypothesis examples run per bridge: {examples_run}")


@pytest.mark.parametrize("bridge", ["default", "shared"])
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=True,
    # The autouse context-leak check is function-scoped; it holds no state
    # between examples.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(case=cases)
def test_decorated_app_answers_like_undecorated(
    bridge: str, case: Case, shared_runner: SharedLoop
) -> None:
    runner = shared_runner if bridge == "shared" else None
    plain = observe(build_app(case, False, runner))
    decorated = observe(build_app(case, True, runner))
    examples_run[bridge] += 1
    assert decorated == plain
    # And the undecorated app answers what the case asks for.
    assert plain[0] == expected_status(case)


def expected_status(case: Case) -> int:
    if case.exception == "abort":
        return case.status if case.status >= 400 else 403
    if case.exception == "handled":
        return 409
    if case.exception == "unhandled" or case.shape == "none":
        return 500
    if case.shape in ("status", "status-headers", "response", "stream"):
        return case.status
    return 200
