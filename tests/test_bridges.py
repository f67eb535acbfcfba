from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import inspect
import sys
import threading
import types
import typing as t

import pytest
from asgiref.sync import markcoroutinefunction
from flask import Flask
from flask import g
from flask import request

from flask_asyncext import ensure_async
from flask_asyncext import ensure_sync
from flask_asyncext import is_async_callable
from flask_asyncext import maybe_await
from flask_asyncext.bridges import _run_sync

if t.TYPE_CHECKING:
    from conftest import LoopCounter

# -- is_async_callable -------------------------------------------------------


async def coro_func(x: int = 1) -> int:
    return x


def sync_func(x: int = 1) -> int:
    return x


class AsyncCall:
    async def __call__(self) -> int:
        return 1

    async def method(self) -> int:
        return 1

    def sync_method(self) -> int:
        return 1


class SyncCall:
    def __call__(self) -> int:
        return 1


def _marked_with_asgiref() -> t.Any:
    def marked() -> t.Any:
        return coro_func()

    return markcoroutinefunction(marked)


ASYNC_CALLABLES = {
    "coroutine function": coro_func,
    "async lambda-like partial": functools.partial(coro_func, 2),
    "nested partial": functools.partial(functools.partial(coro_func), 3),
    "bound async method": AsyncCall().method,
    "object with async __call__": AsyncCall(),
    "partial of async object": functools.partial(AsyncCall()),
    "marked with asgiref": _marked_with_asgiref(),
    "partial of marked": functools.partial(_marked_with_asgiref()),
}

#: What calling each of ``ASYNC_CALLABLES`` with no arguments gives.
ASYNC_RESULTS = {
    "coroutine function": 1,
    "async lambda-like partial": 2,
    "nested partial": 3,
    "bound async method": 1,
    "object with async __call__": 1,
    "partial of async object": 1,
    "marked with asgiref": 1,
    "partial of marked": 1,
}
ASYNC_CASES = [
    pytest.param(obj, ASYNC_RESULTS[name], id=name)
    for name, obj in ASYNC_CALLABLES.items()
]

NOT_ASYNC = {
    "sync function": sync_func,
    "partial of sync": functools.partial(sync_func, 2),
    "bound sync method": AsyncCall().sync_method,
    "object with sync __call__": SyncCall(),
    "class with async __call__": AsyncCall,
    "builtin": len,
    "not callable": 42,
    "None": None,
    "sync function returning a coroutine": lambda: coro_func(),
}


@pytest.mark.parametrize("obj", ASYNC_CALLABLES.values(), ids=list(ASYNC_CALLABLES))
def test_is_async_callable_true(obj: object) -> None:
    assert is_async_callable(obj) is True


@pytest.mark.parametrize("obj", NOT_ASYNC.values(), ids=list(NOT_ASYNC))
def test_is_async_callable_false(obj: object) -> None:
    assert is_async_callable(obj) is False


@pytest.mark.skipif(
    sys.version_info < (3, 12), reason="inspect.markcoroutinefunction is new in 3.12"
)
def test_is_async_callable_inspect_marker() -> None:
    def marked() -> t.Any:
        return coro_func()

    inspect.markcoroutinefunction(marked)  # type: ignore[attr-defined,unused-ignore]
    assert is_async_callable(marked)
    assert is_async_callable(functools.partial(marked))


@pytest.mark.parametrize(("obj", "expected"), ASYNC_CASES)
def test_every_async_callable_makes_a_real_async_view(
    app: Flask, obj: t.Any, expected: int
) -> None:
    """Flask must see the async wrapper on every Python, whatever the view."""
    from flask_asyncext import async_compatible_decorator

    @async_compatible_decorator
    def as_text(view: t.Any, /) -> t.Any:
        return str((yield view()))

    view = as_text(obj)
    assert inspect.iscoroutinefunction(view)
    app.add_url_rule("/", view_func=view)
    assert app.test_client().get("/").text == str(expected)


# -- maybe_await -------------------------------------------------------------


