"""Without asgiref (the ``async`` extra), the package imports and sync views
work; async use raises Flask's own error. The ``noasync`` tox env runs these
without asgiref installed; elsewhere the import is blocked for each test.
"""

from __future__ import annotations

import inspect
import subprocess
import sys
import typing as t

import pytest
from flask import Flask

from flask_asyncext import async_compatible_decorator
from flask_asyncext import before_view
from flask_asyncext import ensure_async
from flask_asyncext import ensure_sync
from flask_asyncext.bridges import _run_sync

pytestmark = pytest.mark.noasync

ASYNC_EXTRA = "Install Flask with the 'async' extra in order to use async views."


@pytest.fixture(autouse=True)
def _no_asgiref(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("asgiref", "asgiref.sync"):
        monkeypatch.setitem(sys.modules, name, None)  # type: ignore[arg-type]


async def coro_func() -> str:
    return "async"


def test_package_imports_without_asgiref() -> None:
    code = (
        "import sys; sys.modules['asgiref'] = None; sys.modules['asgiref.sync'] = None;"
        "import flask_asyncext, flask_asyncext.decorators, flask_asyncext.bridges;"
        "print(sorted(flask_asyncext.__all__ if hasattr(flask_asyncext, '__all__')"
        " else dir(flask_asyncext)))"
    )
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "async_compatible_decorator" in result.stdout


def test_sync_views_work(app: Flask) -> None:
    @async_compatible_decorator
    def guard(view: t.Any, /) -> t.Any:
        return "guarded " + (yield view())

    @app.get("/")
    @before_view(lambda: None)
    @guard
    def index() -> str:
        return "sync"

    assert app.test_client().get("/").text == "guarded sync"


def test_async_view_raises_flask_error(app: Flask, asyncext_shared_loop: t.Any) -> None:
    @app.get("/")
    @before_view(lambda: None)
    async def index() -> str:
        return "async"

    if asyncext_shared_loop is not None:
        # The shared loop is a bridge of its own: it needs no asgiref.
        assert app.test_client().get("/").text == "async"
        return

    with pytest.raises(RuntimeError, match="'async' extra"):
        app.test_client().get("/")


def test_bridges_raise_flask_error() -> None:
    with pytest.raises(RuntimeError) as info:
        ensure_sync(coro_func)()
    assert str(info.value) == ASYNC_EXTRA

    with pytest.raises(RuntimeError, match="'async' extra"):
        ensure_async(lambda: None, thread=True)


def test_unresolvable_awaitable_is_closed() -> None:
    coroutine = coro_func()
    with pytest.raises(RuntimeError, match="'async' extra"):
        _run_sync(coroutine)
    assert inspect.getcoroutinestate(coroutine) == inspect.CORO_CLOSED


def test_async_body_on_sync_view_fails_at_decoration_time() -> None:
    @async_compatible_decorator
    async def body(view: t.Any, /) -> t.Any:
        return await view()

    with pytest.raises(RuntimeError, match="'async' extra"):
        body(lambda: "sync")
