"""The ``examples/shared_db`` recipe, served with one extra view that shows
which request a session was opened for.
"""

from __future__ import annotations

import asyncio
import importlib.util
import pathlib
import sys
import typing as t

from flask import Flask
from flask import request
from sqlalchemy import select

ROOT = pathlib.Path(__file__).parent.parent.parent
RECIPE = ROOT / "examples" / "shared_db" / "app.py"


def load_recipe() -> t.Any:
    """A fresh copy of the recipe module (its own engine and runner)."""
    spec = importlib.util.spec_from_file_location("shared_db_recipe", RECIPE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def add_check_view(app: Flask, db: t.Any) -> None:
    @app.get("/check")
    async def check() -> dict[str, t.Any]:
        session = await db.session()
        # A new session per request starts with empty info.
        owner = session.info.setdefault("request", request.args["id"])
        # Hold a pooled connection across awaits, so requests wait for the
        # pool (and each other) on the loop.
        await session.execute(select(1))
        await asyncio.sleep(0.005)
        again = await db.session()
        await session.execute(select(1))
        return {
            "owner": owner,
            "same": again is session,
            "checked_out": db.engine.pool.checkedout(),
        }


def create_app() -> Flask:
    app = recipe.create_app()
    add_check_view(app, recipe.db)
    return app


recipe = load_recipe()
