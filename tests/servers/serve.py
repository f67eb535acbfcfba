"""Serve :mod:`servers.app` with a server that has no command line of its own.

``python -m servers.serve NAME PORT``, NAME one of ``werkzeug`` (threaded),
``waitress`` (8 threads) or ``gevent`` (``gevent.pywsgi`` after
``gevent.monkey.patch_all()``). SIGTERM stops the server cleanly, so that the
process exits through ``atexit`` (coverage data, ``SharedLoop.close``).
"""

from __future__ import annotations

import signal
import sys
import typing as t


def serve_werkzeug(port: int) -> None:
    from werkzeug.serving import make_server

    from servers.app import app

    server = make_server("127.0.0.1", port, app, threaded=True)

    def stop(signum: int, frame: t.Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)

    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def serve_waitress(port: int) -> None:
    import waitress

    from servers.app import app

    def stop(signum: int, frame: t.Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)

    try:
        waitress.serve(app, host="127.0.0.1", port=port, threads=8, _quiet=True)
    except KeyboardInterrupt:
        pass


def serve_gevent(port: int) -> None:
    from gevent import monkey

    monkey.patch_all()

    import gevent
    from gevent.pywsgi import WSGIServer

    from servers.app import app

    server = WSGIServer(("127.0.0.1", port), app, log=None)
    gevent.signal_handler(signal.SIGTERM, server.stop)
    server.serve_forever()


SERVERS = {
    "werkzeug": serve_werkzeug,
    "waitress": serve_waitress,
    "gevent": serve_gevent,
}


def main(argv: list[str]) -> None:
    name, port = argv
    SERVERS[name](int(port))


if __name__ == "__main__":
    main(sys.argv[1:])
