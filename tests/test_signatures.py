"""A body or a ``before_view`` hook that cannot take the view's arguments is
refused when the decorator is applied, naming the missing parameter; and
nothing that can take them is refused.
"""

from __future__ import annotations

import collections.abc as cabc
import functools
import typing as t

import pytest
from flask import Flask
from flask.views import MethodView

from flask_asyncext import after_view
from flask_asyncext import async_compatible_decorator
from flask_asyncext import before_view

Impl = cabc.Callable[..., t.Any]


def view_with_id(id: int) -> str:
    return str(id)


async def async_view_with_id(id: int) -> str:
    return str(id)


def takes_nothing(view: Impl, /) -> t.Any:
    return (yield view())


def takes_other(view: Impl, /, user_id: int) -> t.Any:
    return (yield view(user_id))


async def async_takes_nothing(view: Impl, /) -> t.Any:
    return await view()


@pytest.mark.parametrize("view", [view_with_id, async_view_with_id])
@pytest.mark.parametrize(
    "body", [takes_nothing, takes_other, async_takes_nothing, lambda view, /: view()]
)
def test_body_without_the_view_parameter_is_refused(body: Impl, view: Impl) -> None:
    decorator = async_compatible_decorator(body)

    with pytest.raises(TypeError, match=r"has no parameter 'id'") as info:
        decorator(view)

    message = str(info.value)
    assert f"The decorator body '{body.__name__}'" in message
    assert "cannot take the arguments of the view" in message
    assert view.__qualname__ in message


def test_before_view_hook_without_the_view_parameter_is_refused() -> None:
    def check(user_id: int) -> None:
        return None

    with pytest.raises(TypeError, match=r"before_view hook 'check'.*no parameter 'id'"):
        before_view(check)(view_with_id)


def test_url_values_come_by_keyword() -> None:
    with pytest.raises(TypeError, match=r"no parameter 'id'"):
        async_compatible_decorator(positional)(view_with_id)


def test_method_self_must_be_taken_positionally() -> None:
    def body(view: Impl, /, id: int) -> t.Any:
        return (yield view(id=id))

    decorator = async_compatible_decorator(body)

    with pytest.raises(TypeError, match=r"no parameter 'self'"):

        class Items(MethodView):
            @decorator
            def get(self, id: int) -> str:
                return str(id)


class Sig:
    """Views and bodies whose signatures the check must accept."""

    def __call__(self, view: Impl, /, id: int) -> t.Any:
        return view(id=id)


def exact(view: Impl, /, id: int) -> t.Any:
    return view(id=id)


def positional(view: Impl, id: int, /) -> t.Any:
    return view(id)


def self_and_id(view: Impl, /, self: t.Any, id: int) -> t.Any:
    return view(self, id=id)


def anything(view: Impl, /, *args: t.Any, **kwargs: t.Any) -> t.Any:
    return view(*args, **kwargs)


def keywords(view: Impl, /, **kwargs: t.Any) -> t.Any:
    return view(**kwargs)


def with_default(view: Impl, /, id: int, page: int = 1) -> t.Any:
    return view(id=id)


def sync_wraps(view: Impl) -> Impl:
    @functools.wraps(view)
    def wrapper(*args: t.Any, **kwargs: t.Any) -> t.Any:
        return view(*args, **kwargs)

    return wrapper


GOOD_PAIRS = {
    "exact": (exact, view_with_id),
    "exact-async": (exact, async_view_with_id),
    "keywords": (keywords, view_with_id),
    "anything": (anything, view_with_id),
    "callable-instance": (Sig(), view_with_id),
    "partial-body": (functools.partial(exact), view_with_id),
    "view-default-not-taken": (takes_nothing, lambda id=1: str(id)),
    "view-var-args": (takes_nothing, lambda *args, **kwargs: "ok"),
    "view-is-partial": (takes_nothing, functools.partial(view_with_id, 1)),
    "view-wrapped-by-hand": (takes_nothing, sync_wraps(view_with_id)),
    "builtin-view": (takes_nothing, print),
    "view-without-signature": (takes_nothing, max),
    "body-default": (with_default, view_with_id),
    "positional-only-body": (positional, lambda id, /: str(id)),
    # max() has no signature to check: the check stays silent.
    "builtin-body": (functools.partial(max), view_with_id),
}


@pytest.mark.parametrize(("body", "view"), GOOD_PAIRS.values(), ids=list(GOOD_PAIRS))
def test_bodies_that_can_take_the_arguments_are_accepted(
    body: Impl, view: Impl
) -> None:
    assert callable(async_compatible_decorator(body)(view))


def test_methods_and_class_views_are_accepted(app: Flask) -> None:
    decorator = async_compatible_decorator(self_and_id)

    class Items(MethodView):
        decorators = (async_compatible_decorator(exact),)

        @decorator
        def get(self, id: int) -> str:
            return f"get {id}"

        @async_compatible_decorator(anything)
        async def post(self, id: int) -> str:
            return f"post {id}"

    app.add_url_rule("/<int:id>", view_func=Items.as_view("items"))
    client = app.test_client()
    assert client.get("/1").text == "get 1"
    assert client.post("/2").text == "post 2"


def test_hooks_that_can_take_the_arguments_are_accepted(app: Flask) -> None:
    async def check(id: int) -> None:
        return None

    @app.get("/<int:id>")
    @before_view(check)
    @before_view(lambda **kwargs: None)
    def show(id: int) -> str:
        return str(id)

    assert app.test_client().get("/3").text == "3"


def test_after_view_hook_must_take_the_response() -> None:
    def no_response() -> None:
        return None

    def two(response: t.Any, other: t.Any) -> None:
        return None

    for hook in (no_response, two):
        with pytest.raises(
            TypeError, match=r"after_view\(\) cannot use .* called with the response"
        ):
            after_view(hook)

    for good in (lambda response: None, lambda *args: None, print):
        assert callable(after_view(good))
