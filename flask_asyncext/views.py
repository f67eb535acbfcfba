"""Class-based views whose view function keeps the calling convention of the
code it runs: ``async def`` handlers give an ``async def`` view.
"""

from __future__ import annotations

import typing as t

import flask.views
from flask import request

from .bridges import is_async_callable

if t.TYPE_CHECKING:
    import flask.typing as ft


def _make_async_view(
    cls: type[flask.views.View],
    name: str,
    method: str,
    class_args: tuple[t.Any, ...],
    class_kwargs: dict[str, t.Any],
) -> ft.RouteCallable:
    """:meth:`flask.views.View.as_view`, with an ``async def`` view function
    that awaits the instance's ``method``.
    """
    # As in Flask, the class is looked up on the final view function at each
    # request, so that tests can replace its ``view_class``.
    view: t.Any

    if cls.init_every_request:

        async def dispatch(**kwargs: t.Any) -> ft.ResponseReturnValue:
            self = view.view_class(*class_args, **class_kwargs)
            return await getattr(self, method)(**kwargs)  # type: ignore[no-any-return]

    else:
        dispatch_request = getattr(cls(*class_args, **class_kwargs), method)

        async def dispatch(**kwargs: t.Any) -> ft.ResponseReturnValue:
            return await dispatch_request(**kwargs)  # type: ignore[no-any-return]

    view = dispatch

    # The same steps as Flask's as_view, in the same order: the decorators
    # see the final name and module, and the attributes are set last.
    if cls.decorators:
        view.__name__ = name
        view.__module__ = cls.__module__

        for decorator in cls.decorators:
            view = decorator(view)

    view.view_class = cls
    view.__name__ = name
    view.__doc__ = cls.__doc__
    view.__module__ = cls.__module__
    view.methods = cls.methods
    view.provide_automatic_options = cls.provide_automatic_options
    return view  # type: ignore[no-any-return]


class View(flask.views.View):
    """A drop-in :class:`flask.views.View` whose :meth:`as_view` makes an
    ``async def`` view function when :meth:`dispatch_request` is async.

    Flask's ``as_view`` always makes a sync function that runs an async
    ``dispatch_request`` with ``current_app.ensure_sync``. So every decorator
    listed in :attr:`decorators` sees a sync view: a toolkit decorator then
    resolves each awaitable it yields through a bridge of its own, an event
    loop each with Flask's default one. With this class the decorators see
    the ``async def`` view and run in the request's single event loop.

    .. code-block:: python

        from flask_asyncext.views import View

        class Report(View):
            decorators = [login_required, rate_limited]

            async def dispatch_request(self, id):
                return await build_report(id)

        app.add_url_rule("/reports/<int:id>", view_func=Report.as_view("report"))

    A sync ``dispatch_request`` gets exactly Flask's view function. Every
    other behaviour is Flask's: :attr:`methods`,
    :attr:`provide_automatic_options`, :attr:`init_every_request`, and the
    ``view_class``, ``__name__``, ``__doc__`` and ``__module__`` of the view
    function.

    .. versionadded:: 0.1
    """

    @classmethod
    def _async_dispatch(cls) -> str | None:
        """The name of the coroutine method the view function awaits, or
        ``None`` for a sync view function.
        """
        return "dispatch_request" if is_async_callable(cls.dispatch_request) else None

    @classmethod
    def as_view(
        cls, name: str, *class_args: t.Any, **class_kwargs: t.Any
    ) -> ft.RouteCallable:
        """Make the class into a view function to register for a route, an
        ``async def`` one when the class's code is async.

        The arguments are those of :meth:`flask.views.View.as_view`: the
        endpoint ``name``, then arguments for the class's ``__init__``.

        .. code-block:: python

            view = Report.as_view("report")
            inspect.iscoroutinefunction(view)  # True

        .. versionadded:: 0.1
        """
        dispatch = cls._async_dispatch()

        if dispatch is None:
            return super().as_view(name, *class_args, **class_kwargs)

        return _make_async_view(cls, name, dispatch, class_args, class_kwargs)


class MethodView(View, flask.views.MethodView):
    """A drop-in :class:`flask.views.MethodView` whose :meth:`as_view` makes
    an ``async def`` view function when every HTTP method handler is async.

    .. code-block:: python

        from flask_asyncext.views import MethodView

        class ItemAPI(MethodView):
            decorators = [login_required]

            async def get(self, id):
                return await load_item(id)

            async def delete(self, id):
                await remove_item(id)
                return "", 204

        app.add_url_rule("/items/<int:id>", view_func=ItemAPI.as_view("item"))

    The handlers are the methods named after HTTP methods (``get``,
    ``post``, ``head``, ``options``, ``delete``, ``put``, ``trace``,
    ``patch``) that the class has, its own or inherited. When all of them are
    sync, the view function is exactly Flask's. A class that mixes sync and
    async handlers is refused: :meth:`as_view` raises :exc:`TypeError`
    naming the class and its handlers of each kind. A request dispatches as
    in Flask: ``HEAD`` goes to ``get`` if there is no ``head``, and
    :attr:`methods` is inferred from the handlers.

    A subclass that overrides :meth:`dispatch_request` decides by itself: its
    ``dispatch_request`` is what the view function runs, and whether it is
    async is what counts, as for :class:`View`.

    .. versionadded:: 0.1
    """

    @classmethod
    def _async_dispatch(cls) -> str | None:
        if cls.dispatch_request is not flask.views.MethodView.dispatch_request:
            return super()._async_dispatch()

        handlers: dict[bool, list[str]] = {True: [], False: []}

        for key in sorted(flask.views.http_method_funcs):
            handler = getattr(cls, key, None)

            if handler is not None:
                handlers[is_async_callable(handler)].append(key)

        if handlers[True] and handlers[False]:
            raise TypeError(
                f"{cls.__qualname__!r} mixes async handlers"
                f" ({', '.join(handlers[True])}) with sync handlers"
                f" ({', '.join(handlers[False])}). Make them all async or all"
                " sync, so that its view function and the decorators in"
                " 'decorators' can follow one calling convention."
            )

        return "_dispatch_request_async" if handlers[True] else None

    async def _dispatch_request_async(self, **kwargs: t.Any) -> ft.ResponseReturnValue:
        """:meth:`flask.views.MethodView.dispatch_request` for a class whose
        handlers are all async: the handler is awaited in the running loop.
        """
        meth = getattr(self, request.method.lower(), None)

        # If the request method is HEAD and we don't have a handler for it
        # retry with GET.
        if meth is None and request.method == "HEAD":
            meth = getattr(self, "get", None)

        assert meth is not None, f"Unimplemented method {request.method!r}"
        return await meth(**kwargs)  # type: ignore[no-any-return]
