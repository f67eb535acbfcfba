"""A conformance suite that proves a view decorator works on ``def`` and
``async def`` views alike, its pytest plugin and the ``flask-asyncext check``
command. This package needs pytest (the ``pytest`` extra).
"""

from __future__ import annotations

import pytest

pytest.register_assert_rewrite(
    "flask_asyncext.testing.suite", "flask_asyncext.testing._checks"
)

from ._apps import make_app as make_app  # noqa: E402
from ._apps import VIEW_KINDS as VIEW_KINDS  # noqa: E402
from ._checks import CALLBACK_MODES as CALLBACK_MODES  # noqa: E402
from ._checks import Check as Check  # noqa: E402
from ._checks import CHECKS as CHECKS  # noqa: E402
from ._checks import Outcome as Outcome  # noqa: E402
from .suite import DecoratorConformance as DecoratorConformance  # noqa: E402
