"""The pytest plugin of :mod:`flask_asyncext.testing`, registered under the
``pytest11`` entry point ``flask_asyncext``.

It is inert for projects that do not use it: no autouse fixtures, and every
fixture, option and ini key it adds starts with ``asyncext_``. It prints the
compatibility matrix of the conformance tests that ran, and provides the
:func:`asyncext_check` fixture.
"""

from __future__ import annotations

import collections.abc as cabc
import typing as t

import pytest
from flask import Flask

from . import _checks
from ._apps import make_app
from ._checks import CHECKS
from ._checks import Outcome
from ._checks import run_all
from ._checks import Subject
from ._matrix import Matrix
from .suite import DecoratorConformance
from .suite import describe
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
    parser.addini(
        "asyncext_strict",
        type="bool",
        default=False,
        help="Fail the run when a recommended flask-asyncext check fails.",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_MATRIX] = Matrix()


_STATUS = {"passed": "passed", "failed": "failed", "skipped": "skipped"}


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

    status = "xfailed" if hasattr(report, "wasxfail") else report.outcome
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
        denied_status: tuple[int, ...] = (401, 403),
        allow: _checks.Shaper = _checks.no_shaping,
        deny: _checks.Shaper = _checks.no_shaping,
        install_callbacks: _checks.InstallCallbacks | None = None,
        expected_failures: cabc.Mapping[str, str] | None = None,
        strict: bool | None = None,
    ) -> list[Outcome]:
        """Run every check on ``decorator`` and fail the test with the matrix
        and one line per failure if a required check fails (or, when
        ``strict``, a recommended one). The keyword arguments mean what the
        :class:`~flask_asyncext.testing.DecoratorConformance` attributes of
        the same names mean; ``app_factory`` makes a new app for each check.

        :return: The outcome of every check on every view kind.
        """
        request = self._request

        if strict is None:
            strict = strict_from_ini(request.config)

        subject = Subject(
            decorator=decorator,
            make_app=app_factory,
            blocks_requests=blocks_requests,
            denied_status=tuple(denied_status),
            allow=allow,
            deny=deny,
            install_callbacks=install_callbacks,
        )
        outcomes = run_all(subject, strict=strict, expected_failures=expected_failures)
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