class CustomAwaitable:
    def __await__(self) -> t.Generator[t.Any, None, str]:
        yield from asyncio.sleep(0).__await__()
        return "custom"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("text", "text"),
        ({"a": 1}, {"a": 1}),
        (object, object),
        (CustomAwaitable(), "custom"),
    ],
)
def test_maybe_await(value: t.Any, expected: t.Any) -> None:
    assert asyncio.run(maybe_await(value)) == expected


def test_maybe_await_coroutine() -> None:
    assert asyncio.run(maybe_await(coro_func(5))) == 5


# -- ensure_sync -------------------------------------------------------------


@pytest.mark.parametrize(("obj", "expected"), ASYNC_CASES)
def test_ensure_sync_async_callables(obj: t.Any, expected: int, app: Flask) -> None:
    call = ensure_sync(obj)
    assert not inspect.iscoroutinefunction(call)
    assert call() == expected

    with app.app_context():
        assert call() == expected


def test_ensure_sync_keeps_metadata() -> None:
    call = ensure_sync(coro_func)
    assert call.__name__ == "coro_func"
    assert call.__wrapped__ is coro_func  # type: ignore[attr-defined]
    assert inspect.signature(call) == inspect.signature(coro_func)


def test_ensure_sync_sync_callable() -> None:
    call = ensure_sync(sync_func)
    assert call(4) == 4
    assert call.__wrapped__ is sync_func  # type: ignore[attr-defined]


def test_ensure_sync_resolves_hidden_awaitable() -> None:
    def looks_sync(x: int) -> t.Any:
        return coro_func(x)

    assert ensure_sync(looks_sync)(9) == 9


def test_ensure_sync_resolves_awaitable_returned_by_coroutine() -> None:
    async def returns_coroutine() -> t.Any:
        return coro_func(8)

    assert ensure_sync(returns_coroutine)() == 8


@pytest.mark.skipif(sys.version_info < (3, 12), reason="marker is new in 3.12")
def test_ensure_sync_wrapper_does_not_copy_marker() -> None:
    def marked() -> t.Any:
        return coro_func(6)

    inspect.markcoroutinefunction(marked)  # type: ignore[attr-defined,unused-ignore]
    call = ensure_sync(marked)
    assert not inspect.iscoroutinefunction(call)
    assert call() == 6


def test_ensure_sync_wrapper_does_not_copy_asgiref_marker() -> None:
    call = ensure_sync(_marked_with_asgiref())
    assert not is_async_callable(call)
    assert not inspect.iscoroutinefunction(call)
    assert call() == 1


def test_ensure_sync_honours_app_ensure_sync_override() -> None:
    calls: list[t.Any] = []

    class App(Flask):
        def ensure_sync(self, func: t.Any) -> t.Any:
            calls.append(func)
            return super().ensure_sync(func)

    app = App(__name__)
    with app.app_context():
        assert ensure_sync(AsyncCall())() == 1

    assert len(calls) == 1
    assert inspect.iscoroutinefunction(calls[0])


def test_ensure_sync_honours_app_async_to_sync_override() -> None:
    class App(Flask):
        def async_to_sync(self, func: t.Any) -> t.Any:
            def run(*args: t.Any, **kwargs: t.Any) -> t.Any:
                return ("custom bridge", asyncio.run(func(*args, **kwargs)))

            return run

    app = App(__name__)
    with app.app_context():
        assert ensure_sync(coro_func)(3) == ("custom bridge", 3)
        assert ensure_sync(lambda: coro_func(4))() == ("custom bridge", 4)


def test_ensure_sync_refuses_inside_running_loop() -> None:
    started: list[int] = []

    async def tracked() -> int:
        started.append(1)
        return 1

    async def main() -> None:
        with pytest.raises(RuntimeError, match="maybe_await") as info:
            ensure_sync(tracked)()
        assert "tracked" in str(info.value)

        def hidden() -> t.Any:
            return tracked()

        with pytest.raises(RuntimeError, match=r"running an\s+event loop"):
            ensure_sync(hidden)()

        # A sync callable returning a plain value works there.
        assert ensure_sync(sync_func)(7) == 7

    asyncio.run(main())
    assert started == []


