"""The coverage report's handling of code that only some Python versions run
(``.ci/coverage_report.py``, run by the ``coverage-report`` tox env).
"""

from __future__ import annotations

import importlib.util
import pathlib
import re
import textwrap
import types

import pytest

SCRIPT = pathlib.Path(__file__).parent.parent / ".ci" / "coverage_report.py"


@pytest.fixture(scope="module")
def report() -> types.ModuleType:
    pytest.importorskip("coverage")
    spec = importlib.util.spec_from_file_location("coverage_report", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SOURCE = textwrap.dedent(
    """\
    import sys

    if sys.version_info >= (3, 12):
        from inspect import iscoroutinefunction
    else:
        import asyncio.coroutines

        def iscoroutinefunction(obj):
            return False

    if sys.version_info < (3, 11):
        OLD = True

    x = 1
    """
)


def excluded_lines(regexes: list[str], text: str) -> set[int]:
    lines = set()

    for regex in regexes:
        for match in re.finditer(regex, text, flags=re.MULTILINE):
            lines.add(text.count("\n", 0, match.start()) + 1)

    return lines


def test_measured_versions(report: types.ModuleType) -> None:
    assert report.measured_versions(["py3.10", "py3.13"]) == {(3, 10), (3, 13)}

    with pytest.raises(SystemExit, match="does not name a Python version"):
        report.measured_versions(["", "py3.11"])


@pytest.mark.parametrize(
    ("versions", "exclude", "partial"),
    [
        # One Python below 3.11: the >= 3.12 body is excluded, and the
        # "if < (3, 11)" line never jumps past its body.
        ({(3, 10)}, {4}, {11}),
        # 3.11: the >= 3.12 body and the < 3.11 body.
        ({(3, 11)}, {4, 12}, set()),
        # 3.13: the else body (both of its statements) and the < 3.11 body.
        ({(3, 13)}, {6, 8, 12}, set()),
        # Every version ran: nothing is excluded.
        ({(3, 10), (3, 13)}, set(), set()),
    ],
)
def test_version_exclusions(
    report: types.ModuleType,
    tmp_path: pathlib.Path,
    versions: set[tuple[int, int]],
    exclude: set[int],
    partial: set[int],
) -> None:
    path = tmp_path / "compat.py"
    path.write_text(SOURCE)
    regexes, partial_regexes, notes = report.version_exclusions(path, versions)
    assert excluded_lines(regexes, SOURCE) == exclude
    assert excluded_lines(partial_regexes, SOURCE) == partial
    assert all(note.startswith(f"{path}:") for note in notes)
    assert bool(notes) == bool(exclude)


def test_same_line_elsewhere_is_not_excluded(
    report: types.ModuleType, tmp_path: pathlib.Path
) -> None:
    path = tmp_path / "compat.py"
    text = SOURCE + "from inspect import iscoroutinefunction\n"
    path.write_text(text)
    regexes, _, _ = report.version_exclusions(path, {(3, 11)})
    assert excluded_lines(regexes, text) == {4, 12}


def test_other_conditions_are_left_alone(
    report: types.ModuleType, tmp_path: pathlib.Path
) -> None:
    path = tmp_path / "other.py"
    path.write_text(
        "import sys\n"
        "if sys.version_info >= (3, 12, 1):\n    a = 1\n"
        "if sys.platform == 'win32':\n    b = 1\n"
        "if sys.version_info[:2] >= (3, 12):\n    c = 1\n"
    )
    assert report.version_exclusions(path, {(3, 11)}) == ([], [], [])
