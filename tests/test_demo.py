"""The demo that README.md tells a new user to run."""

from __future__ import annotations

import pathlib
import runpy

import pytest

DEMO = pathlib.Path(__file__).parent.parent / "examples" / "demo" / "app.py"


def test_demo_output(capsys: pytest.CaptureFixture[str]) -> None:
    runpy.run_path(str(DEMO), run_name="__main__")
    lines = [line.split(" -> ")[1] for line in capsys.readouterr().out.splitlines()]
    assert lines == [
        # A sync view runs on no event loop; only the async loader needs one.
        "200, user: ann; the view ran on no event loop,"
        " the loader on an event loop of its own",
        "401",
        # The async view and the loader it waited for share one event loop.
        "200, user: ann; the view ran on an event loop,"
        " the loader on the same loop as the view",
        "401",
        # The hand-written decorator lets the wrong token in: the async
        # loader's coroutine object is truthy.
        "200, user: <coroutine object>, the wrong token let in unchecked",
    ]
