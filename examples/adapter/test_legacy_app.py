from __future__ import annotations

import pytest
from legacy_app import create_app


@pytest.fixture
def client():
    return create_app().test_client()


def test_cors_headers_on_async_view(client):
    response = client.get("/items", headers={"Origin": "https://example.com"})
    assert response.json == ["apple", "pear"]
    assert response.headers["Access-Control-Allow-Origin"] == "https://example.com"


def test_cors_preflight_on_async_view(client):
    response = client.options(
        "/items",
        headers={
            "Origin": "https://example.com",
            "Access-Control-Request-Method": "GET",
        },
    )
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "https://example.com"


def test_permission_on_async_view(client):
    assert client.post("/items").status_code == 403
    assert client.post("/items", headers={"X-Role": "admin"}).status_code == 201


@pytest.mark.parametrize("path", ["/reports", "/reports/sync"])
def test_token_on_sync_and_async_views(client, path):
    assert client.get(path).status_code == 401
    response = client.get(path, headers={"Authorization": "Bearer secret"})
    assert response.json == {"reports": 3}
