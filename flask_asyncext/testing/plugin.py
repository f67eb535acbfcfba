"""The pytest plugin of :mod:`flask_asyncext.testing`, registered under the
``pytest11`` entry point ``flask_asyncext``.

It is inert for projects that do not use it: no autouse fixtures, and every
fixture, option and ini key it adds starts with ``asyncext_``. It prints the
compatibility matrix of the conformance tests that ran, and provides the
:func:`asyncext_check` fixture.
"""

from __future__ import annotations

import collections.abc as cabc
import json
import os
import pathlib
import typing as t

import pytest
from flask import Flask

from ._apps import make_app
from ._checks import CHECKS
from ._harness import describe
from ._harness import Effect
from ._harness import InstallCallbacks
from ._harness import no_shaping
from ._harness import ONE_DENIAL
from ._harness import Shaper
from ._harness import Subject
from ._matrix import FAIL_OPEN as FAIL_OPEN_STATUS
from ._matrix import Matrix
from ._policy import load_expected_failures
from ._policy import Outcome
from ._policy import Policy
from ._policy import run_all
from .suite import DecoratorConformance
from .suite import FAIL_OPEN
from .suite import level_from_ini
from .suite import ROW_LABEL
from .suite import strict_from_ini

_MATRIX = pytest.StashKey[Matrix]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("flask-asyncext")
    group.addoption(
        "--asyncext-no-matrix",
        action="store_true",
        dest="asyncext_no_matrix",
        help="Do not print the flask-asyncext compatibility matrix.",
    )
    parser.addini(
        "asyncext_matrix",
        type="bool",
        default=True,
        help="Print the flask-asyncext compatibility matrix (default: true).",
    )
    group.addoption(
        "--asyncext-matrix-json",
        dest="asyncext_matrix_json",
        metavar="PATH",
        help="Write the flask-asyncext compatibility matrix as JSON to PATH.",
    )
    parser.addini(
        "asyncext_matrix_json",
        default="",
        help="Write the flask-asyncext compatibility matrix as JSON to this path.",
    )
    parser.addini(
        "asyncext_suite_level",
        default="",
        help=(
            "Run the flask-asyncext checks of this suite level only (default:"
            " the newest)."
        ),
    )
    parser.addini(
        "asyncext_strict",
        type="bool",
        default=False,
        help="Fail the run when a recommended flask-asyncext check fails.",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_MATRIX] = Matrix()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> cabc.Generator[None, t.Any, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    cls = getattr(item, "cls", None)
    callspec = getattr(item, "callspec", None)

    if (
        cls is None
        or callspec is None
        or not issubclass(cls, DecoratorConformance)
        or getattr(item, "originalname", None) not in CHECKS
        or (report.when != "call" and report.passed)
    ):
        return

    status: str = "xfailed" if hasattr(report, "wasxfail") else report.outcome

    if status == "failed" and item.stash.get(FAIL_OPEN, False):
        status = FAIL_OPEN_STATUS
    label = item.stash.get(ROW_LABEL, cls.__name__)
    item.config.stash[_MATRIX].add(
        item.nodeid.partition("::")[0] + "::" + cls.__qualname__,
        label,
        t.cast(str, getattr(item, "originalname", "")),
        callspec.params["asyncext_view_kind"],
        callspec.params["asyncext_callback_mode"],
        status,
    )


def pytest_terminal_summary(
    terminalreporter: t.Any, exitstatus: int, config: pytest.Config
) -> None:
    matrix = config.stash[_MATRIX]
    path = config.getoption("asyncext_matrix_json") or config.getini(
        "asyncext_matrix_json"
    )

    if matrix and path:
        path = pathlib.Path(config.rootpath, path)
        path.write_text(json.dumps(matrix.to_json(), indent=2) + "\n")
        terminalreporter.write_line(f"flask-asyncext matrix written to {path}")

    if (
        not matrix
        or config.getoption("asyncext_no_matrix")
        or not config.getini("asyncext_matrix")
    ):
        return

    terminalreporter.write_sep("=", "flask-asyncext compatibility matrix")
    width = config.get_terminal_writer().fullwidth

    for line in matrix.render(width):
        terminalreporter.write_line(line)


class AsyncextCheck:
    """What the :func:`asyncext_check` fixture returns: call it with a
    decorator to run every conformance check on it.

    .. versionadded:: 0.1
    """

    def __init__(self, request: pytest.FixtureRequest) -> None:
        self._request = request
        self._calls = 0

    def __call__(
        self,
        decorator: cabc.Callable[..., t.Any],
        *,
        app_factory: cabc.Callable[[], Flask] = make_app,
        blocks_requests: bool = False,
        denied_status: int | cabc.Collection[int] = (401, 403),
        allow: Shaper = no_shaping,
        deny: Shaper | cabc.Mapping[str, Shaper] = no_shaping,
        install_callbacks: InstallCallbacks | None = None,
        expected_failures: cabc.Mapping[str, str]
        | str
        | os.PathLike[str]
        | None = None,
        strict: bool | None = None,
        suite_level: int | None = None,
        method: str = "GET",
        injected: cabc.Sequence[str] = (),
        expect_effect: Effect | None = None,
    ) -> list[Outcome]:
        """Run every check on ``decorator`` and fail the test with the matrix
        and one line per failure if a required check fails (or, when
        ``strict``, a recommended one). The keyword arguments mean what the
        :class:`~flask_asyncext.testing.DecoratorConformance` attributes and
        hooks of the same names mean; ``app_factory`` makes a new app for
        each check; ``deny`` may map denial names to their shapers;
        ``expected_failures`` may be the path of a file of them.

        :return: The outcome of every check on every view kind.
        """
        request = self._request

        if strict is None:
            strict = strict_from_ini(request.config)

        if suite_level is None:
            suite_level = level_from_ini(request.config)

        if expected_failures is None:
            expected_failures = {}
        elif not isinstance(expected_failures, cabc.Mapping):
            expected_failures = load_expected_failures(expected_failures)

        denials: dict[str, Shaper] = (
            {ONE_DENIAL: deny} if callable(deny) else dict(deny)
        )
        subject = Subject(
            decorator=decorator,
            make_app=app_factory,
            blocks_requests=blocks_requests,
            denied_status=t.cast("tuple[int, ...]", denied_status),
            allow=allow,
            denials=denials,
            install_callbacks=install_callbacks,
            method=method,
            injected=tuple(injected),
            effect=expect_effect,
        )
        policy = Policy(expected_failures, strict)

        if suite_level is not None:
            policy = Policy(expected_failures, strict, suite_level)

        outcomes = run_all(subject, policy)
        self._calls += 1
        label = f"{request.node.name}: {describe(decorator)}"
        key = f"{request.node.nodeid}#{self._calls}"
        request.config.stash[_MATRIX].add_outcomes(key, label, outcomes)
        failed = [o.message for o in outcomes if o.status == "failed"]

        if failed:
            only = Matrix()
            only.add_outcomes(key, label, outcomes)
            lines = [
                f"{describe(decorator)} failed {len(failed)} check(s):",
                *failed,
                "",
                *only.render(120),
            ]
            pytest.fail("\n".join(lines), pytrace=False)

        return outcomes


@pytest.fixture
def asyncext_check(request: pytest.FixtureRequest) -> AsyncextCheck:
    """Run the conformance checks on a decorator without subclassing
    :class:`~flask_asyncext.testing.DecoratorConformance`:

    .. code-block:: python

        def test_cors(asyncext_check):
            asyncext_check(cross_origin())

    .. versionadded:: 0.1
    """
    return AsyncextCheck(request)
