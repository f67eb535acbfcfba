"""Static checks for the class-based views: checked by mypy and pyright,
never run.
"""

from __future__ import annotations

import flask.typing as ft
import flask.views
from typing_extensions import assert_type

from flask_asyncext import async_compatible_decorator
from flask_asyncext.typing import ViewDecorator
from flask_asyncext.views import MethodView
from flask_asyncext.views import View


def noop(view: object, /) -> None:
    return None


guard: ViewDecorator = async_compatible_decorator(noop)


class Report(View):
    # Toolkit decorators fit Flask's annotation of ``decorators``.
    decorators = [guard]  # noqa: RUF012

    # As with Flask's View, an async override of the sync dispatch_request
    # is reported by both checkers.
    async def dispatch_request(self) -> str:  # type: ignore[override]  # pyright: ignore[reportIncompatibleMethodOverride]
        return "report"


class ItemAPI(MethodView):
    init_every_request = False

    async def get(self, id: int) -> dict[str, int]:
        return {"id": id}


assert_type(Report.as_view("report"), ft.RouteCallable)
assert_type(ItemAPI.as_view("item", 1, key="v"), ft.RouteCallable)

# Drop-in: they are Flask's classes.
flask_view: type[flask.views.View] = Report
flask_method_view: type[flask.views.MethodView] = ItemAPI
