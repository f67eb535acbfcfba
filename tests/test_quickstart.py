"""Run the quickstart as the docs say, and compare with the output they show."""

from __future__ import annotations

import pathlib
import subprocess
import sys

QUICKSTART = pathlib.Path(__file__).parent.parent / "examples" / "quickstart"


def test_quickstart_prints_what_the_docs_show() -> None:
    result = subprocess.run(
        [sys.executable, "app.py"],
        cwd=QUICKSTART,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert result.stderr == ""
    assert result.stdout == (QUICKSTART / "output.txt").read_text()
