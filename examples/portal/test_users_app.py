from __future__ import annotations

import pytest
from users_app import create_app


@pytest.fixture
def client():
    app = create_app()
    app.testing = True
    return app.test_client()


@pytest.mark.parametrize("path", ["/me", "/me/async"])
def test_current_user(client, path):
    assert client.get(path).json == {"name": "anonymous"}
    client.post("/login/1")
    assert client.get(path).json == {"name": "Ada"}


def test_template_in_async_view(client):
    client.post("/login/1")
    assert client.get("/hello").text == "Hello, Ada!"


def test_sync_validator_in_async_view(client):
    assert client.post("/signup", data={"name": "Ada"}).status_code == 400
    assert client.post("/signup", data={"name": "Grace"}).status_code == 201
