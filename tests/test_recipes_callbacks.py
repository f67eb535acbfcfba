"""Run the callback-registry and dual-backend recipes, which the docs
include.
"""

from __future__ import annotations

import typing as t

import pytest
from test_examples import client_for
from test_examples import load_recipe

from flask_asyncext import drive_sync

if t.TYPE_CHECKING:
    from conftest import LoopCounter


@pytest.fixture(params=["", "/async"], ids=["sync", "async"])
def suffix(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_registry_denies_with_the_unauthorized_handler(suffix: str) -> None:
    client = client_for("callback_registry")
    response = client.get(f"/profile{suffix}")
    assert (response.status_code, response.json) == (401, {"error": "log in first"})


def test_registry_denies_unknown_user(suffix: str) -> None:
    # The async loader returns None: denied, not let in by a coroutine.
    client = client_for("callback_registry")
    client.post("/login/eve")
    assert client.get(f"/profile{suffix}").status_code == 401


def test_registry_allows_known_user(suffix: str) -> None:
    client = client_for("callback_registry")
    client.post("/login/ada")
    response = client.get(f"/profile{suffix}")
    assert (response.status_code, response.json) == (200, {"user": "Ada Lovelace"})


def test_registry_from_sync_code() -> None:
    client = client_for("callback_registry")
    assert client.get("/whoami").text == "anonymous"
    client.post("/login/ada")
    assert client.get("/whoami").text == "Ada Lovelace"


def test_registry_unauthorized_default() -> None:
    manager = load_recipe("callback_registry").LoginManager()
    assert not manager.unauthorized_handler
    assert drive_sync(manager.unauthorized()) == ("Unauthorized", 401)


def test_dual_backend_picks_storage_per_path(loops: LoopCounter) -> None:
    app = load_recipe("dual_backend").create_app()
    app.testing = True
    storage, aio = app.extensions["storages"]
    client = app.test_client()

    assert [client.get("/search").status_code for _ in range(2)] == [200, 200]
    assert (storage.calls, aio.calls, loops.created) == (2, 0, 0)

    statuses = [client.get("/search/async").status_code for _ in range(2)]
    assert statuses == [200, 429]
    assert (storage.calls, aio.calls) == (2, 2)
