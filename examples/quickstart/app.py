"""The quickstart: one decorator in front of a sync and an async view.

Run it with ``python examples/quickstart/app.py``; it prints what each request
returned.
"""

from __future__ import annotations

import asyncio

from flask import abort
from flask import Flask
from flask import g
from flask import request

from flask_asyncext import async_compatible_decorator

app = Flask(__name__)

USERS = {"token-ada": "ada"}


async def load_user(token):
    """The app's user loader: ``async def`` here, but a plain ``def`` works
    the same.
    """
    await asyncio.sleep(0)  # await a database here
    return USERS.get(token)


@async_compatible_decorator
def login_required(view, /, *args, **kwargs):
    """Refuse the request unless a user is logged in."""
    user = yield load_user(request.headers.get("Authorization"))

    if user is None:
        abort(401)

    g.user = user
    return (yield view(*args, **kwargs))


@app.get("/profile")
@login_required
def profile():
    return {"user": g.user, "view": "sync"}


@app.get("/profile/async")
@login_required
async def profile_async():
    return {"user": g.user, "view": "async"}


if __name__ == "__main__":
    client = app.test_client()

    for path in ("/profile", "/profile/async"):
        for token in ("token-ada", "token-eve"):
            response = client.get(path, headers={"Authorization": token})
            line = f"GET {path} as {token}: {response.status_code}"

            if response.is_json:
                line += f" {response.json}"

            print(line)
