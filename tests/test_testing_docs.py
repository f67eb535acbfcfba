"""The docs' list of checks is generated from the checks' own docstrings."""

from __future__ import annotations

import pathlib

from flask_asyncext.testing._checks import document_checks

DOCS = pathlib.Path(__file__).parent.parent / "docs"
CHECKS_DOC = DOCS / "testing" / "checks.rst.inc"


def test_checks_list_matches_docstrings() -> None:
    """Run this module as a script to rewrite the file."""
    assert CHECKS_DOC.read_text() == document_checks()


if __name__ == "__main__":
    CHECKS_DOC.write_text(document_checks())
