from __future__ import annotations

import pytest
from token_auth import TokenAuth

from flask_asyncext.testing import DecoratorConformance
from flask_asyncext.testing import make_app


class TestLoginRequired(DecoratorConformance):
    # app_kinds is left as it is: every check runs on Flask apps, and on
    # Quart apps too where Quart is installed.
    blocks_requests = True
    denied_status = (401,)
    strict = True

    @pytest.fixture
    def auth(self):
        return TokenAuth()

    @pytest.fixture
    def app(self, asyncext_app_kind, auth):
        app = make_app(app_kind=asyncext_app_kind)
        auth.init_app(app)
        return app

    @pytest.fixture
    def decorator(self, auth):
        return auth.login_required

    def install_callbacks(self, app, mode):
        users = {"s3cret": "ada"}

        async def verify(token):
            return users.get(token)

        app.extensions["token_auth"].verify_token(
            users.get if mode == "sync" else verify
        )

    def allow(self, client):
        return {"headers": {"Authorization": "Bearer s3cret"}}

    def deny(self, client):
        return {"headers": {"Authorization": "Bearer wrong"}}
