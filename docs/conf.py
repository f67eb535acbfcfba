from __future__ import annotations

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
autodoc_preserve_defaults = True
exclude_patterns = ["_build"]

# The docs are built offline, without intersphinx inventories. Nitpicky mode
# still checks every reference to this project's own objects; references to
# the standard library, Flask, Werkzeug and asgiref are left unresolved.
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(?!flask_asyncext\b).*"),
    # Type variables and aliases that autodoc spells in signatures.
    (r"py:.*", r"flask_asyncext\.(bridges|decorators|typing)\.[A-Z]\w*"),
]

# HTML -----------------------------------------------------------------

html_theme = "flask"
html_theme_options = {"index_sidebar_logo": False}
html_context = {
    "project_links": [
        ProjectLink("PyPI Releases", "https://pypi.org/project/Flask-AsyncExt/"),
        ProjectLink("Flask Documentation", "https://flask.palletsprojects.com/"),
    ]
}
html_sidebars = {
    "index": ["project.html", "localtoc.html", "searchbox.html"],
    "**": ["localtoc.html", "relations.html", "searchbox.html"],
}
singlehtml_sidebars = {"index": ["project.html", "localtoc.html"]}
html_title = f"Flask-AsyncExt Documentation ({version})"
html_show_sourcelink = False
