"""Telling a body which path it runs on, so it can pick a sync or an async
backend (storage, client) to match.
"""

from __future__ import annotations

import asyncio


def is_async_path() -> bool:
    """Tell whether the calling code runs on an event loop: in a decorator
    body, whether it serves an async view (or is an ``async def`` body).

    On the async path an awaitable a body yields is awaited in the view's own
    loop, for free. On the sync path each one costs a call through the app's
    bridge (with Flask's default bridge, a new event loop and a thread), so a
    body that can reach its data both ways should use the sync client there.
    This is the way to give a decorator two backends, as Flask-Limiter has
    ``limits`` and ``limits.aio`` storages:

    .. code-block:: python

        @async_compatible_decorator
        def rate_limited(view, /, *args, **kwargs):
            storage = async_storage if is_async_path() else sync_storage
            hits = yield storage.incr(request.remote_addr)
            ...

    It costs one C call (:func:`asyncio.get_running_loop`'s non-raising
    form) and needs no app context. Sync code that runs inside an async view
    (a template, a ``LocalProxy``) is on the loop too, and sees ``True``.

    .. versionadded:: 0.1
    """
    return asyncio._get_running_loop() is not None
