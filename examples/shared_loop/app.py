"""A Flask app on the shared loop, with loop-bound objects made per process.

Objects bound to an event loop (an ``asyncio.Lock``, a connection pool, a
client) are created lazily, on first use, by the process that uses them:
never at start-up, where a pre-forking server (gunicorn ``--preload``) would
create them in the master, bound to a loop its workers do not have.
"""

from __future__ import annotations

import asyncio
import weakref

from flask import Flask

from flask_asyncext.shared_loop import SharedLoop

shared_loop = SharedLoop()


class Resources:
    """This process's loop-bound objects."""

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.hits = 0


#: One Resources per event loop: a forked worker, which gets a loop of its
#: own, gets its own Resources on first use.
_resources: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Resources] = (
    weakref.WeakKeyDictionary()
)


def resources() -> Resources:
    """The first-use hook: call it from a coroutine on the shared loop."""
    loop = asyncio.get_running_loop()
    found = _resources.get(loop)

    if found is None:  # no await in between: no other coroutine can race us
        found = _resources[loop] = Resources()

    return found


def create_app() -> Flask:
    app = Flask(__name__)
    shared_loop.init_app(app)

    @app.get("/hit")
    async def hit() -> dict[str, int]:
        shared = resources()

        async with shared.lock:  # one request at a time in here
            shared.hits += 1
            await asyncio.sleep(0)
            return {"hits": shared.hits}

    return app
