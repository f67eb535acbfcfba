"""The demo that README.md tells a new user to run."""

from __future__ import annotations

import pathlib
import re
import runpy

import pytest

DEMO = pathlib.Path(__file__).parent.parent / "examples" / "demo" / "app.py"


def test_demo_output(capsys: pytest.CaptureFixture[str]) -> None:
    runpy.run_path(str(DEMO), run_name="__main__")
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4
    sync_ok, sync_denied, async_ok, async_denied = lines
    assert "401 UNAUTHORIZED" in sync_denied
    assert "401 UNAUTHORIZED" in async_denied

    sync_match = re.search(
        r"200 OK, user ann, loader ran on (loop \w+), view ran on (.+)$", sync_ok
    )
    assert sync_match is not None
    assert sync_match[2] == "no event loop"

    async_match = re.search(
        r"200 OK, user ann, loader ran on (loop \w+), view ran on (.+)$", async_ok
    )
    assert async_match is not None
    # The async view and the loader it waited for share one event loop.
    assert async_match[1] == async_match[2]
