"Sphinx helpers for the docs site: Quarto's heading anchors, and math rendered to MathML when the site is built."
import re
from docutils import nodes

def pandoc_slug(title):
    "The anchor Pandoc (so Quarto, so nbdev's API links) gives a heading: `ARATCallback.before_fit` -> `aratcallback.before_fit`."
    s = re.sub(r'[^\w\s.-]', '', title.strip().lower())
    return re.sub(r'^[\W\d_]+', '', re.sub(r'\s+', '-', s))   # starts at the first letter

def _mathml(latex, display):
    import latex2mathml.converter
    return latex2mathml.converter.convert(latex.strip(), display=display)

def visit_math(self, node):
    self.body.append(_mathml(node.astext(), 'inline')); raise nodes.SkipNode

def visit_displaymath(self, node):
    self.body.append(f'<div class="math-display">{_mathml(node.get("latex") or node.astext(), "block")}</div>'); raise nodes.SkipNode

def setup(app):
    app.add_html_math_renderer('mathml', (visit_math, None), (visit_displaymath, None))
    return {'parallel_read_safe': True, 'parallel_write_safe': True}
