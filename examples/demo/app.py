"""One toolkit decorator in front of a ``def`` view and an ``async def`` view,
and the hand-written decorator it replaces.

Run it with ``python examples/demo/app.py``. It sends a few requests through
Flask's test client and prints what each returned, and on which event loop
the user loader and the view ran.
"""

from __future__ import annotations

import asyncio
import collections.abc as cabc
import functools
import inspect
import typing as t

from flask import abort
from flask import current_app
from flask import Flask
from flask import g
from flask import request

from flask_asyncext import async_compatible_decorator

USERS = {"token-ann": "ann"}


def running_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop running in this thread, if any."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


async def load_user(token: str | None) -> str | None:
    """An async user loader, as an app with an async database client has."""
    await asyncio.sleep(0)
    g.loader_loop = running_loop()
    return USERS.get(token or "")


@async_compatible_decorator
def login_required(
    view: cabc.Callable[..., t.Any], /, *args: t.Any, **kwargs: t.Any
) -> cabc.Generator[t.Any, t.Any, t.Any]:
    """Refuse the request unless the user loader knows the token."""
    user = yield load_user(request.headers.get("Authorization"))

    if user is None:
        abort(401)

    g.user = user
    return (yield view(*args, **kwargs))


def handwritten_login_required(
    view: cabc.Callable[..., t.Any],
) -> cabc.Callable[..., t.Any]:
    """The same check written the way extensions write it today."""

    @functools.wraps(view)
    def wrapper(*args: t.Any, **kwargs: t.Any) -> t.Any:
        # With an async loader this is a coroutine object, not a user: it
        # is truthy, so every token is let in, and the loader never runs.
        user = load_user(request.headers.get("Authorization"))

        if not user:
            abort(401)

        g.user = user
        return current_app.ensure_sync(view)(*args, **kwargs)

    return wrapper


def report() -> dict[str, str]:
    """What the view saw: the user, and where the loader and the view ran."""
    user = g.user

    if inspect.iscoroutine(user):
        user.close()  # closed here, so Python does not warn "never awaited"
        return {"user": "<coroutine object>, the wrong token let in unchecked"}

    view_loop = running_loop()

    if view_loop is None:
        view = "no event loop"
    else:
        view = "an event loop"

    if g.loader_loop is view_loop:
        loader = "the same loop as the view"
    else:
        loader = "an event loop of its own"

    return {"user": user, "loader": loader, "view": view}


app = Flask(__name__)


@app.get("/sync")
@login_required
def sync_view() -> dict[str, str]:
    return report()


@app.get("/async")
@login_required
async def async_view() -> dict[str, str]:
    return report()


@app.get("/handwritten")
@handwritten_login_required
async def handwritten_view() -> dict[str, str]:
    return report()


def main() -> None:
    client = app.test_client()
    requests = [
        (path, token)
        for path in ("/sync", "/async")
        for token in ("token-ann", "wrong-token")
    ]
    requests.append(("/handwritten", "wrong-token"))

    for path, token in requests:
        response = client.get(path, headers={"Authorization": token})
        line = f"GET {path:<12} as {token:<11} -> {response.status_code}"

        if response.is_json:
            data = response.get_json()
            line += f", user: {data['user']}"

            if "view" in data:
                line += (
                    f"; the view ran on {data['view']}, the loader on {data['loader']}"
                )

        print(line)


if __name__ == "__main__":
    main()
