"""Sphinx configuration of the course site: ``make site`` builds it into ``_build/site/html``.

The pages are the committed notebooks, rendered with their saved outputs (myst-nb, execution
off), in the book theme. Everything the pages load is bundled into the build (MathJax from
sphinx-mathjax-offline), so the site builds and reads offline.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "_ext"))

project = "RQ-VAE semantic IDs, hands on"
author = "the rqvae_lib authors"
copyright = "the rqvae_lib authors, MIT license"

extensions = [
    "myst_nb",  # .md pages and .ipynb notebooks
    "sphinx-mathjax-offline",  # MathJax 3 copied into _static, no CDN
    "course",  # _ext/course.py: notebook links, the outline, solution toggles
]

# The notebooks: linked from ../notebooks at build time (see _ext/course.py), never re-run.
course_notebooks = "../notebooks"
nb_execution_mode = "off"
nb_merge_streams = True  # one block per cell for stdout, as in JupyterLab
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3

exclude_patterns = ["_build", "CONVENTIONS.md", "**/.ipynb_checkpoints"]
suppress_warnings = ["mystnb.unknown_mime_type"]

html_theme = "sphinx_book_theme"
html_title = "RQ-VAE semantic IDs, hands on"
html_static_path = ["_static"]
html_favicon = "_static/favicon.svg"  # else the browser asks for /favicon.ico and logs a 404
html_css_files = ["course.css"]
html_last_updated_fmt = None
html_context = {"default_mode": "light"}  # a valid mode from the first visit (no console error)
html_theme_options = {
    "home_page_in_toc": True,
    "show_toc_level": 2,
    "use_download_button": True,  # download the page's .ipynb
    "use_fullscreen_button": False,
    "use_repository_button": False,
    "navbar_persistent": [],  # search sits in the sidebar; no second one in an empty top bar
}
