from __future__ import annotations

import pytest
from flask_apikey import APIKeyManager
from flask_apikey import require_api_key

from flask_asyncext.testing import DecoratorConformance


class TestRequireApiKey(DecoratorConformance):
    blocks_requests = True
    # Flask-APIKey uses Flask's request and g: Flask apps only.
    app_kinds = ("flask",)

    @pytest.fixture
    def decorator(self):
        return require_api_key

    def install_callbacks(self, app, mode):
        async def load(key):
            return owners.get(key)

        owners = {"good": "alice"}
        APIKeyManager(app).key_loader(owners.get if mode == "sync" else load)

    def allow(self, client):
        return {"headers": {"X-Api-Key": "good"}}

    def deny(self, client):
        return {"headers": {"X-Api-Key": "bad"}}
