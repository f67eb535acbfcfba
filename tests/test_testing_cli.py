"""``flask-asyncext check`` and ``python -m flask_asyncext``."""

from __future__ import annotations

import subprocess
import sys

import pytest

from flask_asyncext.testing.cli import main


def test_examples_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check"]) == 0
    out = capsys.readouterr().out
    assert "flask_asyncext.testing.samples:traced\n" in out
    assert "flask_asyncext.testing.samples:traced_recipe\n" in out
    assert "  .x.x..x.x   " in out
    assert out.endswith(
        "Every required check passed; 4 recommended check(s) failed (x): the"
        " decorator works but costs more (see the matrix).\n"
    )


def test_all_pass(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "flask_asyncext.testing.samples:traced"]) == 0
    assert capsys.readouterr().out.endswith("Every check passed.\n")


def test_strict(capsys: pytest.CaptureFixture[str]) -> None:
    target = "flask_asyncext.testing.samples:traced_recipe"
    assert main(["check", "--strict", target]) == 1
    out = capsys.readouterr().out
    assert (
        f"FAILED {target} test_calling_convention_kept[async-function,"
        " async-methodview, async-blueprint, async-add-url-rule]\n"
        "  test_calling_convention_kept: expected the decorated view to stay an"
        " async def (inspect.iscoroutinefunction); got a def; Flask then runs the"
        " view in a thread with a loop of its own [view kind async-function]\n"
    ) in out
    assert out.endswith("4 check(s) failed.\n")


def test_cors_fails(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("flask_cors")
    assert main(["check", "flask_cors:cross_origin()"]) == 1
    out = capsys.readouterr().out
    assert ".F.F..F.F sssssssss .F.F..F.F" in out
    assert out.count("FAILED flask_cors:cross_origin() test_") == 8
    assert out.endswith("32 check(s) failed.\n")


def test_needs_shaping_is_a_skip(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "tests_cli_targets:refuse_everything"]) == 0
    out = capsys.readouterr().out
    assert "  .x.x..x.x   ......... ......... sssssssss sssssssss" in out


@pytest.mark.parametrize(
    ("target", "message"),
    [
        (
            "nowhere",
            "'nowhere' is not a target: write 'module:attr' or 'module:attr()'",
        ),
        (":attr", "':attr' is not a target: write 'module:attr' or 'module:attr()'"),
        (
            "no_such_module:x",
            "cannot import 'no_such_module': ModuleNotFoundError:"
            " No module named 'no_such_module'",
        ),
        ("tests_cli_targets:nothing", "'tests_cli_targets' has no attribute 'nothing'"),
        (
            "tests_cli_targets:holder.nothing",
            "'tests_cli_targets' has no attribute 'holder.nothing'",
        ),
        (
            "tests_cli_targets:NUMBER",
            "'tests_cli_targets:NUMBER' is a int object, not a decorator",
        ),
        (
            "tests_cli_targets:NUMBER()",
            "'tests_cli_targets:NUMBER' is not callable, so '()' cannot call it",
        ),
        (
            "tests_cli_targets:broken_factory()",
            "calling tests_cli_targets:broken_factory() raised ValueError: no config",
        ),
    ],
)
def test_bad_target(
    capsys: pytest.CaptureFixture[str], target: str, message: str
) -> None:
    assert main(["check", target]) == 2
    captured = capsys.readouterr()
    assert captured.err == f"flask-asyncext: error: {message}\n"
    assert captured.out == ""


def test_factory_and_dotted_target(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "tests_cli_targets:holder.factory()"]) == 0
    assert "tests_cli_targets:holder.factory()\n" in capsys.readouterr().out


def test_python_m() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "flask_asyncext", "check", "x"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr == (
        "python -m flask_asyncext: error: 'x' is not a target: write"
        " 'module:attr' or 'module:attr()'\n"
    )


@pytest.fixture(autouse=True)
def _targets(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """A module of targets in the working directory, which the command
    puts on ``sys.path`` as the ``flask`` command does.
    """
    pytester.makepyfile(
        tests_cli_targets="""
        import functools
        from flask import abort

        NUMBER = 3

        def refuse_everything(view):
            @functools.wraps(view)
            def wrapper(*args, **kwargs):
                abort(401)
            return wrapper

        def broken_factory():
            raise ValueError("no config")

        class holder:
            @staticmethod
            def factory():
                from flask_asyncext.testing.samples import traced
                return traced
        """
    )
    monkeypatch.chdir(pytester.path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != str(pytester.path)])
    monkeypatch.delitem(sys.modules, "tests_cli_targets", raising=False)
