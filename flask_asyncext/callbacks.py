"""A building block for an extension's registry of user callbacks."""

from __future__ import annotations

import collections.abc as cabc
import functools
import inspect
import types
import typing as t

from .bridges import ensure_sync
from .bridges import is_async_callable
from .bridges import maybe_await
from .bridges import P
from .bridges import R


class Callback(t.Generic[P, R]):
    """One user callback of an extension, such as Flask-Login's
    ``user_loader``: registered once by the user, written ``def`` or
    ``async def``, and called by the extension from decorator bodies, async
    code and sync code alike.

    The extension makes one per callback and exposes it as an attribute;
    calling that attribute with a function registers it, so users write the
    familiar decorator:

    .. code-block:: python

        class LoginManager:
            def __init__(self):
                self.user_loader: Callback[[str], User | None] = Callback(
                    "user_loader", owner="LoginManager"
                )

        login_manager = LoginManager()

        @login_manager.user_loader
        async def load_user(user_id):
            return await db.get_user(user_id)

    The extension then calls it the way the calling code is written:

    -   in a decorator body or a generator helper, ``user = yield
        self.user_loader.call(user_id)``: the toolkit awaits the result in
        the view's loop, or bridges it on a sync view;
    -   in async code, ``user = await self.user_loader.call_async(user_id)``;
    -   in sync code (a request hook, a ``LocalProxy``, a template helper),
        ``user = self.user_loader.call_sync(user_id)``, which goes through
        :func:`~flask_asyncext.ensure_sync`.

    Every way resolves the result until it is a plain value, so an ``async
    def`` callback that returns ``None`` denies exactly like a sync one.
    What cannot be a callback is refused when it is registered, naming the
    callback: a non-callable, a class, a generator function (its truthy
    generator object would be taken for the result), an async generator
    function. Calling a callback that was never registered raises
    :exc:`RuntimeError` naming it; test for one with ``if
    manager.user_loader:``.

    :param name: The callback's name, used in error messages.
    :param owner: What the callback belongs to, for error messages, for
        example the extension's class name.

    .. versionadded:: 0.1
    """

    __slots__ = ("_call_sync", "_func", "name", "owner")

    def __init__(self, name: str, *, owner: str | None = None) -> None:
        #: The callback's name, used in error messages.
        self.name: str = name
        #: What the callback belongs to, used in error messages.
        self.owner: str | None = owner
        self._func: cabc.Callable[P, t.Any] | None = None
        self._call_sync: cabc.Callable[P, R] | None = None

    def _describe(self) -> str:
        return self.name if self.owner is None else f"{self.owner}.{self.name}"

    @t.overload
    def __call__(
        self, func: cabc.Callable[P, cabc.Awaitable[R]], /
    ) -> cabc.Callable[P, cabc.Awaitable[R]]: ...
    @t.overload
    def __call__(self, func: cabc.Callable[P, R], /) -> cabc.Callable[P, R]: ...
    def __call__(self, func: cabc.Callable[P, t.Any], /) -> cabc.Callable[P, t.Any]:
        """Register ``func`` as the callback, replacing any registered
        before, and return it unchanged, so this works as a decorator.

        :param func: A sync or async callable.
        """
        what = _refused(func)

        if what is not None:
            raise TypeError(
                f"{self._describe()} cannot be {func!r}: it is {what}. Register"
                " a function (def or async def) that returns the result."
            )

        self._func = func
        self._call_sync = ensure_sync(func)
        return func

    def __bool__(self) -> bool:
        return self._func is not None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._describe()} {self._func!r}>"

    @property
    def func(self) -> cabc.Callable[P, R | cabc.Awaitable[R]] | None:
        """The registered callable, or ``None``."""
        return self._func

    def _registered(self) -> cabc.Callable[P, t.Any]:
        if self._func is None:
            raise RuntimeError(
                f"No {self._describe()} callback is registered. Register one"
                f" with the '@{self._describe()}' decorator."
            )

        return self._func

    def call(self, *args: P.args, **kwargs: P.kwargs) -> R | cabc.Awaitable[R]:
        """Call the callback and return its result as it is: a value, or an
        awaitable for an async callback. Meant for ``yield`` in a decorator
        body or a generator helper, which resolves it.

        .. code-block:: python

            user = yield self.user_loader.call(user_id)
        """
        return self._registered()(*args, **kwargs)  # type: ignore[no-any-return]

    async def call_async(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Call the callback from async code and await its result, until a
        plain value is left (:func:`~flask_asyncext.maybe_await`).

        .. code-block:: python

            user = await self.user_loader.call_async(user_id)
        """
        return await maybe_await(self._registered()(*args, **kwargs))

    def call_sync(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Call the callback from sync code and wait for its result, with
        :func:`~flask_asyncext.ensure_sync`: through the app's bridge for an
        async callback. Where sync code cannot wait (a thread that runs an
        event loop), :func:`~flask_asyncext.ensure_sync` raises
        :exc:`RuntimeError`.

        .. code-block:: python

            user = self.user_loader.call_sync(user_id)
        """
        self._registered()
        assert self._call_sync is not None
        return self._call_sync(*args, **kwargs)


def _refused(func: object) -> str | None:
    """What ``func`` is, if it cannot be a callback."""
    if isinstance(func, type):
        return "a class"

    if not callable(func):
        return "not callable"

    if is_async_callable(func):
        return None

    target: t.Any = func

    while isinstance(target, functools.partial):
        target = target.func

    if not inspect.isroutine(target):
        target = target.__call__

    if inspect.isasyncgenfunction(target):
        return "an async generator function"

    # A generator-based coroutine function (types.coroutine) is awaitable.
    if inspect.isgeneratorfunction(target):
        code: types.CodeType = t.cast("t.Any", target).__code__

        if not code.co_flags & inspect.CO_ITERABLE_COROUTINE:
            return "a generator function"

    return None
