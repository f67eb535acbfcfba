"""What the toolkit does differently on Quart apps.

Quart awaits async views on its own event loop and runs sync views (and
sync hooks) in a worker thread of that loop's executor, with the request's
context copied there. Flask's ``current_app`` is not bound in a Quart app,
so the bridges would fall back to asgiref and start a new event loop in that
thread. Instead, awaitables met in such a thread are run on Quart's own loop,
and the thread waits for them, serving the sync calls they make through
:func:`~flask_asyncext.ensure_async` with ``thread=True`` meanwhile.

Nothing here imports Quart: it is looked up in :data:`sys.modules`, so
Flask-only processes never load it, and this module's helpers are cheap
no-ops for them.
"""

from __future__ import annotations

import asyncio
import collections.abc as cabc
import concurrent.futures
import contextvars
import queue
import sys
import threading
import typing as t

from flask import current_app as flask_current_app
from flask import has_app_context as has_flask_app_context

T = t.TypeVar("T")

#: The loop Quart runs the current app context on, noted on that loop when
#: the context is pushed, and copied to the worker threads with the rest of
#: the context.
_app_loop: contextvars.ContextVar[asyncio.AbstractEventLoop] = contextvars.ContextVar(
    "flask_asyncext.quart_app_loop"
)
_installed = False


def install() -> None:
    """Start noting the loop of each Quart app context that is pushed, once
    Quart is imported. Called when a decorator is applied and when a bridge
    is made; does nothing after the first time, or without Quart.
    """
    global _installed

    if _installed:
        return

    signals = sys.modules.get("quart.signals")

    if signals is None:
        return

    signals.appcontext_pushed.connect(_note_loop, weak=False)
    _installed = True


async def _note_loop(sender: t.Any, **kwargs: t.Any) -> None:
    # An async receiver: blinker awaits it in the task that pushes the app
    # context, so the variable is set in that task's context.
    _app_loop.set(asyncio.get_running_loop())


def current_app() -> t.Any | None:
    """The app of the active Quart app context, or ``None``."""
    quart_globals = sys.modules.get("quart.globals")

    if quart_globals is None:
        return None

    ctx = quart_globals._cv_app.get(None)
    return None if ctx is None else ctx.app


def app_loop() -> asyncio.AbstractEventLoop | None:
    """Quart's loop, from a thread Quart runs sync code in, or ``None``
    outside Quart (or if that loop is no longer running).
    """
    loop = _app_loop.get(None)

    if loop is None:
        # Quart may have been imported after every decorator was applied.
        install()
        return None

    if loop.is_running() and current_app() is not None:
        return loop

    return None


class _Waiter:
    """A thread that waits for a coroutine it sent to Quart's loop, and
    meanwhile runs the sync calls that coroutine hands back to it (the
    worker threads of Quart's executor are few: a second one per call could
    wait for the first forever).
    """

    def __init__(self) -> None:
        self.calls: queue.SimpleQueue[cabc.Callable[[], None] | None] = (
            queue.SimpleQueue()
        )
        self.lock = threading.Lock()
        self.closed = False

    def close(self, future: object = None) -> None:
        with self.lock:
            self.closed = True
            self.calls.put(None)

    def wait(self, future: concurrent.futures.Future[T]) -> T:
        future.add_done_callback(self.close)

        while (call := self.calls.get()) is not None:
            call()

        return future.result()

    def submit(self, call: cabc.Callable[[], None]) -> bool:
        """Queue ``call`` for this thread, unless it has stopped waiting."""
        with self.lock:
            if not self.closed:
                self.calls.put(call)

            return not self.closed

    async def run(
        self, func: cabc.Callable[..., T], *args: t.Any, **kwargs: t.Any
    ) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        context = contextvars.copy_context()

        def call() -> None:
            try:
                rv = context.run(func, *args, **kwargs)
            except BaseException as e:
                loop.call_soon_threadsafe(_set_exception, future, e)
            else:
                loop.call_soon_threadsafe(_set_result, future, rv)

        if not self.submit(call):
            # A task that outlived the coroutine this thread waited for.
            return await asyncio.to_thread(func, *args, **kwargs)

        return await future


def _set_result(future: asyncio.Future[T], rv: T) -> None:
    if not future.done():
        future.set_result(rv)


def _set_exception(future: asyncio.Future[t.Any], e: BaseException) -> None:
    if not future.done():
        future.set_exception(e)


_waiter: contextvars.ContextVar[_Waiter] = contextvars.ContextVar(
    "flask_asyncext.quart_waiter"
)


def run_on_app_loop(
    loop: asyncio.AbstractEventLoop,
    func: cabc.Callable[[], cabc.Coroutine[t.Any, t.Any, T]],
) -> T:
    """Run ``func()`` on Quart's ``loop`` and wait for its result in this
    thread, which runs the sync calls the coroutine hands to
    :func:`waiting_thread` meanwhile. The coroutine sees this thread's
    context (Quart's ``request``, ``g``).
    """
    waiter = _Waiter()
    token = _waiter.set(waiter)
    coroutine = func()

    try:
        # The task is made in a copy of this context, waiter included.
        future = asyncio.run_coroutine_threadsafe(coroutine, loop)
    except BaseException:
        coroutine.close()
        raise
    finally:
        _waiter.reset(token)

    return waiter.wait(future)


def waiting_thread() -> _Waiter | None:
    """The thread waiting for the running coroutine on Quart's loop, to run
    a sync call in, or ``None`` outside that case.
    """
    waiter = _waiter.get(None)

    if waiter is None or waiter.closed:
        return None

    return waiter


def make_response(rv: t.Any) -> t.Any:
    """The active app's ``make_response(rv)``: a response object on Flask,
    an awaitable one on Quart (whose ``make_response`` is async).
    """
    if not has_flask_app_context():
        app = current_app()

        if app is not None:
            return app.make_response(rv)

    return flask_current_app.make_response(rv)