def test_ensure_sync_keeps_context_and_exceptions(app: Flask) -> None:
    class Failure(Exception):
        pass

    async def check() -> str:
        if request.args.get("fail"):
            raise Failure(request.path)
        return f"{g.user}:{request.path}"

    with app.test_request_context("/path"):
        g.user = "ann"
        assert ensure_sync(check)() == "ann:/path"

    with app.test_request_context("/fail?fail=1"), pytest.raises(Failure) as info:
        ensure_sync(check)()

    assert info.value.args == ("/fail",)


# -- ensure_async ------------------------------------------------------------


def test_ensure_async_returns_coroutine_function_as_is() -> None:
    assert ensure_async(coro_func) is coro_func


@pytest.mark.parametrize("obj", ASYNC_CALLABLES.values(), ids=list(ASYNC_CALLABLES))
def test_ensure_async_async_callables(obj: t.Any) -> None:
    call = ensure_async(obj)
    assert inspect.iscoroutinefunction(call)
    assert asyncio.run(call()) in {1, 2, 3}


@pytest.mark.parametrize("thread", [False, True])
def test_ensure_async_sync_callable(thread: bool) -> None:
    threads: list[int] = []

    def work(x: int) -> int:
        threads.append(threading.get_ident())
        return x * 2

    call = ensure_async(work, thread=thread)
    assert inspect.iscoroutinefunction(call)
    assert call.__wrapped__ is work  # type: ignore[attr-defined]

    async def main() -> int:
        threads.append(threading.get_ident())
        return await call(21)

    assert asyncio.run(main()) == 42
    assert (threads[0] != threads[1]) is thread


@pytest.mark.parametrize("thread", [False, True])
def test_ensure_async_resolves_hidden_awaitable(thread: bool) -> None:
    call = ensure_async(lambda: coro_func(5), thread=thread)
    assert asyncio.run(call()) == 5


def test_ensure_async_thread_sees_flask_context(
    app: Flask, asyncext_shared_loop: t.Any
) -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var")
    threads: dict[str, int] = {}

    def work() -> str:
        threads["work"] = threading.get_ident()
        var.set("changed")
        return f"{g.user}:{request.path}"

    async def in_loop() -> str:
        threads["loop"] = threading.get_ident()
        rv = await ensure_async(work, thread=True)()
        return f"{rv}:{var.get()}"

    with app.test_request_context("/here"):
        g.user = "bob"
        assert ensure_sync(in_loop)() == "bob:/here:changed"

    assert threads["loop"] != threads["work"]
    # Under asgiref's bridge the request's own thread, which is waiting for
    # the loop, runs the sync code; on a shared loop, the loop's pool does.
    assert (threads["work"] == threading.get_ident()) is (asyncext_shared_loop is None)


def test_ensure_async_thread_on_other_loops_uses_pool() -> None:
    """On a loop asgiref did not start, sync calls run in the loop's pool
    and do not queue behind each other on one global thread.
    """
    barrier = threading.Barrier(3, timeout=10)

    def work() -> int:
        barrier.wait()
        return threading.get_ident()

    call = ensure_async(work, thread=True)

    async def main() -> set[int]:
        return set(await asyncio.gather(call(), call(), call()))

    assert len(asyncio.run(main())) == 3


# -- _run_sync ----------------------------------------------------------------


def test_run_sync_outside_app_context(loops: LoopCounter) -> None:
    assert _run_sync(coro_func(3)) == 3
    assert loops.created == 1


def test_run_sync_failure_closes_unstarted_coroutine(app: Flask) -> None:
    class Broken(Flask):
        def async_to_sync(self, func: t.Any) -> t.Any:
            raise RuntimeError("no bridge")

    coroutine = coro_func()
    with Broken(__name__).app_context(), pytest.raises(RuntimeError, match="no bridge"):
        _run_sync(coroutine)

    assert inspect.getcoroutinestate(coroutine) == inspect.CORO_CLOSED


