"""gunicorn settings for the shared loop: close it when a worker exits."""

from __future__ import annotations

import typing as t

worker_class = "gthread"
threads = 8


def worker_exit(server: t.Any, worker: t.Any) -> None:
    from app import shared_loop

    # Wait up to 10 s for background tasks, then cancel what is left.
    shared_loop.close(timeout=10)
