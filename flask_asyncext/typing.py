"""Type aliases and protocols for annotating code that uses the toolkit."""

from __future__ import annotations

import collections.abc as cabc
import typing as t

if t.TYPE_CHECKING:
    from flask import Response

F = t.TypeVar("F", bound=cabc.Callable[..., t.Any])


class DecoratorBody(t.Protocol):
    """A decorator body: ``body(view, /, *args, **kwargs)``, written as a
    generator function, a plain function or a coroutine function.

    The first positional parameter receives the view, so a body that cannot
    take one (``def body(): ...``) is refused by type checkers. The other
    parameters are the view's own, and are not checked.
    """

    def __call__(
        self, view: cabc.Callable[..., t.Any], /, *args: t.Any, **kwargs: t.Any
    ) -> t.Any: ...


#: A :func:`~flask_asyncext.before_view` hook: called with the view's own
#: arguments; sync, async or a generator function.
BeforeViewHook = cabc.Callable[..., t.Any]

#: An :func:`~flask_asyncext.after_view` hook: called with the view's
#: response object, like Flask's ``after_request`` functions; sync, async or a
#: generator function. It returns ``None`` to keep the response, or another
#: response value.
AfterViewHook = cabc.Callable[["Response"], t.Any]


class ViewDecorator(t.Protocol):
    """What :func:`~flask_asyncext.async_compatible_decorator` returns: a
    decorator that gives back a view of the same type as the one it is
    given, so an ``async def`` view stays a coroutine function.
    """

    def __call__(self, view: F, /) -> F: ...
