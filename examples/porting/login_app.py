"""An app that uses the ported login manager, with an async user loader and
the portal, so ``current_user`` works in every kind of view.
"""

from __future__ import annotations

import asyncio

from flask import Flask
from flask import session
from login_after import current_user
from login_after import login_required
from login_after import LoginManager

from flask_asyncext.portal import SyncPortal

USERS = {"ada": "Ada Lovelace"}


def create_app() -> Flask:
    app = Flask(__name__)
    app.secret_key = "dev"
    login_manager = LoginManager(app)
    # Sync code in async views (current_user here) waits on the view's loop.
    SyncPortal(app)

    @login_manager.user_loader
    async def load_user(user_id: str) -> str | None:
        await asyncio.sleep(0)  # await a database here
        return USERS.get(user_id)

    @app.post("/login/<name>")
    def login(name: str) -> tuple[str, int]:
        session["_user_id"] = name
        return "", 204

    @app.get("/profile")
    @login_required
    async def profile() -> str:
        return f"profile of {current_user}"

    @app.get("/")
    async def index() -> str:
        # No login_required: current_user loads the user here, through the
        # portal.
        return f"hello {current_user or 'anonymous'}"

    return app
