from __future__ import annotations

import inspect
import re
import typing as t

from docutils import nodes
from pallets_sphinx_themes import get_version
from pallets_sphinx_themes import ProjectLink

# Project --------------------------------------------------------------

project = "Flask-AsyncExt"
copyright = "2026 Flask-AsyncExt contributors"
author = "Flask-AsyncExt contributors"
release, version = get_version("Flask-AsyncExt")

# General --------------------------------------------------------------

default_role = "code"
extensions = [
    "sphinx.ext.autodoc",
    "sphinxcontrib.log_cabinet",
    "pallets_sphinx_themes",
]
autodoc_member_order = "bysource"
autodoc_typehints = "description"
# Types for the parameters the docstring describes (not "args (~P)").
autodoc_typehints_description_target = "documented_params"
autodoc_preserve_defaults = True
exclude_patterns = ["_build"]
# "ensure_sync()" rather than "flask_asyncext.ensure_sync()" in the sidebar.
toc_object_entries_show_parents = "hide"

# The docs are built offline, without intersphinx inventories. Nitpicky mode
# still checks every reference to this project's own objects; references to
# the standard library, Flask, Werkzeug and asgiref are left unresolved.
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(?!flask_asyncext\b).*"),
    # Type variables and aliases that autodoc spells in signatures.
    (r"py:.*", r"flask_asyncext\.(bridges|decorators|typing)\.[A-Z]\w*"),
    (r"py:.*", r"flask_asyncext\.(\w+\.)+(F|P|R|T|Ts)"),
]

# HTML -----------------------------------------------------------------

html_theme = "flask"
html_theme_options = {"index_sidebar_logo": False}
# Not on PyPI yet: no "PyPI Releases" link until the first release.
html_context = {
    "project_links": [
        ProjectLink("Flask Documentation", "https://flask.palletsprojects.com/"),
    ]
}
html_sidebars = {
    "index": ["project.html", "localtoc.html", "searchbox.html"],
    "**": ["localtoc.html", "relations.html", "searchbox.html"],
}
singlehtml_sidebars = {"index": ["project.html", "localtoc.html"]}
html_static_path = ["_static"]
html_css_files = ["asyncext.css"]
html_title = f"Flask-AsyncExt Documentation ({version})"
html_show_sourcelink = False


# Autodoc output fixes ---------------------------------------------------


def _drop_inherited_builtin_doc(
    app: t.Any, what: str, name: str, obj: t.Any, options: t.Any, lines: list[str]
) -> None:
    """A constant or method without a docstring of its own gets the one of
    its type or of ``object`` ("Built-in immutable sequence.", "Call self as
    a function."): show nothing instead.
    """
    inherited = [type(obj).__doc__, getattr(object, name.rpartition(".")[2], None)]
    docs = {inspect.cleandoc(d) for d in inherited if isinstance(d, str)}
    docs |= {
        inspect.cleandoc(d.__doc__)
        for d in inherited
        if not isinstance(d, str) and getattr(d, "__doc__", None)
    }

    if "\n".join(lines).strip() in docs:
        lines.clear()


def _clean_signature(
    app: t.Any,
    what: str,
    name: str,
    obj: t.Any,
    options: t.Any,
    signature: str | None,
    return_annotation: str | None,
) -> tuple[str | None, str | None] | None:
    """A protocol has no constructor to show, and defaults written as
    ``_module.name`` read as ``name``.
    """
    if what == "class" and getattr(obj, "_is_protocol", False):
        return "", return_annotation

    if signature is None:
        return None

    return re.sub(r"\b_[a-z]\w*\.", "", signature), return_annotation


def _shorten_annotations(app: t.Any, doctree: nodes.document, docname: str) -> None:
    """Annotations that autodoc cannot evaluate are shown as written
    (``cabc.Callable[...]``); drop the module aliases outside code blocks.
    """
    for text in list(doctree.findall(nodes.Text)):
        if "cabc." not in text or _in_code_block(text):
            continue

        text.parent.replace(text, nodes.Text(text.replace("cabc.", "")))


def _in_code_block(node: nodes.Node) -> bool:
    parent = node.parent

    while parent is not None:
        if isinstance(parent, nodes.literal_block | nodes.literal):
            return True

        parent = parent.parent

    return False


def setup(app: t.Any) -> None:
    app.connect("autodoc-process-docstring", _drop_inherited_builtin_doc)
    app.connect("autodoc-process-signature", _clean_signature)
    app.connect("doctree-resolved", _shorten_annotations)
