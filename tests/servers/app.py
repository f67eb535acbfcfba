"""The app served by the real-server tests.

Half of the load goes to a sync view, half to an async view, both behind two
stacked toolkit decorators with generator bodies. The outer one puts the
caller's identity (the ``id`` query argument) in ``g`` and in a
:class:`~contextvars.ContextVar`; both decorators and the async view await
several times and record what they see. The view returns every observation,
so the client can count crosstalk: an observation that is not its own id.

``ASYNCEXT_TEST_BRIDGE`` selects the bridge: ``default`` (Flask's, one event
loop per call) or ``shared`` (:class:`~flask_asyncext.shared_loop.SharedLoop`).
"""

from __future__ import annotations

import asyncio
import collections.abc as cabc
import contextvars
import os
import threading
import typing as t

from flask import Flask
from flask import g
from flask import request

from flask_asyncext import async_compatible_decorator

caller: contextvars.ContextVar[str] = contextvars.ContextVar("caller")


def observe(where: str) -> None:
    g.seen.append([where, g.caller, caller.get(None), request.args["id"]])


@async_compatible_decorator
def identify(
    view: cabc.Callable[..., t.Any], /, *args: t.Any, **kwargs: t.Any
) -> cabc.Generator[t.Any, t.Any, t.Any]:
    g.caller = request.args["id"]
    g.seen = []
    caller.set(request.args["id"])
    yield asyncio.sleep(0)
    observe("identify")
    response = yield view(*args, **kwargs)
    observe("identify-after")
    return response


@async_compatible_decorator
def check(
    view: cabc.Callable[..., t.Any], /, *args: t.Any, **kwargs: t.Any
) -> cabc.Generator[t.Any, t.Any, t.Any]:
    yield asyncio.sleep(0.001)
    observe("check")
    yield asyncio.sleep(0)
    observe("check-2")
    return (yield view(*args, **kwargs))


def report(kind: str) -> dict[str, t.Any]:
    return {
        "id": request.args["id"],
        "kind": kind,
        "caller": g.caller,
        "var": caller.get(None),
        "seen": g.seen,
        "pid": os.getpid(),
    }


def create_app(bridge: str | None = None) -> Flask:
    bridge = bridge or os.environ.get("ASYNCEXT_TEST_BRIDGE", "default")
    app = Flask(__name__)
    app.config["BRIDGE"] = bridge

    if bridge == "shared":
        from flask_asyncext.shared_loop import SharedLoop

        SharedLoop(app)
    elif bridge != "default":
        raise ValueError(f"unknown bridge {bridge!r}")

    @app.get("/ready")
    def ready() -> dict[str, t.Any]:
        shared = "flask_asyncext.shared_loop" in app.extensions
        return {"bridge": bridge, "shared_loop": shared, "pid": os.getpid()}

    @app.get("/sync")
    @identify
    @check
    def sync_view() -> dict[str, t.Any]:
        observe("view")
        return report("sync")

    @app.get("/async")
    @identify
    @check
    async def async_view() -> dict[str, t.Any]:
        for delay in (0, 0.001, 0):
            await asyncio.sleep(delay)
            observe("view")

        return report("async")

    @app.get("/threads")
    def threads() -> dict[str, t.Any]:
        return {"threads": threading.active_count()}

    return app


app = create_app()


class FreshContext:
    """ASGI middleware: run each request in a new, empty
    :class:`contextvars.Context`, as uvicorn's ``--reset-contextvars`` does.

    Without it, a context variable set by one request's task can be seen by a
    later task on the same keep-alive connection (CPython gh-140947). asgiref
    keeps its "current thread executor" in one, so ``WsgiToAsgi`` then hands
    the next request to an executor that has quit and it answers 500
    (``CurrentThreadExecutor already quit or is broken``), before the Flask
    app is even called.
    """

    def __init__(self, app: t.Any) -> None:
        self.app = app

    async def __call__(self, scope: t.Any, receive: t.Any, send: t.Any) -> None:
        loop = asyncio.get_running_loop()
        coro = self.app(scope, receive, send)
        # Cancelling this task (the server does) cancels the inner one.
        await contextvars.Context().run(loop.create_task, coro)


def _asgi() -> t.Any:
    from asgiref.wsgi import WsgiToAsgi

    return WsgiToAsgi(app)


asgi_app = _asgi()
fresh_asgi_app = FreshContext(asgi_app)
