"""Detection of coroutine functions that behaves the same on every Python."""

from __future__ import annotations

import inspect
import sys

if sys.version_info >= (3, 12):
    from inspect import iscoroutinefunction as iscoroutinefunction
else:
    import asyncio.coroutines

    #: The marker that ``asgiref.sync.markcoroutinefunction`` sets before 3.12.
    _marker: object = vars(asyncio.coroutines)["_is_coroutine"]

    def iscoroutinefunction(obj: object) -> bool:
        """Like :func:`inspect.iscoroutinefunction` on Python 3.12: also true
        for functions (and their bound methods) marked with
        ``asgiref.sync.markcoroutinefunction``. Callers unwrap partials.
        """
        if inspect.iscoroutinefunction(obj):
            return True

        # A bound method proxies attribute access to its function.
        return getattr(obj, "_is_coroutine", None) is _marker
