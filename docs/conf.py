"""Sphinx configuration: the pages in docs/ (Markdown, through MyST) and an API reference generated
from the docstrings. Built offline: no intersphinx, nothing fetched at build time.

Build: ``python -m sphinx -W --keep-going -b html docs docs/_build/html`` (``pip install -e
".[docs]"`` first). The output and the generated API stubs are git-ignored.
"""

import os
import sys

sys.path.insert(0, os.path.abspath(".."))  # document the checkout, installed or not
sys.path.insert(0, os.path.abspath("."))  # the two extensions beside this file

import npflows  # noqa: E402

project = "npflows"
author = "the npflows authors"
release = version = npflows.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "plain_docstrings",
    "public_names",
]

root_doc = "contents"
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
templates_path = ["_templates"]
exclude_patterns = ["_build", "_templates"]

# A link to a missing page or object is a warning, and CI builds with -W, so it fails the build.
nitpicky = True
# Without intersphinx (the build fetches nothing), names from numpy, scipy and the standard library
# have no target; nor do type aliases and private names, which the reference does not document.
nitpick_ignore_regex = [
    ("py:.*", r"(numpy|np|scipy|collections|pathlib|os|argparse|typing)(\..+)?"),
    ("py:.*", r"(ArrayLike|RNGLike|Tree|Pullback|LogDensity)"),
    ("py:.*", r"(.+\.)?_[^.]+"),
]
myst_heading_anchors = 3

autosummary_generate = True
autodoc_member_order = "bysource"
autodoc_typehints = "description"
napoleon_google_docstring = True
napoleon_numpy_docstring = False

html_theme = "alabaster"
html_static_path: list[str] = []
