"""Type aliases and protocols for annotating code that uses the toolkit."""

from __future__ import annotations

import collections.abc as cabc
import typing as t

F = t.TypeVar("F", bound=cabc.Callable[..., t.Any])

#: A decorator body: ``body(view, /, *args, **kwargs)``, written as a
#: generator function, a plain function or a coroutine function.
DecoratorBody = cabc.Callable[..., t.Any]

#: A :func:`~flask_asyncext.before_view` or :func:`~flask_asyncext.after_view`
#: hook: sync, async or a generator function.
ViewHook = cabc.Callable[..., t.Any]


class ViewDecorator(t.Protocol):
    """What :func:`~flask_asyncext.async_compatible_decorator` returns: a
    decorator that gives back a view of the same type as the one it is
    given, so an ``async def`` view stays a coroutine function.
    """

    def __call__(self, view: F, /) -> F:
        """Decorate ``view``: a ``def`` view gives a ``def`` wrapper, an
        ``async def`` view an ``async def`` one, with the view's metadata.
        """
        ...
