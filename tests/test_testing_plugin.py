"""The pytest plugin: the matrix, the ``asyncext_check`` fixture, and the
suite under pytest-asyncio, anyio's plugin and neither.
"""

from __future__ import annotations

import importlib.util

import pytest

from flask_asyncext.testing import CHECKS
from flask_asyncext.testing import VIEW_KINDS

HAS_PYTEST_ASYNCIO = importlib.util.find_spec("pytest_asyncio") is not None
HAS_ANYIO = importlib.util.find_spec("anyio") is not None
TESTS = len(CHECKS) * len(VIEW_KINDS)

INI = """
[pytest]
filterwarnings = error
xfail_strict = true
"""

SUBJECT = """
import pytest
from flask_asyncext.testing import DecoratorConformance
from flask_asyncext.testing.samples import traced_recipe

class TestRecipe(DecoratorConformance):
    app_kinds = ("flask",)
    @pytest.fixture
    def decorator(self):
        return traced_recipe
"""


def make_ini(pytester: pytest.Pytester, extra: str = "") -> None:
    ini = INI + extra

    if HAS_PYTEST_ASYNCIO:
        ini += "asyncio_default_fixture_loop_scope = function\n"

    pytester.makeini(ini)


def test_matrix_printed(pytester: pytest.Pytester) -> None:
    make_ini(pytester)
    pytester.makepyfile(test_recipe=SUBJECT)
    result = pytester.runpytest()
    result.assert_outcomes(passed=TESTS - 13, skipped=9, xfailed=4)
    result.stdout.fnmatch_lines(
        [
            "*= flask-asyncext compatibility matrix =*",
            "cells: one mark per view kind, in this order: sync-function,*",
            "",
            "TestRecipe (traced_recipe)",
            "  convention* metadata*",
            "  .x.x..x.x   .........*",
        ]
    )


@pytest.mark.parametrize(
    ("args", "ini"),
    [(["--asyncext-no-matrix"], ""), ([], "asyncext_matrix = false\n")],
)
def test_matrix_switched_off(
    pytester: pytest.Pytester, args: list[str], ini: str
) -> None:
    make_ini(pytester, ini)
    pytester.makepyfile(test_recipe=SUBJECT)
    result = pytester.runpytest(*args)
    result.assert_outcomes(passed=TESTS - 13, skipped=9, xfailed=4)
    result.stdout.no_fnmatch_line("*compatibility matrix*")


