"Sphinx helpers for the docs site: Quarto's heading anchors, and math rendered to MathML when the site is built."
import re, json
from docutils import nodes
from sphinx import addnodes
from sphinx.transforms import SphinxTransform

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

class ApiIndex(SphinxTransform):
    """The general index lists the API: an entry for each name show_doc documents (the `_api.json` build_docs.py writes),
    pointing at its heading (so the search's summary of an entry is the entry's own text)."""
    default_priority = 800   # before SphinxDomains (850), which collects the index entries
    def apply(self):
        f = self.env.srcdir/'_api.json'
        names = set(json.loads(f.read_text()).get(self.env.docname, [])) if f.exists() else set()
        for sec in list(self.document.findall(nodes.section)):
            title = sec[0].astext() if sec.children and isinstance(sec[0], nodes.title) else ''
            if title in names and sec['ids']:
                sec.insert(1, addnodes.index(entries=[('single', title, sec['ids'][0], '', None)]))

def setup(app):
    app.add_transform(ApiIndex)
    app.add_html_math_renderer('mathml', (visit_math, None), (visit_displaymath, None))
    return {'parallel_read_safe': True, 'parallel_write_safe': True}
