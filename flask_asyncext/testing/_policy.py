"""What a check's outcome means for the run: the one policy the suite class,
the ``asyncext_check`` fixture and the command line tool share for expected
failures, strictness and the pinned suite level, and the run loop.
"""

from __future__ import annotations

import collections.abc as cabc
import dataclasses
import os
import typing as t

from ._apps import view_kinds
from ._checks import Check
from ._checks import CHECKS
from ._checks import SUITE_LEVEL
from ._harness import CheckFailed
from ._harness import CheckSkipped
from ._harness import ONE_DENIAL
from ._harness import Run
from ._harness import Subject

Status = t.Literal["passed", "failed", "skipped", "xfailed"]


@dataclasses.dataclass(frozen=True)
class Outcome:
    """How one check went on one view kind in one callback mode: ``status``
    is ``"passed"``, ``"failed"``, ``"skipped"`` or ``"xfailed"``, and
    ``message`` the one-line reason. ``fail_open`` tells a denied request
    that reached the view (a security finding) from other failures;
    ``cause`` is what happened instead of what the check expected;
    ``denial`` names the denial of a denied check when the subject describes
    several.

    .. versionadded:: 0.1
    """

    __module__ = "flask_asyncext.testing"

    check: Check
    kind: str
    mode: str | None
    status: Status
    message: str = ""
    fail_open: bool = False
    cause: str = ""
    denial: str | None = None

    @property
    def param_id(self) -> str:
        """The parameter id of the test that gave this outcome."""
        return param_id(self.kind, self.mode, self.denial)


def param_id(kind: str, mode: str | None, denial: str | None = None) -> str:
    """The parameter id of a check on a view kind in a callback mode (and
    with a denial).
    """
    pid = kind if mode is None else f"{kind}-{mode}-callbacks"
    return pid if not denial else f"{pid}-{denial}"


def load_expected_failures(path: str | os.PathLike[str]) -> dict[str, str]:
    """Read expected failures from a text file, one per line:
    ``test name[param id] = reason or link``; blank lines and lines
    starting with ``#`` are left out.

    .. code-block:: text

        # Our decorator turns async views into sync ones (issue #12).
        test_calling_convention_kept = https://github.com/me/ext/issues/12

    :raise ValueError: A line without a reason, naming the file and line.

    .. versionadded:: 0.1
    """
    failures: dict[str, str] = {}

    with open(path, encoding="utf-8") as f:
        for number, raw in enumerate(f, 1):
            line = raw.strip()

            if not line or line.startswith("#"):
                continue

            key, _, reason = (part.strip() for part in line.partition("="))

            if not key or not reason:
                raise ValueError(
                    f"{os.fspath(path)}, line {number}: write 'test name = reason',"
                    f" got {line!r}"
                )

            failures[key] = reason

    return failures


def check_level(level: object) -> int:
    """``level`` if it is a suite level this release knows.

    :raise ValueError: Anything else.
    """
    if (
        not isinstance(level, int)
        or isinstance(level, bool)
        or not 1 <= level <= SUITE_LEVEL
    ):
        raise ValueError(
            f"suite_level must be a suite level from 1 to {SUITE_LEVEL} (the"
            f" level of this release); got {level!r}"
        )

    return level


@dataclasses.dataclass(frozen=True)
class Policy:
    """What the subject declared about its outcomes: expected failures (test
    name or test name with a parameter id, to a reason), whether failed
    recommended checks fail, and the suite level it is pinned to.
    """

    expected_failures: cabc.Mapping[str, str] = dataclasses.field(
        default_factory=dict[str, str]
    )
    strict: bool = False
    level: int = SUITE_LEVEL

    def __post_init__(self) -> None:
        check_level(self.level)

    def reason(self, outcome: Outcome) -> str | None:
        name = outcome.check.name
        failures = self.expected_failures
        return failures.get(f"{name}[{outcome.param_id}]", failures.get(name))

    def settle(self, outcome: Outcome) -> Outcome:
        """Apply the policy to a check's outcome: a check newer than the
        pinned level is a skip; an expected failure becomes an xfail (and an
        expected failure that passes fails); a failed recommended check
        becomes an xfail unless ``strict``.
        """
        check = outcome.check

        if check.since > self.level:
            return dataclasses.replace(
                outcome,
                status="skipped",
                message=(
                    f"{check.name}: added in suite level {check.since}; this"
                    f" project pins level {self.level}"
                ),
            )

        reason = self.reason(outcome)

        if outcome.status == "passed" and reason is not None:
            return dataclasses.replace(
                outcome,
                status="failed",
                message=(
                    f"{check.name}: passed but is listed in expected_failures"
                    f" ({reason})"
                ),
            )

        if outcome.status != "failed":
            return outcome

        if reason is not None:
            return dataclasses.replace(
                outcome,
                status="xfailed",
                message=f"expected failure ({reason}), {outcome.message}",
            )

        if check.level == "recommended" and not self.strict:
            return dataclasses.replace(
                outcome, status="xfailed", message=f"recommended, {outcome.message}"
            )

        return outcome


