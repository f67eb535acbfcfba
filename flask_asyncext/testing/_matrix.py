"""The compatibility matrix: decorators under test against checks, one mark
per view kind in each cell, as text or as JSON.
"""

from __future__ import annotations

import collections.abc as cabc
import textwrap
import typing as t

from ._apps import app_kind_of
from ._apps import QUART_VIEW_KINDS
from ._apps import VIEW_KINDS
from ._apps import view_kinds
from ._checks import CHECKS
from ._checks import SUITE_LEVEL
from ._policy import Outcome

#: A denied request that reached the view: its own status and mark.
FAIL_OPEN = "fail-open"
MARKS = {"passed": ".", "failed": "F", FAIL_OPEN: "!", "xfailed": "x", "skipped": "s"}
NOT_RUN = "-"
#: Where several outcomes share a cell (one per denial), the worst shows.
_RANK = ["passed", "skipped", "xfailed", "failed", FAIL_OPEN]


def status_of(outcome: Outcome) -> str:
    """The matrix status of an outcome: its status, or ``"fail-open"``."""
    if outcome.status == "failed" and outcome.fail_open:
        return FAIL_OPEN

    return outcome.status


class _Row:
    """One decorator under test: the callback modes it ran in, and a status
    per check, view kind and callback mode.
    """

    def __init__(self, label: str, app_kind: str) -> None:
        self.label = label
        self.app_kind = app_kind
        self.kinds = view_kinds(app_kind)
        self.modes: list[str | None] = []
        self.statuses: dict[tuple[str, str, str | None], str] = {}


class Matrix:
    """Outcomes gathered per decorator under test, rendered as text."""

    def __init__(self) -> None:
        self._rows: dict[str, _Row] = {}

    def __bool__(self) -> bool:
        return bool(self._rows)

    def add(
        self, key: str, label: str, check: str, kind: str, mode: str | None, status: str
    ) -> None:
        """Record the outcome of ``check`` on ``kind`` in ``mode`` for the
        decorator under test identified by ``key``.
        """
        app_kind = app_kind_of(kind)

        if app_kind != "flask":
            key, label = f"{key}#{app_kind}", f"{label}, on {app_kind.title()}"

        row = self._rows.setdefault(key, _Row(label, app_kind))

        if mode is not None and mode not in row.modes:
            row.modes.append(mode)

        old = row.statuses.get((check, kind, mode))

        if old is None or _RANK.index(status) > _RANK.index(old):
            row.statuses[check, kind, mode] = status

    def add_outcomes(
        self, key: str, label: str, outcomes: cabc.Iterable[Outcome]
    ) -> None:
        for o in outcomes:
            self.add(key, label, o.check.name, o.kind, o.mode, status_of(o))

    def _status(self, row: _Row, check: str, kind: str, mode: str | None) -> str:
        status = row.statuses.get((check, kind, mode))

        if status is None:
            status = row.statuses.get((check, kind, None), "")

        return status

    def render(self, width: int = 80) -> list[str]:
        """The matrix as lines of at most ``width`` characters where it can."""
        kinds = ", ".join(VIEW_KINDS)
        quart = ""

        if any(row.app_kind == "quart" for row in self._rows.values()):
            quart = (
                " (on Quart, the same with quart- in front, and"
                f" {QUART_VIEW_KINDS[4]} fifth)"
            )

        lines = textwrap.wrap(
            f"cells: one mark per view kind, in this order: {kinds}{quart}. Marks:"
            " . pass, F fail, ! fail-open (a request that must be refused"
            " reached the view), x xfail, s skip, - not run. Checks marked *"
            " are recommended (cost), the others are required (correctness).",
            width=max(width, 40),
        )
        columns = [
            (c.name, c.column + ("*" if c.level == "recommended" else ""))
            for c in CHECKS.values()
        ]

        for row in self._rows.values():
            for mode in row.modes or [None]:
                label = row.label if mode is None else f"{row.label}, {mode} callbacks"
                lines.extend(["", label])
                cells = [
                    (
                        header,
                        "".join(
                            MARKS.get(self._status(row, name, kind, mode), NOT_RUN)
                            for kind in row.kinds
                        ),
                    )
                    for name, header in columns
                ]
                lines.extend(_table(cells, width))

        return lines

    def to_json(self) -> dict[str, t.Any]:
        """The matrix as data for a CI comment or a badge: the suite level,
        the view kinds and checks, then per decorator under test, app kind
        and callback mode, each check's status on each view kind (``"passed"``,
        ``"failed"``, ``"fail-open"``, ``"xfailed"``, ``"skipped"``, or
        ``null`` when not run).
        """
        rows: list[dict[str, t.Any]] = []

        for row in self._rows.values():
            for mode in row.modes or [None]:
                results = {
                    check: {
                        kind: self._status(row, check, kind, mode) or None
                        for kind in row.kinds
                    }
                    for check in CHECKS
                }
                rows.append(
                    {
                        "label": row.label,
                        "app_kind": row.app_kind,
                        "callback_mode": mode,
                        "results": results,
                    }
                )

        return {
            "suite_level": SUITE_LEVEL,
            "view_kinds": list(VIEW_KINDS),
            "checks": [
                {"name": c.name, "column": c.column, "level": c.level}
                for c in CHECKS.values()
            ],
            "rows": rows,
        }


def _table(cells: list[tuple[str, str]], width: int) -> list[str]:
    """Lay ``(header, cell)`` pairs out in columns, wrapped to ``width``."""
    lines: list[str] = []
    headers = values = "  "

    for header, cell in cells:
        size = max(len(header), len(cell)) + 1

        if len(headers) + size > width and headers.strip():
            lines.extend([headers.rstrip(), values.rstrip()])
            headers = values = "  "

        headers += header.ljust(size)
        values += cell.ljust(size)

    lines.extend([headers.rstrip(), values.rstrip()])
    return lines
