"""The compatibility matrix: decorators under test against checks, one mark
per view kind in each cell.
"""

from __future__ import annotations

import collections.abc as cabc
import textwrap

from ._apps import VIEW_KINDS
from ._checks import CHECKS
from ._checks import Outcome

MARKS = {"passed": ".", "failed": "F", "xfailed": "x", "skipped": "s"}
NOT_RUN = "-"


class _Row:
    """One decorator under test: the callback modes it ran in, and a mark
    per check, view kind and callback mode.
    """

    def __init__(self, label: str) -> None:
        self.label = label
        self.modes: list[str | None] = []
        self.marks: dict[tuple[str, str, str | None], str] = {}


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
        row = self._rows.setdefault(key, _Row(label))

        if mode is not None and mode not in row.modes:
            row.modes.append(mode)

        row.marks[check, kind, mode] = MARKS.get(status, "?")

    def add_outcomes(
        self, key: str, label: str, outcomes: cabc.Iterable[Outcome]
    ) -> None:
        for o in outcomes:
            self.add(key, label, o.check.name, o.kind, o.mode, o.status)

    def render(self, width: int = 80) -> list[str]:
        """The matrix as lines of at most ``width`` characters where it can."""
        kinds = ", ".join(VIEW_KINDS)
        lines = textwrap.wrap(
            f"cells: one mark per view kind, in this order: {kinds}. Marks:"
            " . pass, F fail, x xfail, s skip, - not run. Checks marked * are"
            " recommended (cost), the others are required (correctness).",
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
                    (header, self._cell(row, name, mode)) for name, header in columns
                ]
                lines.extend(_table(cells, width))

        return lines

    @staticmethod
    def _cell(row: _Row, check: str, mode: str | None) -> str:
        marks: list[str] = []

        for kind in VIEW_KINDS:
            mark = row.marks.get((check, kind, mode))

            if mark is None:
                mark = row.marks.get((check, kind, None), NOT_RUN)

            marks.append(mark)

        return "".join(marks)


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
