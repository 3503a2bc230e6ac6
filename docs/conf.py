"""Sphinx configuration: the documentation site (MyST Markdown pages, the notebooks rendered with myst-nb and
executed at build time on the CPU, the API reference from the docstrings).  Built by scripts/docs.sh with -W."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # document this checkout's futhark_lab, not an installed copy
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))  # and the kernels

from futhark_lab import __version__  # noqa: E402

# Pages from outside docs/ are copied in at every build (the copies are ignored by git): the notebooks, and the
# results pages that environment.md and these pages link to.  Evidence files (results/**/*.txt, reports) are linked
# as ../results/... and become downloads.
HERE = Path(__file__).resolve().parent
COPIED = {"notebooks": sorted((ROOT / "notebooks").glob("*.ipynb")),
          "results": [ROOT / "results" / "README.md", ROOT / "results" / "compat" / "README.md",
                      ROOT / "results" / "h200-notebook05" / "05-gpu-sum-squares.executed.ipynb",
                      *(ROOT / "results" / d / "README.md" for d in ("h200-peers", "h200-dlpack", "h200-tune",
                                                                      "h200-frontdoor"))]}


def _copy_in() -> None:
    for top, files in COPIED.items():
        for src in files:
            dst = HERE / src.relative_to(ROOT)
            if not dst.exists() or dst.read_bytes() != src.read_bytes():  # unchanged copies keep their mtime
                dst.parent.mkdir(parents=True, exist_ok=True)
                dst.write_bytes(src.read_bytes())
        wanted = {HERE / f.relative_to(ROOT) for f in files}
        for stale in (HERE / top).rglob("*"):
            if stale.is_file() and stale.suffix in (".md", ".ipynb") and stale not in wanted:
                stale.unlink()


_copy_in()

project = "futhark-lab"
author = "futhark-lab contributors"
copyright = "futhark-lab contributors"
release = version = __version__

extensions = ["myst_nb", "sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.viewcode"]
exclude_patterns = ["_build", "**/.ipynb_checkpoints", "results/_scratch", "Thumbs.db", ".DS_Store"]
# every page under docs/ is found by the index's glob toctree
source_suffix = {".md": "myst-nb", ".ipynb": "myst-nb"}

myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

# Notebooks run at build time, on the CPU, each with the checkout's futhark_lab; their sweeps write under
# results/_scratch (ignored).  Notebook 05 needs an NVIDIA GPU: it is shown unexecuted, and beside it the H200 run
# with its stored outputs.  Results are cached per notebook content under _build/.jupyter_cache.
nb_execution_mode = "cache"
nb_execution_timeout = 900
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_execution_excludepatterns = ["*05-gpu-sum-squares*", "*h200-notebook05*"]
nb_merge_streams = True

autodoc_default_options = {"members": True, "member-order": "bysource", "undoc-members": False}
autodoc_typehints = "description"
autodoc_mock_imports: list[str] = []
napoleon_google_docstring = True
napoleon_numpy_docstring = True

html_theme = "pydata_sphinx_theme"
html_title = "futhark-lab"
html_theme_options = {"navigation_with_keys": False, "show_toc_level": 2, "header_links_before_dropdown": 6}


def _raw_html_anchors(app, doctree) -> None:
    """environment.md marks its sections with raw ``<a id="...">`` anchors (they work on GitHub and in doctor's
    messages); make each a label of its page, so Markdown links to ``#that-id`` resolve here too."""
    import re

    from docutils import nodes

    std = app.env.domains.standard_domain if hasattr(app.env.domains, "standard_domain") else app.env.get_domain("std")
    for raw in doctree.findall(nodes.raw):
        if raw.get("format") != "html":
            continue
        for anchor in re.findall(r'<a\s+id="([^"]+)"', raw.astext()):
            std.anonlabels[anchor] = (app.env.docname, anchor)


def setup(app):
    app.connect("doctree-read", _raw_html_anchors)
