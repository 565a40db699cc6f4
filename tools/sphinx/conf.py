# Sphinx configuration of the docs site, used by tools/build_docs.py (the source folder is made there, from the
# notebooks as nbdev processes them; this folder holds the configuration and its helpers).
import os, sys
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from nbdev.config import get_config

cfg = get_config(path=Path(__file__).resolve().parents[2])
project = html_title = cfg.lib_name
author = cfg.get('author', project)
copyright = f"{author}"
extensions = ['myst_nb', 'arat_sphinx']

nb_execution_mode = 'off'                      # the notebooks' saved outputs are the docs: nothing runs here
nb_merge_streams = True
myst_enable_extensions = ['dollarmath', 'amsmath', 'colon_fence']
myst_heading_anchors = 6
myst_heading_slug_func = 'arat_sphinx.pandoc_slug'   # the anchors Quarto gives: nbdev's API links are page.html#name
html_math_renderer = 'mathml'                  # math as MathML at build time: no MathJax download in the browser

nitpicky = True
suppress_warnings = ['myst.header']            # show_doc's H3 right under the page title is how nbdev pages look
exclude_patterns = ['_build', '**.ipynb_checkpoints']

html_theme = 'sphinx_book_theme'
html_copy_source = False
html_show_sourcelink = False
# no link to the repository: the source shown is the site's own (build_docs.SOURCE_DIR), the one place source links are set
html_theme_options = dict(use_repository_button=False,
                          use_download_button=False, home_page_in_toc=True, show_toc_level=2)
html_static_path = ['_static']
html_css_files = ['arat.css']
html_context = {'default_mode': 'auto'}        # light or dark as the reader's system says (and no console error)
html_favicon = '_static/favicon.svg'
