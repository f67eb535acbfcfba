"""What the shared loop adds: background tasks, sync code called from async
code without holding the loop, and a warning when something holds it anyway.
"""

from __future__ import annotations

import asyncio
import time

from asgiref.sync import sync_to_async
from flask import Flask

from flask_asyncext.shared_loop import SharedLoop

# At interpreter exit, wait at most 5 s (the default) for background tasks;
# log a warning when a coroutine holds the loop for more than 0.5 s.
shared_loop = SharedLoop(exit_timeout=5.0, blocking_warning=0.5)

sent: list[str] = []


async def send_welcome_email(address: str) -> None:
    await asyncio.sleep(0.01)  # talk to the mail server
    sent.append(address)


def legacy_lookup(user_id: int) -> str:
    time.sleep(0.01)  # blocking I/O
    return f"user {user_id}"


def create_app() -> Flask:
    app = Flask(__name__)
    shared_loop.init_app(app)

    @app.post("/signup/<address>")
    async def signup(address: str) -> str:
        # Keeps running after the response is sent.
        asyncio.create_task(send_welcome_email(address))  # noqa: RUF006
        return "welcome"

    @app.get("/user/<int:user_id>")
    async def user(user_id: int) -> str:
        # Runs in this request's own thread, which waits for the loop anyway.
        return await sync_to_async(legacy_lookup)(user_id)

    @app.get("/report")
    async def report() -> str:
        time.sleep(1)  # noqa: ASYNC251 (holds the loop: every request waits)
        return "done"

    return app
