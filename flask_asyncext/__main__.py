"""``python -m flask_asyncext check TARGET``: see :mod:`flask_asyncext.testing.cli`."""

from __future__ import annotations

from .testing.cli import main

if __name__ == "__main__":
    raise SystemExit(main(prog="python -m flask_asyncext"))