#: Flask's error for async code without asgiref: the environment cannot run
#: the check, whatever the decorator.
_NO_ASYNC = "Install Flask with the 'async' extra in order to use async views."


def run_check(
    check: Check,
    subject: Subject,
    kind: str,
    mode: str | None,
    denial: str | None = None,
) -> Outcome:
    """Run one check and tell how it went, before any policy is applied."""
    try:
        check.run(Run(subject, kind, mode, denial))
    except CheckFailed as e:
        if _NO_ASYNC in e.got:
            return Outcome(
                check,
                kind,
                mode,
                "skipped",
                f"{check.name}: Flask cannot run async code here: asgiref is not"
                " installed (pip install 'Flask-AsyncExt[async]')",
                denial=denial,
            )

        return Outcome(
            check,
            kind,
            mode,
            "failed",
            f"{check.name}: {e}",
            fail_open=e.fail_open,
            cause=e.got,
            denial=denial,
        )
    except CheckSkipped as e:
        return Outcome(
            check, kind, mode, "skipped", f"{check.name}: {e}", denial=denial
        )

    return Outcome(check, kind, mode, "passed", denial=denial)


def cases(
    check: Check,
    subject_modes: tuple[str | None, ...],
    denials: cabc.Iterable[str],
    app_kinds: cabc.Iterable[str] = ("flask",),
) -> list[tuple[str, str | None, str | None]]:
    """Every ``(view kind, callback mode, denial)`` a check runs on, in the
    order of the matrix: per app kind, the view kinds of that app kind.
    """
    modes = subject_modes if check.uses_requests else (None,)
    names = [d or None for d in denials] if check.denials else [None]
    return [
        (kind, mode, denial)
        for app_kind in app_kinds
        for mode in modes
        for denial in names
        for kind in view_kinds(app_kind)
    ]


def check_keys(
    expected_failures: cabc.Mapping[str, str],
    modes: tuple[str | None, ...],
    denials: cabc.Iterable[str] = (ONE_DENIAL,),
    app_kinds: cabc.Iterable[str] = ("flask",),
) -> None:
    """Raise :exc:`ValueError` naming a key of ``expected_failures`` that names
    no check, or no parameter id of that check.
    """
    denials = list(denials)
    app_kinds = list(app_kinds)

    for key in expected_failures:
        name, bracket, rest = key.partition("[")
        check = CHECKS.get(name)

        if check is not None and not bracket:
            continue

        if check is not None and rest.endswith("]"):
            ids = {param_id(*case) for case in cases(check, modes, denials, app_kinds)}

            if rest[:-1] in ids:
                continue

        raise ValueError(
            f"expected_failures key {key!r} names no test of the suite; use a"
            " test name, optionally with one of its parameter ids in brackets,"
            " e.g. 'test_denied_request_never_runs_view[async-function]'"
        )


def run_all(subject: Subject, policy: Policy | None = None) -> list[Outcome]:
    """Run every check on every view kind (callback mode and denial) and
    return the settled outcomes.
    """
    policy = Policy() if policy is None else policy
    app_kinds = subject.app_kinds
    check_keys(policy.expected_failures, subject.modes, subject.denials, app_kinds)
    outcomes: list[Outcome] = []

    for check in CHECKS.values():
        for kind, mode, denial in cases(
            check, subject.modes, subject.denials, app_kinds
        ):
            outcomes.append(run_settled(check, subject, kind, mode, denial, policy))

    return outcomes


def run_settled(
    check: Check,
    subject: Subject,
    kind: str,
    mode: str | None,
    denial: str | None,
    policy: Policy,
) -> Outcome:
    """Run one check unless the pinned level leaves it out, and settle its
    outcome with ``policy``.
    """
    if check.since > policy.level:
        outcome = Outcome(check, kind, mode, "passed", denial=denial)
    else:
        outcome = run_check(check, subject, kind, mode, denial)

    return policy.settle(outcome)
