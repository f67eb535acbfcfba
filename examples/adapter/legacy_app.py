"""Decorators written for sync views only, adapted for async views with
:func:`flask_asyncext.adapt_decorator`: flask-cors' ``cross_origin()``,
Flask-Principal's ``Permission.require()`` and an API token check written
the old way, which answers without calling the view.
"""

from __future__ import annotations

import asyncio
import collections.abc as cabc
import functools
import typing as t

from flask import Flask
from flask import request
from flask_cors import cross_origin
from flask_principal import Identity
from flask_principal import identity_loaded
from flask_principal import Permission
from flask_principal import Principal
from flask_principal import RoleNeed

from flask_asyncext import adapt_decorator

View = cabc.Callable[..., t.Any]


def require_token(view: View) -> View:
    """A decorator written the old way: a sync wrapper that calls the view.
    On an async view, it would return the view's coroutine as the response.
    """

    @functools.wraps(view)
    def wrapper(*args: t.Any, **kwargs: t.Any) -> t.Any:
        if request.headers.get("Authorization") != "Bearer secret":
            return {"error": "a valid token is required"}, 401

        return view(*args, **kwargs)

    return wrapper


admin_permission = Permission(RoleNeed("admin"))

# As the extensions ship them: they answer 500 on async views.
legacy_cors = cross_origin()
legacy_admin_required = admin_permission.require(403)

# Adapted: they work on sync and async views alike.
cors = adapt_decorator(cross_origin())
admin_required = adapt_decorator(admin_permission.require(403))
token_required = adapt_decorator(require_token)


def init_principal(app: Flask) -> None:
    """Give the request the identity its ``X-Role`` header names."""
    principal = Principal(app, use_sessions=False)

    @principal.identity_loader
    def load_identity() -> Identity | None:
        role = request.headers.get("X-Role")
        return None if role is None else Identity(role)

    @identity_loaded.connect_via(app)
    def add_role(sender: Flask, identity: Identity) -> None:
        identity.provides.add(RoleNeed(identity.id))


def create_app() -> Flask:
    app = Flask(__name__)
    init_principal(app)

    @app.get("/items")
    @cors
    async def items() -> list[str]:
        await asyncio.sleep(0)  # a database query
        return ["apple", "pear"]

    @app.post("/items")
    @admin_required
    async def add_item() -> tuple[str, int]:
        await asyncio.sleep(0)
        return "created", 201

    @app.get("/reports")
    @token_required
    async def reports() -> dict[str, int]:
        await asyncio.sleep(0)
        return {"reports": 3}

    @app.get("/reports/sync")
    @token_required
    def reports_sync() -> dict[str, int]:
        return {"reports": 3}

    return app
