"""``flask-asyncext check``: run the conformance checks that need no request
shaping on a decorator and print the compatibility matrix.
"""

from __future__ import annotations

import argparse
import collections.abc as cabc
import importlib
import os
import shutil
import sys
import typing as t
import warnings

from ._apps import make_app
from ._checks import describe_error
from ._checks import param_id
from ._checks import run_all
from ._checks import Subject
from ._matrix import Matrix

#: What ``flask-asyncext check`` checks when it is given no target.
EXAMPLES = (
    "flask_asyncext.testing.samples:traced",
    "flask_asyncext.testing.samples:traced_recipe",
)


class TargetError(Exception):
    """A target that names no decorator; the message says why, in one line."""


def resolve(target: str) -> cabc.Callable[..., t.Any]:
    """Import the decorator named by ``target``: ``module:attr`` or
    ``module:obj.attr``, with ``()`` appended to call a factory with no
    arguments.

    :raise TargetError: The target names no callable.
    """
    call = target.endswith("()")
    spec = target[:-2] if call else target
    module_name, _, path = spec.partition(":")

    if not module_name or not path:
        raise TargetError(
            f"{target!r} is not a target: write 'module:attr' or 'module:attr()'"
        )

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

    if call:
        if not callable(obj):
            raise TargetError(f"{spec!r} is not callable, so '()' cannot call it")

        try:
            obj = obj()
        except Exception as e:
            raise TargetError(f"calling {spec}() raised {describe_error(e)}") from None

    if not callable(obj):
        raise TargetError(
            f"{target!r} is a {type(obj).__name__} object, not a decorator"
        )

    return t.cast("cabc.Callable[..., t.Any]", obj)


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
            "Run the conformance checks that need no request shaping on each"
            " TARGET and print the compatibility matrix. Exit 0 when every"
            " required check passes, 1 when one fails, 2 for a bad target."
        ),
    )
    check.add_argument(
        "targets",
        nargs="*",
        metavar="TARGET",
        help=(
            "module:attr (a decorator) or module:attr() (a factory called with"
            " no arguments); default: the example decorators shipped with"
            " flask-asyncext"
        ),
    )
    check.add_argument(
        "--strict",
        action="store_true",
        help="fail on recommended checks too",
    )
    return parser


def main(argv: cabc.Sequence[str] | None = None, prog: str = "flask-asyncext") -> int:
    """Run the command line tool and return its exit status.

    .. versionadded:: 0.1
    """
    args = _parser(prog).parse_args(argv)
    targets = args.targets or list(EXAMPLES)

    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())

    try:
        decorators = [(target, resolve(target)) for target in targets]
    except TargetError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2

    matrix = Matrix()
    failures: list[str] = []
    lines: list[str] = []
    recommended = 0

    for target, decorator in decorators:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            outcomes = run_all(
                Subject(decorator, make_app, shaping=False), strict=args.strict
            )

        matrix.add_outcomes(target, target, outcomes)
        failed = [o for o in outcomes if o.status == "failed"]
        failures.extend(o.message for o in failed)
        recommended += sum(o.status == "xfailed" for o in outcomes)

        # One line per failing check: the ids it failed on, then the first
        # message (the others differ only by the view kind).
        for name in dict.fromkeys(o.check.name for o in failed):
            of_check = [o for o in failed if o.check.name == name]
            where = ", ".join(param_id(o.kind, o.mode) for o in of_check)
            lines.append(f"FAILED {target} {name}[{where}]")
            lines.append(f"  {of_check[0].message}")

    width = shutil.get_terminal_size().columns
    print("flask-asyncext compatibility matrix")
    print("\n".join(matrix.render(width)))
    print()

    for line in lines:
        print(line)

    if failures:
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
