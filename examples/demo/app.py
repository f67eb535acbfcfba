"""One toolkit decorator in front of a ``def`` view and an ``async def`` view.

Run it with ``python examples/demo/app.py``. It sends a few requests through
Flask's test client and prints what each returned, and which event loop the
user loader and the view ran on.
"""

from __future__ import annotations

import asyncio
import typing as t

from flask import abort
from flask import Flask
from flask import g
from flask import request

from flask_asyncext import async_compatible_decorator

USERS = {"token-ann": "ann"}


def running_loop() -> str:
    """Name the event loop running in this thread, if any."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return "no event loop"

    return f"loop {id(loop):#x}"


async def load_user(token: str | None) -> str | None:
    """An async user loader, as an app with an async database client has."""
    await asyncio.sleep(0)
    g.loader_loop = running_loop()
    return USERS.get(token or "")


@async_compatible_decorator
def login_required(
    view: t.Callable[..., t.Any], /, *args: t.Any, **kwargs: t.Any
) -> t.Generator[t.Any, t.Any, t.Any]:
    """Refuse the request unless the user loader knows the token."""
    user = yield load_user(request.headers.get("Authorization"))

    if user is None:
        abort(401)

    g.user = user
    return (yield view(*args, **kwargs))


app = Flask(__name__)


@app.get("/sync")
@login_required
def sync_view() -> dict[str, str]:
    return {"user": g.user, "loader": g.loader_loop, "view": running_loop()}


@app.get("/async")
@login_required
async def async_view() -> dict[str, str]:
    return {"user": g.user, "loader": g.loader_loop, "view": running_loop()}


def main() -> None:
    client = app.test_client()

    for path in ("/sync", "/async"):
        for token in ("token-ann", "wrong-token"):
            response = client.get(path, headers={"Authorization": token})
            line = f"GET {path:<6} as {token:<11} -> {response.status}"

            if response.is_json:
                data = response.get_json()
                line += (
                    f", user {data['user']}, loader ran on {data['loader']},"
                    f" view ran on {data['view']}"
                )

            print(line)


if __name__ == "__main__":
    main()
