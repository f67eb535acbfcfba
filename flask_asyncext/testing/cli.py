"""``flask-asyncext check``: run the conformance checks on decorators and
print the compatibility matrix. Works on the base install: it needs neither
pytest nor the ``pytest`` extra.
"""

from __future__ import annotations

import argparse
import ast
import collections.abc as cabc
import functools
import importlib
import inspect
import json
import os
import re
import shutil
import sys
import typing as t

from ._apps import app_kind_of_app
from ._apps import APP_KINDS
from ._apps import installed_app_kinds
from ._apps import make_app
from ._harness import denied_statuses
from ._harness import describe_error
from ._harness import no_shaping
from ._harness import ONE_DENIAL
from ._harness import Subject
from ._matrix import Matrix
from ._policy import load_expected_failures
from ._policy import Outcome
from ._policy import Policy
from ._policy import run_all

#: What ``flask-asyncext check`` checks when it is given no target.
EXAMPLES = (
    "flask_asyncext.testing.samples:traced",
    "flask_asyncext.testing.samples:traced_recipe",
)


class TargetError(Exception):
    """A target that names no decorator; the message says why, in one line."""


def _arguments(target: str, text: str) -> tuple[list[t.Any], dict[str, t.Any]]:
    """The literal arguments written between the parentheses of a target,
    parsed as Python literals (never evaluated).
    """
    try:
        call = ast.parse(f"f({text})", mode="eval").body
        assert isinstance(call, ast.Call)
        args = [ast.literal_eval(a) for a in call.args]
        kwargs = {k.arg: ast.literal_eval(k.value) for k in call.keywords}
    except (SyntaxError, ValueError, TypeError):
        raise TargetError(
            f"{target!r}: the arguments of a factory must be Python literals"
            " (strings, numbers, tuples, lists, dicts, True, False, None)"
        ) from None

    if None in kwargs:
        raise TargetError(f"{target!r}: ** arguments are not literals")

    return args, t.cast("dict[str, t.Any]", kwargs)


_TARGET = re.compile(r"^(?P<module>[^:]*):(?P<path>[^()]*)(?P<call>\((?P<args>.*)\))?$")


def resolve(target: str) -> t.Any:
    """Import the object named by ``target``: ``module:attr`` or
    ``module:obj.attr``, with ``(...)`` appended to call a factory with
    literal arguments (``()`` for none).

    :raise TargetError: The target names nothing that can be imported.
    """
    match = _TARGET.match(target.strip())

    if match is None or not match["module"] or not match["path"]:
        raise TargetError(
            f"{target!r} is not a target: write 'module:attr' or 'module:attr()'"
        )

    module_name, path = match["module"], match["path"]
    spec = f"{module_name}:{path}"

    try:
        obj: t.Any = importlib.import_module(module_name)
    except Exception as e:
        raise TargetError(
            f"cannot import {module_name!r}: {describe_error(e)}"
        ) from None

    for name in path.split("."):
        try:
            obj = getattr(obj, name)
        except AttributeError:
            raise TargetError(f"{module_name!r} has no attribute {path!r}") from None

    if match["call"] is not None:
        args, kwargs = _arguments(target, match["args"])

        if not callable(obj):
            raise TargetError(f"{spec!r} is not callable, so '()' cannot call it")

        try:
            obj = obj(*args, **kwargs)
        except Exception as e:
            raise TargetError(
                f"calling {spec}({match['args']}) raised {describe_error(e)}"
            ) from None

    return obj


def resolve_decorator(target: str) -> cabc.Callable[..., t.Any]:
    """:func:`resolve` a target that must be a decorator."""
    obj = resolve(target)

    if not callable(obj):
        raise TargetError(
            f"{target!r} is a {type(obj).__name__} object, not a decorator"
        )

    return t.cast("cabc.Callable[..., t.Any]", obj)


def resolve_app(target: str) -> cabc.Callable[[], t.Any]:
    """:func:`resolve` the ``--app`` option: an app factory, called for
    each check (with the target's literal arguments, if any).
    """
    call = target.rstrip().endswith(")")
    spec = target.rstrip()[: target.index("(")] if call else target
    obj = resolve(spec)

    if app_kind_of_app(obj) is not None:
        raise TargetError(
            f"--app {target!r} is an app; each check needs a new one: name the"
            " factory that creates it (module:create_app)"
        )

    if not callable(obj):
        raise TargetError(f"--app {target!r} is not an app factory")

    args, kwargs = (
        _arguments(target, target[target.index("(") + 1 : -1]) if call else ([], {})
    )

    def factory() -> t.Any:
        app = obj(*args, **kwargs)

        if app_kind_of_app(app) is None:
            raise TypeError(
                f"--app {target} returned {type(app).__name__}, not a Flask or"
                " Quart app"
            )

        return app

    try:
        factory()
    except Exception as e:
        raise TargetError(f"--app {target}: {describe_error(e)}") from None

    return factory


