"""``flask-asyncext check`` and ``python -m flask_asyncext``."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import pytest

from flask_asyncext.testing import cli
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


def test_literal_factory_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    """Finding 9: literal factory arguments are parsed, never evaluated."""
    assert main(["check", "tests_cli_targets:roles_required('admin', level=2)"]) == 0
    assert "tests_cli_targets:roles_required('admin', level=2)\n" in (
        capsys.readouterr().out
    )


@pytest.mark.parametrize(
    "args", ["__import__('os').getcwd()", "x", "*y", "**z", "1 +", "**{'a': 1}"]
)
def test_non_literal_arguments(capsys: pytest.CaptureFixture[str], args: str) -> None:
    assert main(["check", f"tests_cli_targets:roles_required({args})"]) == 2
    err = capsys.readouterr().err
    assert "the arguments of a factory must be Python literals" in err or (
        "** arguments are not literals" in err
    )


def test_no_hint_for_a_decorator_that_raises(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["check", "tests_cli_targets:raises_on_view"]) == 1
    assert "hint:" not in capsys.readouterr().out


def test_factory_hint(capsys: pytest.CaptureFixture[str]) -> None:
    """Finding 9: a decorator factory left uncalled gets a hint."""
    pytest.importorskip("flask_cors")
    assert main(["check", "flask_cors:cross_origin"]) == 1
    assert (
        "hint: did you mean 'flask_cors:cross_origin()'? cross_origin looks like"
        " a decorator factory\n" in capsys.readouterr().out
    )


def test_needs_its_app(capsys: pytest.CaptureFixture[str]) -> None:
    """Finding 9: an extension that is not initialised fails with one cause,
    said once; with --app it passes.
    """
    pytest.importorskip("flask_jwt_extended")
    target = "flask_jwt_extended:jwt_required(optional=True)"
    assert main(["check", target]) == 1
    out = capsys.readouterr().out
    # flask-jwt-extended reads its config, which JWTManager(app) sets.
    assert "Every failure has one cause: KeyError: 'JWT_TOKEN_LOCATION'." in out
    assert "name the app factory: --app module:create_app.\n" in out
    assert main(["check", target, "--app", "tests_cli_targets:create_jwt_app"]) == 0


def test_denied_status_and_headers(capsys: pytest.CaptureFixture[str]) -> None:
    """Finding 9: a decorator that redirects needs --denied-status; request
    options shape allowed and denied requests.
    """
    target = "tests_cli_targets:redirect_without_key"
    assert main(["check", target]) == 1
    out = capsys.readouterr().out
    assert "Every failure has one cause: status 302 and the view did not run." in out
    assert "add --denied-status 302." in out
    assert main(["check", target, "--denied-status", "302"]) == 0
    argv = ["check", target, "--header", "X-Key: good", "--blocks-requests"]
    assert main([*argv, "--denied-status", "302", "--deny-header", "X-Key: bad"]) == 0
    assert "denied" in capsys.readouterr().out
    assert main([*argv, "--method", "post", "--data", "x=1"]) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--app", "tests_cli_targets:app"], "is an app; each check needs a new one"),
        (["--app", "tests_cli_targets:NUMBER"], "is not an app factory"),
        (
            ["--app", "tests_cli_targets:not_an_app"],
            "returned int, not a Flask or Quart app",
        ),
        (["--suite-level", "7"], "suite_level must be a suite level from 1 to 1"),
        (["--expected-failures", "missing.txt"], "No such file or directory"),
        (
            ["--expected-failures", "bad.txt"],
            "expected_failures key 'test_nothing' names no test",
        ),
    ],
)
def test_bad_options(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    pathlib.Path("bad.txt").write_text("test_nothing = why\n")
    assert main(["check", "flask_asyncext.testing.samples:traced", *args]) == 2
    assert message in capsys.readouterr().err


def test_app_kind_quart_needs_quart(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "installed_app_kinds", lambda: ("flask",))
    argv = ["check", "flask_asyncext.testing.samples:traced", "--app-kind", "quart"]
    assert main(argv) == 2
    assert "--app-kind quart needs Quart installed" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args", [["--header", "nocolon"], ["--config", "X"], ["--denied-status", "x"]]
)
def test_bad_option_values(args: list[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["check", "flask_asyncext.testing.samples:traced", *args])

    assert e.value.code == 2


def test_config_json_and_expected_failures(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Finding 10: the command writes the matrix as JSON, reads expected
    failures from a file and sets config keys.
    """
    pathlib.Path("expected.txt").write_text(
        "test_calling_convention_kept = uses ensure_sync\n"
    )
    argv = [
        "check",
        "flask_asyncext.testing.samples:traced_recipe",
        "--strict",
        "--expected-failures",
        "expected.txt",
        "--config",
        "ASYNCEXT_FLAG=True",
        "--config",
        "NAME=plain text",
        "--json",
        "m.json",
    ]
    assert main(argv) == 1
    out = capsys.readouterr().out
    assert "passed but is listed in expected_failures (uses ensure_sync)" in out
    data = json.loads(pathlib.Path("m.json").read_text())
    row = data["rows"][0]["results"]
    assert row["test_calling_convention_kept"]["async-function"] == "xfailed"
    assert row["test_calling_convention_kept"]["sync-function"] == "failed"


def test_fail_open_summary(capsys: pytest.CaptureFixture[str]) -> None:
    target = "tests_cli_targets:lets_everyone_in"
    assert main(["check", target, "--blocks-requests"]) == 1
    out = capsys.readouterr().out
    assert "!!!!!!!!!" in out
    assert (
        "check(s) failed open: a request that must be refused reached the view" in out
    )


def test_base_install_without_pytest() -> None:
    """Finding 9: the command works without pytest; the suite class says
    which extra to install.
    """
    code = (
        "import sys; sys.modules['pytest'] = None\n"
        "from flask_asyncext.testing.cli import main\n"
        "status = main(['check', 'flask_asyncext.testing.samples:traced'])\n"
        "assert 'pytest' not in [m for m in sys.modules if sys.modules[m]]\n"
        "try:\n"
        "    from flask_asyncext.testing import DecoratorConformance\n"
        "except ImportError as e:\n"
        "    print(e)\n"
        "import flask_asyncext.testing as m\n"
        "try:\n"
        "    m.nothing\n"
        "except AttributeError as e:\n"
        "    print(e)\n"
        "raise SystemExit(status)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith(
        "Every check passed.\n"
        "flask_asyncext.testing.DecoratorConformance needs pytest: install the"
        " 'pytest' extra, pip install 'Flask-AsyncExt[pytest]'\n"
        "module 'flask_asyncext.testing' has no attribute 'nothing'\n"
    )


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

        def roles_required(*roles, level=1):
            from flask_asyncext.testing.samples import traced
            assert roles == ("admin",) and level == 2
            return traced

        from flask_asyncext import before_view

        @before_view
        def redirect_without_key(*args, **kwargs):
            from flask import redirect, request
            if request.headers.get("X-Key") != "good":
                return redirect("/login")

        def lets_everyone_in(view):
            return view

        def create_jwt_app():
            from flask_jwt_extended import JWTManager
            from flask_asyncext.testing import make_app
            app = make_app()
            JWTManager(app)
            return app

        def raises_on_view(view):
            raise TypeError("not this one")

        def not_an_app():
            return 1

        from flask import Flask
        app = Flask(__name__)

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
