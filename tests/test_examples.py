"""Run the recipes in ``examples/recipes``, which the docs include."""

from __future__ import annotations

import importlib.util
import inspect
import pathlib
import types

import pytest
from flask import Flask
from flask.testing import FlaskClient

RECIPES = pathlib.Path(__file__).parent.parent / "examples" / "recipes"


def load_recipe(name: str) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(
        f"recipes_{name}", RECIPES / f"{name}.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def client_for(name: str) -> FlaskClient:
    app: Flask = load_recipe(name).create_app()
    app.testing = True
    return app.test_client()


@pytest.fixture(params=["", "/async"], ids=["sync", "async"])
def suffix(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_login_required_denies_anonymous(suffix: str) -> None:
    client = client_for("login_required")
    assert client.get(f"/profile{suffix}").status_code == 401


def test_login_required_denies_unknown_user(suffix: str) -> None:
    # The async user loader returns None: the request must be refused, not
    # let through by a truthy coroutine object.
    client = client_for("login_required")
    assert client.post("/login/eve").status_code == 204
    assert client.get(f"/profile{suffix}").status_code == 401


def test_login_required_allows_known_user(suffix: str) -> None:
    client = client_for("login_required")
    client.post("/login/ada")
    response = client.get(f"/profile{suffix}")
    assert (response.status_code, response.json) == (200, {"user": "Ada Lovelace"})


def test_login_required_keeps_calling_convention() -> None:
    app = load_recipe("login_required").create_app()
    assert not inspect.iscoroutinefunction(app.view_functions["profile"])
    assert inspect.iscoroutinefunction(app.view_functions["profile_async"])


def test_rate_limit_counts_per_key(suffix: str) -> None:
    client = client_for("rate_limit")
    alice = {"X-Api-Key": "alice"}
    statuses = [client.get(f"/search{suffix}", headers=alice).status_code]
    statuses.append(client.get(f"/search{suffix}", headers=alice).status_code)
    statuses.append(client.get(f"/search{suffix}", headers=alice).status_code)
    bob = client.get(f"/search{suffix}", headers={"X-Api-Key": "bob"})
    assert statuses == [200, 200, 429]
    assert (bob.status_code, bob.text) == (200, "results")


def test_rate_limit_rejects_bad_limit() -> None:
    recipe = load_recipe("rate_limit")

    with pytest.raises(ValueError, match=r"limit\(\) needs times >= 1, got 0\."):
        recipe.limit(0)


def test_rate_limit_decorator_is_named_after_body() -> None:
    recipe = load_recipe("rate_limit")
    assert recipe.limit(1).__name__ == "rate_limited"


def test_no_cache_bare_and_called() -> None:
    client = client_for("bare_or_called")
    bare = client.get("/balance")
    called = client.get("/balance/async")
    assert (bare.text, bare.headers["Cache-Control"]) == ("42", "no-store")
    assert (called.text, called.headers["Cache-Control"]) == ("42", "private")


def test_hooks_refuse_without_key(suffix: str) -> None:
    client = client_for("hooks")
    response = client.get(f"/items/7{suffix}")
    assert response.status_code == 403
    assert response.json == {"error": "unknown API key"}
    assert response.headers["X-Api-Version"] == "1"


def test_hooks_allow_with_key(suffix: str) -> None:
    client = client_for("hooks")
    response = client.get(f"/items/7{suffix}", headers={"X-Api-Key": "s3cret"})
    assert (response.status_code, response.json) == (200, {"id": 7})
    assert response.headers["X-Api-Version"] == "1"
