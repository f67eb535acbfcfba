"""Combine the test envs' coverage data and report it, knowing which Python
versions ran.

Each test env records its data under the static context ``py<X.Y>``
(``coverage run --context=py{py_dot_ver}`` in ``tox.ini``), so the combined
data says which versions were measured. Code under
``if sys.version_info <op> (X, Y):`` whose side of the test no measured
version took cannot have run; those statements are excluded from this report,
and every other line still counts, so the total stays 100% on a machine with
one Python as on one with every supported Python. Statements that some
measured version ran are never excluded.

Run it from the project root after the test envs: ``python
.ci/coverage_report.py`` (the ``coverage-report`` tox env does).
"""

from __future__ import annotations

import ast
import operator
import pathlib
import re
import sys
import typing as t

import coverage
from coverage.results import should_fail_under

_CONTEXT = re.compile(r"py(\d+)\.(\d+)")
_COMPARE: dict[type[ast.cmpop], t.Callable[[t.Any, t.Any], bool]] = {
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}


def measured_versions(contexts: t.Iterable[str]) -> set[tuple[int, int]]:
    """The Python versions named by the data's static contexts. A context that
    names none (data recorded without ``--context``) is an error: the report
    could not tell which version-dependent code ran.
    """
    versions = set()

    for context in contexts:
        match = _CONTEXT.fullmatch(context)

        if match is None:
            raise SystemExit(
                f"coverage data with context {context!r} does not name a Python"
                " version; record it with 'coverage run --context=pyX.Y'."
            )

        versions.add((int(match[1]), int(match[2])))

    return versions


def version_test(node: ast.expr) -> t.Callable[[tuple[int, int]], bool] | None:
    """For ``sys.version_info <op> (X, Y)``, a function of ``(major, minor)``
    that evaluates it; ``None`` for any other expression.
    """
    if not (
        isinstance(node, ast.Compare)
        and len(node.ops) == 1
        and type(node.ops[0]) in _COMPARE
        and ast.unparse(node.left) == "sys.version_info"
    ):
        return None

    try:
        bound = ast.literal_eval(node.comparators[0])
    except ValueError:
        return None

    # A micro version in the bound cannot be decided from "py3.11".
    if not (isinstance(bound, tuple) and 1 <= len(bound) <= 2):
        return None

    compare = _COMPARE[type(node.ops[0])]
    return lambda version: compare(version[: len(bound)], bound)


class _Source:
    def __init__(self, path: pathlib.Path) -> None:
        self.text = path.read_text("utf-8")
        self.lines = self.text.splitlines(keepends=True)
        self.starts = [0]

        for line in self.lines:
            self.starts.append(self.starts[-1] + len(line))

    def offset(self, lineno: int, col_offset: int) -> int:
        line = self.lines[lineno - 1].encode("utf-8")
        return self.starts[lineno - 1] + len(line[:col_offset].decode("utf-8"))

    def exclusion(self, node: ast.If, stmt: ast.stmt) -> str:
        """A regex that matches the first line of ``stmt`` only where it
        follows this very ``if``: the look-behind is the source text from the
        ``if`` to the statement, so the same line elsewhere is not matched.
        """
        first = min([stmt, *getattr(stmt, "decorator_list", [])], key=_position)
        col = first.col_offset - (1 if first is not stmt else 0)  # the "@"
        start = self.offset(first.lineno, col)
        end = self.starts[first.lineno]
        before = self.text[self.offset(node.lineno, node.col_offset) : start]
        return f"(?<={re.escape(before)}){re.escape(self.text[start:end].rstrip())}"

    def header(self, node: ast.If) -> str:
        start = self.offset(node.lineno, node.col_offset)
        text = self.text[start : self.starts[node.lineno]].rstrip()
        return f"^[ \\t]*{re.escape(text)}"


def _position(node: ast.AST) -> tuple[int, int]:
    return (node.lineno, node.col_offset)  # type: ignore[attr-defined]


def version_exclusions(
    path: pathlib.Path, versions: set[tuple[int, int]]
) -> tuple[list[str], list[str], list[str]]:
    """Regexes for the statements of ``path`` that none of ``versions`` ran,
    regexes for the ``if`` lines whose other branch none of them took, and a
    line per excluded block for the report.
    """
    source = _Source(path)
    exclude: list[str] = []
    partial: list[str] = []
    notes: list[str] = []

    for node in ast.walk(ast.parse(source.text, str(path))):
        if not isinstance(node, ast.If):
            continue

        test = version_test(node.test)

        if test is None:
            continue

        outcomes = {test(version) for version in versions}
        condition = ast.unparse(node.test)

        for outcome, block in ((True, node.body), (False, node.orelse)):
            if outcome in outcomes:
                continue

            if block:
                exclude.extend(source.exclusion(node, stmt) for stmt in block)
                lines = f"{block[0].lineno}-{block[-1].end_lineno}"
                notes.append(f"{path}:{lines} (needs {condition} to be {outcome})")
            else:
                # No else: the "if" line never jumps past its body.
                partial.append(source.header(node))

    return exclude, partial, notes


def main() -> int:
    cov = coverage.Coverage()
    cov.combine(keep=False)
    cov.save()
    data = cov.get_data()
    versions = measured_versions(data.measured_contexts())

    if not versions:
        raise SystemExit("no coverage data: run the test envs first")

    print(
        "Python versions measured:",
        ", ".join(f"{major}.{minor}" for major, minor in sorted(versions)),
    )

    for name in sorted(data.measured_files()):
        path = pathlib.Path(name)

        if path.suffix != ".py" or not path.is_file():
            continue

        exclude, partial, notes = version_exclusions(path, versions)

        for regex in exclude:
            cov.exclude(regex)

        for regex in partial:
            cov.exclude(regex, which="partial")

        for note in notes:
            print("Not run by any measured version, excluded:", note)

    total = cov.report()
    fail_under = t.cast(float, cov.get_option("report:fail_under"))
    precision = t.cast(int, cov.get_option("report:precision"))

    if should_fail_under(total, fail_under, precision):
        print(
            f"Coverage failure: total of {total:.{precision}f} is less than"
            f" fail-under={fail_under:.{precision}f}"
        )
        return 2

    return 0


if __name__ == "__main__":
    sys.exit(main())