def test_inert_without_conformance_tests(pytester: pytest.Pytester) -> None:
    make_ini(pytester)
    pytester.makepyfile(
        """
        import pytest

        @pytest.fixture
        def decorator():
            return 1

        class TestPlain:
            @pytest.mark.parametrize("x", [1, 2])
            def test_plain(self, request, decorator, x):
                assert decorator == 1
                # No fixture of the plugin is used unless asked for.
                used = [n for n in request.fixturenames if "asyncext" in n]
                assert used == []
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=2)
    result.stdout.no_fnmatch_line("*compatibility matrix*")


def test_only_prefixed_names(pytestconfig: pytest.Config) -> None:
    plugin = pytestconfig.pluginmanager.get_plugin("flask_asyncext")
    assert plugin is not None
    fixtures = [
        name
        for name in vars(plugin)
        if hasattr(vars(plugin)[name], "_fixture_function_marker")
        or type(vars(plugin)[name]).__name__ == "FixtureFunctionDefinition"
    ]
    assert fixtures == ["asyncext_check"]


ASYNCEXT_CHECK = """
import pytest
from flask_cors import cross_origin
from flask_asyncext.testing.samples import traced
from flask_asyncext.testing.samples import traced_recipe

def test_toolkit(asyncext_check):
    outcomes = asyncext_check(traced, strict=True)
    assert {o.status for o in outcomes} == {"passed", "skipped"}

def test_recipe(asyncext_check):
    outcomes = asyncext_check(traced_recipe)
    assert len([o for o in outcomes if o.status == "xfailed"]) == 4

def test_recipe_strict(asyncext_check):
    asyncext_check(traced_recipe)
    asyncext_check(traced_recipe, strict=True)

def test_cors(asyncext_check):
    asyncext_check(cross_origin(), expected_failures={
        "test_calling_convention_kept[sync-function]": "no",
    })
"""


def test_asyncext_check(pytester: pytest.Pytester) -> None:
    pytest.importorskip("flask_cors")
    make_ini(pytester)
    pytester.makepyfile(test_check=ASYNCEXT_CHECK)
    result = pytester.runpytest()
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*_ test_recipe_strict _*",
            "traced_recipe failed 4 check(s):",
            "test_calling_convention_kept: expected the decorated view to stay"
            " an async def (inspect.iscoroutinefunction); got a def; Flask then"
            " runs the view in a thread with a loop of its own [[]view kind"
            " async-function[]]",
            *[
                "test_calling_convention_kept: expected the decorated view to"
                " stay an async def (inspect.iscoroutinefunction); got a def;"
                " Flask then runs the view in a thread with a loop of its own"
                f" [[]view kind {kind}[]]"
                for kind in (
                    "async-methodview",
                    "async-blueprint",
                    "async-add-url-rule",
                )
            ],
            "",
            "cells: one mark per view kind*",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "*_ test_cors _*",
            "cross_origin.decorator failed 33 check(s):",
            "test_calling_convention_kept: passed but is listed in"
            " expected_failures (no)",
        ]
    )
    result.stdout.fnmatch_lines(
        ["test_recipe_strict: traced_recipe", "test_recipe_strict: traced_recipe"]
    )


ASYNC_TESTS = """
import asyncio
import pytest
from flask_asyncext.testing import DecoratorConformance
from flask_asyncext.testing.samples import traced

class TestTraced(DecoratorConformance):
    app_kinds = ("flask",)
    strict = True

    @pytest.fixture
    def decorator(self):
        return traced
"""


@pytest.mark.parametrize(
    ("plugins", "extra", "async_test"),
    [
        (["-p", "no:asyncio", "-p", "no:anyio"], "", None),
        (["-p", "no:anyio"], "asyncio_mode = auto\n", "async def test_async():\n"),
        (
            ["-p", "no:anyio"],
            "asyncio_mode = strict\n",
            "@pytest.mark.asyncio\nasync def test_async():\n",
        ),
        (
            ["-p", "no:asyncio"],
            "",
            "@pytest.mark.anyio\nasync def test_async():\n",
        ),
    ],
    ids=["neither", "pytest-asyncio-auto", "pytest-asyncio-strict", "anyio"],
)
def test_async_test_plugins(
    pytester: pytest.Pytester,
    plugins: list[str],
    extra: str,
    async_test: str | None,
) -> None:
    """The suite's tests are sync and pass the same under pytest-asyncio
    (auto and strict modes), anyio's plugin and neither, next to an async
    test of the same module.
    """
    source = ASYNC_TESTS
    passed = TESTS - len(VIEW_KINDS)

    if async_test is not None:
        if "asyncio" in extra:
            pytest.importorskip("pytest_asyncio")
        else:
            pytest.importorskip("anyio")
            source += "\n@pytest.fixture\ndef anyio_backend():\n    return 'asyncio'\n"

        source += f"\n{async_test}    await asyncio.sleep(0)\n"
        passed += 1

    ini = INI + extra

    if HAS_PYTEST_ASYNCIO and "no:asyncio" not in plugins:
        ini += "asyncio_default_fixture_loop_scope = function\n"

    pytester.makeini(ini)
    pytester.makepyfile(test_async=source)
    result = pytester.runpytest(*plugins)
    result.assert_outcomes(passed=passed, skipped=len(VIEW_KINDS))
