"""The shared loop under gevent: serve with gevent's WSGI server or with
``gunicorn --worker-class gevent gevent_app:app``.
"""

from __future__ import annotations

import gevent.monkey

gevent.monkey.patch_all()  # first, before anything else is imported

import asyncio  # noqa: E402
import os  # noqa: E402

from flask import Flask  # noqa: E402

from flask_asyncext.shared_loop import SharedLoop  # noqa: E402

app = Flask(__name__)
shared_loop = SharedLoop(app)
in_flight = 0
most_in_flight = 0


@app.get("/<int:n>")
async def view(n: int) -> str:
    global in_flight, most_in_flight
    in_flight += 1
    most_in_flight = max(most_in_flight, in_flight)
    await asyncio.sleep(0.2)  # the other requests' greenlets run meanwhile
    in_flight -= 1
    return f"{n} {id(asyncio.get_running_loop())} {os.getpid()}"


@app.get("/most-in-flight")
def most() -> str:
    return str(most_in_flight)


if __name__ == "__main__":
    from gevent.pywsgi import WSGIServer

    WSGIServer(("127.0.0.1", int(os.environ.get("PORT", "5000"))), app).serve_forever()