def factory_hint(target: str, decorator: cabc.Callable[..., t.Any]) -> str | None:
    """A hint when ``decorator`` looks like a decorator factory left
    uncalled: decorating a view with it does not lead back to the view,
    but decorating the view with what it returned does.
    """
    if target.endswith(")"):
        return None

    def view() -> str:
        return "view"  # pragma: no cover

    try:
        made: t.Any = decorator(view)
        looks_like_factory = (
            callable(made)
            and inspect.unwrap(made) is not view
            and inspect.unwrap(t.cast("cabc.Callable[..., t.Any]", made(view))) is view
        )
    except Exception:
        return None

    if not looks_like_factory:
        return None

    name = target.rpartition(":")[2]
    return f"did you mean '{target}()'? {name} looks like a decorator factory"


def _header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")

    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"write 'Name: value', got {text!r}")

    return name.strip(), value.strip()


def _config(text: str) -> tuple[str, t.Any]:
    key, sep, value = text.partition("=")

    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"write KEY=VALUE, got {text!r}")

    try:
        parsed: t.Any = ast.literal_eval(value)
    except (SyntaxError, ValueError):
        parsed = value

    return key.strip(), parsed


def _status(text: str) -> int:
    try:
        return denied_statuses(int(text), "--denied-status")[0]
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(
            f"an HTTP status such as 401, got {text!r}"
        ) from None


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Check that Flask view decorators work on def and async def views.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser(
        "check",
        help="run the conformance checks on decorators and print the matrix",
        description=(
            "Run the conformance checks on each TARGET and print the"
            " compatibility matrix. Exit 0 when every required check passes,"
            " 1 when one fails, 2 for a bad target or option."
        ),
    )
    check.add_argument(
        "targets",
        nargs="*",
        metavar="TARGET",
        help=(
            "module:attr (a decorator) or module:attr(...) (a factory called"
            " with literal arguments, () for none); default: the example"
            " decorators shipped with flask-asyncext"
        ),
    )
    check.add_argument(
        "--app",
        metavar="FACTORY",
        help=(
            "module:create_app, the app factory each check runs on (one that"
            " initialises the extension); default: a plain app"
        ),
    )
    check.add_argument(
        "--app-kind",
        choices=APP_KINDS,
        default="flask",
        help=(
            "the kind of app the checks run on: flask (the default) or quart"
            " (with Quart installed); an --app factory must make that kind"
        ),
    )
    check.add_argument(
        "--config",
        metavar="KEY=VALUE",
        type=_config,
        action="append",
        default=[],
        help="set a config key on the app (VALUE is a Python literal or a string)",
    )
    check.add_argument(
        "--method", default="GET", help="the request method (default: GET)"
    )
    check.add_argument(
        "--header",
        metavar="'NAME: VALUE'",
        type=_header,
        action="append",
        default=[],
        help="a header sent with allowed requests (repeatable)",
    )
    check.add_argument("--data", help="the body sent with allowed requests")
    check.add_argument(
        "--deny-header",
        metavar="'NAME: VALUE'",
        type=_header,
        action="append",
        default=[],
        help=(
            "a header sent with denied requests (repeatable); the denied"
            " checks run when it or --blocks-requests is given"
        ),
    )
    check.add_argument(
        "--blocks-requests",
        action="store_true",
        help="the decorator refuses a request sent without the --header headers",
    )
    check.add_argument(
        "--denied-status",
        type=_status,
        action="append",
        default=[],
        metavar="STATUS",
        help="a status a refused request answers with (repeatable; default: 401, 403)",
    )
    check.add_argument(
        "--strict",
        action="store_true",
        help="fail on recommended checks too",
    )
    check.add_argument(
        "--suite-level",
        type=int,
        help="run the checks of this suite level only (default: the newest)",
    )
    check.add_argument(
        "--expected-failures",
        metavar="FILE",
        help="a file of expected failures: 'test name[param id] = reason' lines",
    )
    check.add_argument(
        "--json", metavar="PATH", help="also write the matrix as JSON to PATH"
    )
    return parser