@types.coroutine
def _generator_coroutine() -> t.Generator[t.Any, None, int]:
    yield from asyncio.sleep(0).__await__()
    return 1


async def _sleeping() -> int:
    await asyncio.sleep(0)
    return 1


def test_run_sync_failure_closes_unstarted_generator_coroutine() -> None:
    async def main() -> t.Any:
        gen = _generator_coroutine()
        with pytest.raises(RuntimeError, match="event loop"):
            _run_sync(gen, "culprit")
        return gen

    gen = asyncio.run(main())
    assert inspect.getgeneratorstate(gen) == inspect.GEN_CLOSED


def test_run_sync_failure_leaves_other_awaitables_alone() -> None:
    """A future, or a coroutine that already started, belongs to someone
    else: a failed bridge must neither cancel nor close it.
    """

    async def main() -> None:
        future = asyncio.get_running_loop().create_future()
        coroutine = _sleeping()
        coroutine.send(None)
        gen = _generator_coroutine()
        gen.send(None)

        for awaitable in (future, coroutine, gen):
            with pytest.raises(RuntimeError, match="event loop"):
                _run_sync(awaitable, "culprit")

        assert not future.done()
        assert inspect.getcoroutinestate(coroutine) == inspect.CORO_SUSPENDED
        assert inspect.getgeneratorstate(gen) == inspect.GEN_SUSPENDED

        future.set_result(1)
        assert await future == 1
        with pytest.raises(StopIteration):
            coroutine.send(None)
        with pytest.raises(StopIteration):
            gen.send(None)

    asyncio.run(main())


def test_asgiref_loop_thread_executors_keeps_its_meaning() -> None:
    """``ensure_async(thread=True)`` reads asgiref's private
    ``AsyncToSync.loop_thread_executors`` to tell a loop asgiref's
    ``async_to_sync`` runs (where the waiting thread runs sync code) from any
    other. If asgiref changes it, this fails: re-check that code.
    """
    from asgiref.sync import async_to_sync
    from asgiref.sync import AsyncToSync

    executors = AsyncToSync.loop_thread_executors
    assert isinstance(executors, dict)

    async def inside() -> bool:
        return asyncio.get_running_loop() in executors

    assert async_to_sync(inside)() is True
    assert asyncio.run(inside()) is False
    assert executors == {}


class _ThreadBridgeFlask(Flask):
    """An app whose bridge runs coroutines on a loop of its own, in another
    thread (as Flask's gevent recipe runs them in another greenlet): it can
    wait from a thread whose running loop is not its own.
    """

    def async_to_sync(self, func: t.Any) -> t.Any:
        def run(*args: t.Any, **kwargs: t.Any) -> t.Any:
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                return pool.submit(asyncio.run, func(*args, **kwargs)).result()

        return run


@pytest.mark.parametrize("override", ["subclass", "instance"])
def test_app_bridge_decides_inside_a_running_loop(override: str) -> None:
    """With an ``async_to_sync`` override, the app's bridge decides whether
    it can wait in a thread that runs a loop (under gevent, every greenlet
    sees the loop one of them runs); Flask's own bridge is refused there.
    """
    if override == "subclass":
        app: Flask = _ThreadBridgeFlask(__name__)
    else:
        app = Flask(__name__)
        app.async_to_sync = _ThreadBridgeFlask.async_to_sync.__get__(app)  # type: ignore[method-assign]

    plain = Flask(__name__)

    async def load() -> str:
        return "loaded"

    async def main() -> tuple[object, object]:
        with app.app_context():
            via_ensure_sync = ensure_sync(load)()
            via_body = ensure_sync(lambda: load())()

        with plain.app_context():
            with pytest.raises(
                RuntimeError, match="this thread is running an event loop"
            ):
                ensure_sync(load)()

        return via_ensure_sync, via_body

    assert asyncio.run(main()) == ("loaded", "loaded")
