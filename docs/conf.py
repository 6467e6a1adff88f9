"""Sphinx configuration: the site is built from the docstrings (autodoc + napoleon for their NumPy style) and
Markdown pages (MyST). Sphinx rather than mkdocs: the docstrings are reStructuredText (``:math:``,
``:func:``, double-backquoted code), which Sphinx renders as written; mkdocstrings would show the roles raw."""

import shutil
from pathlib import Path

import mixclust

ROOT = Path(__file__).resolve().parent.parent

project = "mixclust"
author = "the mixclust developers"
release = mixclust.__version__
extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.mathjax", "myst_parser"]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
myst_enable_extensions = ["dollarmath"]
myst_heading_anchors = 3
exclude_patterns = ["_build"]
html_theme = "furo"
html_title = f"mixclust {release}"
autodoc_member_order = "bysource"
autodoc_default_options = {}
napoleon_numpy_docstring = True
napoleon_google_docstring = False
nitpicky = False
# The studies' reports link to their own cached files, data folders and source files outside the site.
suppress_warnings = ["myst.xref_missing", "myst.header"]


def _copy_studies(app):
    """The committed study reports (markdown and figures) become pages under studies/ (generated, not kept)."""
    target = Path(app.srcdir) / "studies"
    shutil.rmtree(target, ignore_errors=True)
    for readme in sorted((ROOT / "reports").glob("*/README.md")):
        folder = target / readme.parent.name
        folder.mkdir(parents=True)
        for item in readme.parent.iterdir():
            if item.suffix == ".png":
                shutil.copy(item, folder / item.name)
            elif item.suffix == ".md":
                text = item.read_text()
                if not text.lstrip().startswith("#"):  # a results table without a heading of its own
                    text = f"# {readme.parent.name}: {item.stem}\n\n{text}"
                (folder / item.name).write_text(text)


def setup(app):
    app.connect("builder-inited", _copy_studies)