def _cause_hint(cause: str) -> str:
    status = re.match(r"status (\d+) and the view did not run", cause)

    if status is not None:
        return (
            f"The decorator refused the request with status {status[1]}: name"
            " an app factory that initialises the extension (--app"
            " module:create_app), prepare an allowed request (--header), or"
            f" if that status is how it refuses, add --denied-status {status[1]}."
        )

    return (
        "If the extension needs its app initialised, name the app factory:"
        " --app module:create_app."
    )


def check_kind(make: cabc.Callable[[], t.Any], app_kind: str) -> None:
    """Make one app and check that it is of the kind the checks run on.

    :raise ValueError: Quart is not installed, or the app is of another kind.
    """
    if app_kind not in installed_app_kinds():
        raise ValueError("--app-kind quart needs Quart installed")

    got = app_kind_of_app(make())

    if got != app_kind:
        raise ValueError(
            f"--app makes {got} apps; the checks run on {app_kind} apps: pass"
            f" --app-kind {got}"
        )


def main(argv: cabc.Sequence[str] | None = None, prog: str = "flask-asyncext") -> int:
    """Run the command line tool and return its exit status.

    .. versionadded:: 0.1
    """
    parser = _parser(prog)
    args = parser.parse_args(argv)
    targets = args.targets or list(EXAMPLES)

    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())

    try:
        decorators = [(target, resolve_decorator(target)) for target in targets]
        make = (
            functools.partial(make_app, app_kind=args.app_kind)
            if args.app is None
            else resolve_app(args.app)
        )
        check_kind(make, args.app_kind)
        policy = Policy(
            {}
            if args.expected_failures is None
            else load_expected_failures(args.expected_failures),
            args.strict,
            *(() if args.suite_level is None else (args.suite_level,)),
        )
    except (TargetError, ValueError, OSError) as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2

    config = dict(args.config)

    def app_factory() -> t.Any:
        app = make()

        for key, value in config.items():
            app.config[key] = value

        return app

    def allow(client: t.Any) -> cabc.Mapping[str, t.Any]:
        kwargs: dict[str, t.Any] = {"headers": dict(args.header)}

        if args.data is not None:
            kwargs["data"] = args.data

        return kwargs

    def deny(client: t.Any) -> cabc.Mapping[str, t.Any]:
        return {"headers": dict(args.deny_header)}

    shaping = bool(args.header or args.data is not None)
    matrix = Matrix()
    failures: list[Outcome] = []
    lines: list[str] = []
    recommended = 0

    for target, decorator in decorators:
        subject = Subject(
            decorator,
            app_factory,
            blocks_requests=args.blocks_requests or bool(args.deny_header),
            denied_status=tuple(args.denied_status) or (401, 403),
            allow=allow if shaping else no_shaping,
            denials={ONE_DENIAL: deny},
            shaping=shaping,
            method=args.method.upper(),
            app_kinds=(args.app_kind,),
        )

        try:
            outcomes = run_all(subject, policy)
        except ValueError as e:
            print(f"{prog}: error: {e}", file=sys.stderr)
            return 2

        matrix.add_outcomes(target, target, outcomes)
        failed = [o for o in outcomes if o.status == "failed"]
        failures.extend(failed)
        recommended += sum(o.status == "xfailed" for o in outcomes)

        # One line per failing check: the ids it failed on, then the first
        # message (the others differ only by the view kind).
        for name in dict.fromkeys(o.check.name for o in failed):
            of_check = [o for o in failed if o.check.name == name]
            where = ", ".join(o.param_id for o in of_check)
            lines.append(f"FAILED {target} {name}[{where}]")
            lines.append(f"  {of_check[0].message}")

        if failed and (hint := factory_hint(target, decorator)) is not None:
            lines.append(f"hint: {hint}")

    width = shutil.get_terminal_size().columns
    print("flask-asyncext compatibility matrix")
    print("\n".join(matrix.render(width)))
    print()

    for line in lines:
        print(line)

    if args.json is not None:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(matrix.to_json(), f, indent=2)
            f.write("\n")

    if failures:
        fail_open = sum(o.fail_open for o in failures)

        if fail_open:
            print(
                f"{fail_open} check(s) failed open: a request that must be"
                " refused reached the view."
            )

        causes = {o.cause for o in failures}

        if len(failures) > 1 and len(causes) == 1:
            cause = causes.pop()
            print(
                f"Every failure has one cause: {cause.rstrip('.')}."
                f" {_cause_hint(cause)}"
            )

        print(f"{len(failures)} check(s) failed.")
        return 1

    if recommended:
        print(
            f"Every required check passed; {recommended} recommended check(s)"
            " failed (x): the decorator works but costs more (see the matrix)."
        )
    else:
        print("Every check passed.")

    return 0
