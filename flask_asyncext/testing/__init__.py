"""A conformance suite that proves a view decorator works on ``def`` and
``async def`` views alike, its pytest plugin and the ``flask-asyncext check``
command. The suite class and the plugin need pytest (the ``pytest`` extra);
the checks and the command do not.
"""

from __future__ import annotations

import importlib.util
import typing as t

#: Whether pytest can be imported: without it (the base install) the
#: command line tool still works, and the suite class says what to install.
HAS_PYTEST = importlib.util.find_spec("pytest") is not None

if HAS_PYTEST:
    import pytest

    pytest.register_assert_rewrite(
        "flask_asyncext.testing.suite",
        "flask_asyncext.testing._checks",
        "flask_asyncext.testing._harness",
        "flask_asyncext.testing._policy",
    )

from ._apps import APP_KINDS as APP_KINDS  # noqa: E402
from ._apps import make_app as make_app  # noqa: E402
from ._apps import QUART_VIEW_KINDS as QUART_VIEW_KINDS  # noqa: E402
from ._apps import VIEW_KINDS as VIEW_KINDS  # noqa: E402
from ._checks import Check as Check  # noqa: E402
from ._checks import CHECKS as CHECKS  # noqa: E402
from ._checks import SUITE_LEVEL as SUITE_LEVEL  # noqa: E402
from ._harness import CALLBACK_MODES as CALLBACK_MODES  # noqa: E402
from ._policy import load_expected_failures as load_expected_failures  # noqa: E402
from ._policy import Outcome as Outcome  # noqa: E402

if t.TYPE_CHECKING or HAS_PYTEST:
    from .suite import ConformanceCase as ConformanceCase
    from .suite import DecoratorConformance as DecoratorConformance
else:

    def __getattr__(name: str) -> t.Any:
        if name in ("ConformanceCase", "DecoratorConformance"):
            raise ImportError(
                f"flask_asyncext.testing.{name} needs pytest: install the"
                " 'pytest' extra, pip install 'Flask-AsyncExt[pytest]'"
            )

        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
