"""Build the docs site into `_docs/` from the notebooks, without Quarto: nbdev's own processing of the notebooks
(`_proc/`, as `nbdev-docs` does it), then Sphinx + myst-nb with the saved outputs (nothing is executed).

    python tools/build_docs.py          # then open _docs/index.html, or: python -m http.server -d _docs
    python tools/build_docs.py --force  # reprocess every notebook (CI), not only those changed since the last build

Needs the `docs` extra (`pip install -e ".[docs]"`; `dev` includes it). The build fails on: a link to a notebook, page or
API name that does not exist, a missing cross-reference or any other Sphinx warning, a notebook missing from
`nbs/sidebar.yml` or without a title, and a saved output that shows a Python warning, a machine path or progress-bar
control characters. `tests/docs_browser.py` then checks the site in headless Chromium.
"""
import os, re, sys, json, time, shutil, tempfile, posixpath
from pathlib import Path

root = Path(__file__).resolve().parent.parent
conf_dir = root/'tools'/'sphinx'   # conf.py, the Sphinx helpers, the CSS
sys.path.insert(0, str(conf_dir))
from arat_sphinx import pandoc_slug

# Where show_doc's "source" links go, in one place: the module's own source, rendered on the site by `source_pages`
# (nbdev links it to `git_url`/blob/`branch`/arat/x.py#Ln, a repository the reader may not reach); `None`: no links.
SOURCE_DIR = '_src'

# The sections of an API page that hold its helpers, moved after the public classes and functions (under "Helpers"),
# by their H2 heading (a heading not found fails the build). The notebooks keep their literate order.
HELPER_SECTIONS = {
    '00_data.ipynb': ['Reading a folder', 'Checking the images'],
    '02_dualbn.ipynb': ['Finding the BatchNorms'],
    '03_attacks.ipynb': ['Plain tensors'],
    '04_features.ipynb': ['Finding modules'],
    '08_learner.ipynb': ['The step schedule'],
    '09_evaluate.ipynb': ['Getting the evaluation tensors'],
    '10_runs.ipynb': ['Random states', 'Saving without a window for corruption'],
    '12_train.ipynb': ['The messages of a run'],
    '13_cli.ipynb': ['Methods, architectures, datasets', 'Checking the arguments', 'The configuration of a run'],
}

def _fm(src):
    "The YAML front matter of an nbdev-processed notebook's raw cell, as a dict (None if it has none)."
    import yaml
    m = re.match(r'\s*---\s*\n(.*?)\n---', src, re.S)
    return yaml.safe_load(m.group(1)) or {} if m else None

def _page(nb_path, proc):
    "The page name of a processed notebook: its `output-file` (what nbdev and Quarto name it) without `.html`."
    nb = json.loads((proc/nb_path).read_text())
    fm = next((f for c in nb['cells'] if c['cell_type'] == 'raw' and (f := _fm(''.join(c['source']))) is not None), {})
    out = fm.get('output-file')
    return str(nb_path.parent/Path(out).stem) if out else str(nb_path.with_suffix('')), fm

def _sidebar(nbs_path):
    "The sidebar's sections: [(caption or None, [notebook paths])] from sidebar.yml (Quarto's format)."
    import yaml
    items = yaml.safe_load((nbs_path/'sidebar.yml').read_text())['website']['sidebar']['contents']
    secs, top = [], []
    def flat(xs):
        for x in xs:
            if isinstance(x, str): yield x
            elif isinstance(x, dict) and 'href' in x: yield x['href']
            elif isinstance(x, dict): yield from flat(x.get('contents', []))
    for it in items:
        if isinstance(it, dict) and 'section' in it: secs.append((it['section'], list(flat(it.get('contents', [])))))
        else: top.extend(flat([it]))
    return [(None, top)] + secs

_DIRT = {'a Python warning': re.compile(r'\w+Warning: |warnings\.warn\('),
         'a machine path': re.compile(r'(?<![\w.~])/(?:work|root|home|tmp|usr|opt|var)/'),
         'progress-bar or terminal control characters': re.compile(r'\r(?!\n)|\x1b\[|█')}

def output_problems(nb_name, nb):
    "What the saved outputs of a processed notebook must not show: warnings, machine paths, control characters."
    errs = []
    for c in nb['cells']:
        texts = [''.join(o['text']) for o in c.get('outputs', []) if 'text' in o]
        texts += [''.join(v) for o in c.get('outputs', []) for k, v in o.get('data', {}).items() if k.startswith('text/')]
        head = next((l for l in ''.join(c['source']).splitlines() if l.strip() and not l.startswith('#|')), '')[:50]
        for what, pat in _DIRT.items():
            m = next((m for t in texts if (m := pat.search(t))), None)
            if m: errs.append(f"{nb_name}: the output of the cell `{head}` shows {what}: "
                              f"{m.string[max(0, m.start()-30):m.end()+30]!r} (re-run it with tools/run_nb.py)")
    return errs

_REF = re.compile(r'\[([^\]]*)\]\(@@ref:([^|]*)\|([^|]*)\|([^@]*)@@\)')   # a link to another page, resolved once all anchors are known
_LINK = re.compile(r'(\]\()([^)\s]+)(\))(\{[^}]*\})?')   # markdown link target, with an optional Pandoc {attrs}

_NUM = re.compile(r'-?(?:\d+\.\d{6}|nan|inf)|\d\d:\d\d(?::\d\d)?|\d+|\S+')   # fastprogress prints floats with 6 decimals

def log_table(lines):
    "fastai's text training log (a header `epoch train_loss ...`, a row per epoch) as an HTML table; None if it does not parse."
    head = lines[0].split()
    rows = [_NUM.findall(l) for l in lines[1:]]   # a value as wide as its column runs into the next: `10261.2890620.125000`
    if not rows or any(len(r) != len(head) for r in rows): return None
    th = ''.join(f'<th>{h.replace("_", "_<wbr>")}</th>' for h in head)   # a narrow column breaks its name after `_`
    tr = ''.join('<tr>' + ''.join(f'<td>{v}</td>' for v in r) + '</tr>' for r in rows)
    return f'<table class="dataframe arat-log"><thead><tr>{th}</tr></thead><tbody>{tr}</tbody></table>'

def split_logs(text):
    "A stream's text as [('text', str) | ('html', table)]: each fastai training log in it becomes a table."
    out, lines, i = [], text.split('\n'), 0
    while i < len(lines):
        if re.match(r'epoch\s+\w', lines[i]) and i + 1 < len(lines) and re.match(r'\d+\s', lines[i+1]):
            j = i + 1
            while j < len(lines) and re.match(r'\d+\s', lines[j]): j += 1
            t = log_table([l.rstrip() for l in lines[i:j]])
            if t: out.append(('html', t)); i = j; continue
        if out and out[-1][0] == 'text': out[-1] = ('text', out[-1][1] + '\n' + lines[i])
        else: out.append(('text', lines[i]))
        i += 1
    return [(k, v) for k, v in out if k == 'html' or v.strip()]

def logs_as_tables(outputs):
    "Outputs with every training log printed in a stream turned into an HTML table."
    res = []
    for o in outputs:
        text = ''.join(o['text']) if o.get('output_type') == 'stream' else None
        if text is None or 'epoch' not in text: res.append(o); continue
        for k, v in split_logs(text):
            if k == 'html': res.append(dict(output_type='display_data', metadata={}, data={'text/html': v, 'text/plain': v}))
            else: res.append(dict(o, text=v.rstrip('\n') + '\n'))
    return res

def _hidden(c):
    "A cell that shows nothing on the page (its input removed, no output to show)."
    tags = c['metadata'].get('tags', [])
    return c['cell_type'] == 'code' and 'remove-input' in tags and ('remove-output' in tags or not c.get('outputs'))

def end_announcements(cells):
    """A paragraph that ends in ':' announces the code under it; where that code is hidden on the page (`#| hide`, `echo:
    false`) and prose, a heading or nothing follows, the page says it as a statement ('.') and the notebook keeps its ':'."""
    shown = [c for c in cells if not _hidden(c) and not c['metadata'].get('arat_note')]   # a note stands beside its cell
    for c, nxt in zip(shown, shown[1:] + [None]):
        if c['cell_type'] != 'markdown' or (nxt is not None and nxt['cell_type'] != 'markdown'): continue
        src = ''.join(c['source']).rstrip(); last = src.rsplit('\n\n', 1)[-1].lstrip()
        if src.endswith(':') and not src.endswith('::') and not re.match(r'([-*+>|#]|\d+\.|```|\$\$|:::)', last):
            c['source'] = src[:-1] + '.'

def _empty_doc(md):
    "show_doc's output with nothing but the source link and the signature: no docstring, no parameter table."
    rest = re.sub(r'```.*?```', '', md, flags=re.S)
    rest = re.sub(r'\[source\]\([^)]*\)(\{[^}]*\})?', '', rest)
    return not re.sub(r'(?m)^#{2,6} .*$|^-{3,}\s*$', '', rest).strip()

def move_helpers(cells, sections, src_nb):
    "The H2 sections titled in `sections` moved to the end of the page, one level down, under a `## Helpers` heading."
    split = []   # a markdown cell with an H2 inside becomes two, so that every section starts a cell
    for c in cells:
        parts = re.split(r'\n+(?=## )', ''.join(c['source'])) if c['cell_type'] == 'markdown' and '```' not in ''.join(c['source']) else [c]
        split += [dict(c, source=t) if i == 0 else dict(cell_type='markdown', metadata={}, source=t) for i, t in enumerate(parts)] if c['cell_type'] == 'markdown' and len(parts) > 1 else [c]
    cells = split
    starts = [i for i, c in enumerate(cells) if c['cell_type'] == 'markdown' and re.match(r'## ', ''.join(c['source']))]
    title = lambda i: ''.join(cells[i]['source']).split('\n', 1)[0][3:].strip()
    found = {title(i): i for i in starts}
    missing = [t for t in sections if t not in found]
    if missing: return cells, [f"{src_nb}: build_docs.HELPER_SECTIONS names {missing}, not H2 headings at the start of a cell there"]
    spans = {t: (found[t], next((j for j in starts if j > found[t]), len(cells))) for t in sections}
    moved = set(i for a, b in spans.values() for i in range(a, b))
    tail = [dict(cell_type='markdown', metadata={}, source="## Helpers\n\nThe pieces the classes and functions above are built from.")]
    for t in sections:
        a, b = spans[t]
        for c in cells[a:b]:
            if c['cell_type'] == 'markdown': c['source'] = re.sub(r'(?m)^(#{2,5}) ', r'#\1 ', ''.join(c['source']))
            tail.append(c)
    return [c for i, c in enumerate(cells) if i not in moved] + tail, []

def source_pages(lib, dest, title):
    "Each module of the library as a page of its own (`SOURCE_DIR`/arat/x.py.html), lines anchored `#L-n`, for the source links."
    from pygments import highlight
    from pygments.lexers import PythonLexer
    from pygments.formatters import HtmlFormatter
    fmt = HtmlFormatter(linenos='inline', lineanchors='L', anchorlinenos=True, cssclass='source')
    css = fmt.get_style_defs('.source') + ('\nbody{font-family:system-ui,sans-serif;margin:1em 2em} pre{white-space:pre-wrap;'
           'overflow-wrap:anywhere;font-size:13px} .source .linenos{color:#888;user-select:none} :target{background:#fff3b0}')
    n = 0
    for f in sorted(lib.rglob('*.py')):
        rel = f.relative_to(lib.parent).as_posix()
        out = dest/SOURCE_DIR/(rel + '.html'); out.parent.mkdir(parents=True, exist_ok=True)
        home = posixpath.relpath('index.html', posixpath.dirname(f'{SOURCE_DIR}/{rel}'))
        out.write_text(f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{rel} · {title}</title>'
                       f'<link rel="icon" href="{posixpath.relpath("_static/favicon.svg", posixpath.dirname(f"{SOURCE_DIR}/{rel}"))}">'
                       f'<style>{css}</style></head><body><p><a href="{home}">{title}</a> / <code>{rel}</code> '
                       f'(generated from the notebooks by nbdev-export)</p>{highlight(f.read_text(), PythonLexer(), fmt)}</body></html>')
        n += 1
    return n

class Adapter:
    "Turns nbdev-processed notebooks (written for Quarto) into notebooks myst-nb renders the same way."
    def __init__(self, proc, pages, doc_url, git_url='', branch='main', readme_nb=None, nbs_dir='nbs'):
        self.proc, self.pages, self.doc_url, self.errors = proc, pages, doc_url.rstrip('/') + '/', []
        self.by_html = {p + '.html': p for p in pages.values()}
        self.readme_nb, self.nbs_dir = readme_nb, nbs_dir.strip('/')
        self.api = {}   # page -> the names documented there (show_doc), for the general index (arat_sphinx.ApiIndex)
        self.src_url = re.compile(re.escape(git_url.rstrip('/')) + r'/blob/[^/]+/([\w/]+\.py)#L(\d+)') if git_url else None

    def source(self, md, page):
        "show_doc's source link to the library's own source page (`SOURCE_DIR`), or no link (SOURCE_DIR None)."
        if not self.src_url: return md
        if SOURCE_DIR is None: return re.sub(r'\[source\]\([^)]*\)(\{[^}]*\})?', '', md)
        to = lambda m: posixpath.relpath(f"{SOURCE_DIR}/{m.group(1)}.html", posixpath.dirname(page) or '.') + f"#L-{m.group(2)}"
        return self.src_url.sub(to, md)

    def link(self, target, src_nb, page):
        "Links to notebooks, and nbdev's API links to the public site, become references to local pages."
        url, _, frag = target.partition('#')
        if url.startswith(self.doc_url):                      # nbdev links `name` to doc_host/page.html#name
            rel = url[len(self.doc_url):] or 'index.html'
            if rel not in self.by_html: self.errors.append(f"{src_nb}: link to {target}: no such page"); return target
            dest = self.by_html[rel]
        elif url.endswith('.ipynb') and '://' not in url:
            if src_nb == self.readme_nb:   # the home page is also README.md: its links are relative to the repository root
                if not url.startswith(self.nbs_dir + '/'):
                    self.errors.append(f"{src_nb}: link to {target}: the README's links start at the repository root ({self.nbs_dir}/...)"); return target
                url = url[len(self.nbs_dir) + 1:]
            nb = posixpath.normpath(posixpath.join(posixpath.dirname(src_nb), url))
            if nb not in self.pages: self.errors.append(f"{src_nb}: link to {target}: no such notebook"); return target
            dest = self.pages[nb]
        else: return target
        return f"@@ref:{dest}|{frag}|{posixpath.dirname(page)}@@"

    def resolve(self, nb, src_nb, anchors):
        """Write the references: `page.ipynb#anchor` in markdown cells (Sphinx resolves and checks them), `page.html#anchor`
        in outputs (checked here). An API link to `Class.attr` that has no docs of its own goes to `Class`; nbdev's link
        to a private name (`_helper`, which has no docs) becomes plain code; any other missing anchor is an error."""
        def sub(m, ext):
            text, dest, frag, here = m.groups(); a = frag
            while a and a not in anchors[dest] and '.' in a: a = a.rsplit('.', 1)[0]
            if frag and a not in anchors[dest]:
                if frag.rsplit('.', 1)[-1].startswith('_') and text.strip('`').lower() == frag: return text
                self.errors.append(f"{src_nb}: link to {dest}#{frag}: no such heading or documented name there"); a = frag
            return f"[{text}]({posixpath.relpath(dest + ext, here or '.')}{'#' + a if a else ''})"
        def fix(t, ext):
            t = _REF.sub(lambda m: sub(m, ext), t)
            if '@@ref:' in t: self.errors.append(f"{src_nb}: a link the docs build cannot rewrite: {t[t.index('@@ref:')-40:][:120]!r}")
            return t
        for c in nb['cells']:
            if c['cell_type'] == 'markdown': c['source'] = fix(''.join(c['source']), '.ipynb')
            for o in c.get('outputs', []):
                if 'text/markdown' in o.get('data', {}): o['data']['text/markdown'] = fix(o['data']['text/markdown'], '.html')

    def md(self, text, src_nb, page):
        "Markdown with Pandoc link attributes dropped and links rewritten."
        return _LINK.sub(lambda m: m.group(1) + self.link(m.group(2), src_nb, page) + m.group(3), text)

    def __call__(self, src_nb, page):
        nb = json.loads((self.proc/src_nb).read_text())
        cells = []
        for c in nb['cells']:
            src = ''.join(c['source'])
            c['metadata'].pop('execution', None)               # float timings that myst-nb refuses
            if c['cell_type'] == 'raw':
                fm = _fm(src)
                if fm is None: cells.append(c); continue       # front matter: becomes the page title and summary
                head = f"# {fm.get('title', Path(page).name)}"
                if fm.get('description'): head += f"\n\n{fm['description']}"
                cells.append(dict(cell_type='markdown', metadata={}, source=head)); continue
            if c['cell_type'] == 'markdown':
                c['source'] = self.md(src, src_nb, page); cells.append(c); continue
            flags = dict(re.findall(r'^#\|\s*([\w-]+)\s*:?\s*(.*?)\s*$', src, re.M))
            c['source'] = re.sub(r'^(#\|.*\n?)+', '', src)     # Quarto hides the directives
            tags = c['metadata'].setdefault('tags', [])
            if flags.get('echo') == 'false': tags.append('remove-input')
            if flags.get('output') == 'false': tags.append('remove-output')
            c['outputs'] = logs_as_tables(c.get('outputs', []))
            skip = False
            for o in c['outputs']:
                if 'text/markdown' not in o.get('data', {}): continue
                v = o['data']['text/markdown']; v = self.source(self.md(v if isinstance(v, str) else ''.join(v), src_nb, page), page)
                heads = re.findall(r'^(#{2,6} .+)$', v, re.M)
                if len(heads) == 1:   # show_doc's heading becomes a real one: in the page contents, an anchor for links
                    name = heads[0].lstrip('#').strip()
                    if '.' in name and _empty_doc(v): skip = True; break   # a method with no docs of its own: no entry
                    cells.append(dict(cell_type='markdown', metadata={}, source=heads[0])); self.api.setdefault(page, []).append(name)
                    v = re.sub(r'^---\s*\n', '', v.replace(heads[0], '', 1))
                o['data']['text/markdown'] = v
            if skip: continue
            run = [f for f in ('slow', 'cuda') if f in flags]
            if run:                                            # not run by the tests or the docs build: say so
                what = 'needs a GPU (and the full dataset)' if 'cuda' in run else 'takes long on a CPU'
                shown = ('the output below is what it printed where it was run' if c.get('outputs') else
                         'it has no saved output: run the notebook to see it')
                cells.append(dict(cell_type='markdown', metadata={'arat_note': True}, source=
                    f"```{{note}}\nThe next cell is marked `#| {run[0]}`: it {what}, so the tests and the docs build "
                    f"do not run it; {shown}.\n```"))
            cells.append(c)
        if src_nb in HELPER_SECTIONS:
            cells, errs = move_helpers(cells, HELPER_SECTIONS[src_nb], src_nb); self.errors += errs
        end_announcements(cells)
        for i, c in enumerate(cells): c.setdefault('id', f'docs-{i}')
        nb['cells'] = cells
        return nb

def proc(n_workers=2, force=False):
    "nbdev's processing of every notebook into `_proc/` (what `nbdev-docs` feeds Quarto)."
    from nbdev.config import get_config
    from nbdev.quarto import refresh_quarto_yml
    from nbdev.serve import proc_nbs
    cfg = get_config(path=root); os.chdir(cfg.config_path)
    refresh_quarto_yml()
    try: cache = Path(proc_nbs(cfg.nbs_path, n_workers=n_workers, force=force))
    except Exception as e:   # nbdev runs a notebook's show_doc, export and import cells: one of them failed
        sys.exit(f"docs: nbdev's processing of the notebooks failed:\n{e}\n(nbdev runs only the show_doc and export cells and "
                 f"every cell that imports something: a cell that imports must not use names made by other cells; "
                 f"move its imports to the notebook's imports cell)")
    nbs = sorted(p.relative_to(cfg.nbs_path) for p in cfg.nbs_path.rglob('*.ipynb') if '.ipynb_checkpoints' not in p.parts)
    missing = [str(p) for p in nbs if not (cache/p).exists()]
    if missing: sys.exit(f"docs: nbdev-proc-nbs did not process {missing}")
    return cfg, cache

def stage(cfg, proc_dir, dest):
    "Adapted copies of the processed notebooks in `dest`, under their page names, the home page with the sidebar; the problems found."
    nbs = sorted(str(p.relative_to(proc_dir)) for p in proc_dir.rglob('*.ipynb') if '.ipynb_checkpoints' not in p.parts)
    pages, fms = {}, {}
    for nb in nbs: pages[nb], fms[nb] = _page(Path(nb), proc_dir)
    errs = [f"{nb} has no title (a `# Title` first cell, as nbdev wants)" for nb in nbs if not fms[nb].get('title')]
    for nb in nbs: errs += output_problems(nb, json.loads((proc_dir/nb).read_text()))
    side = _sidebar(cfg.nbs_path)
    listed = [nb for _, xs in side for nb in xs]
    errs += [f"sidebar.yml lists {nb}, which is not a notebook" for nb in listed if nb not in pages]
    errs += [f"{nb} is not in nbs/sidebar.yml" for nb in nbs if nb not in listed]
    opt = lambda k, d=None: getattr(cfg, 'get', lambda k, d: getattr(cfg, k, d))(k, d)   # nbdev's config, or any namespace
    ad = Adapter(proc_dir, pages, cfg.doc_host.rstrip('/') + '/' + cfg.doc_baseurl.strip('/'), opt('git_url', ''),
                 opt('branch', 'main'), opt('readme_nb'), Path(cfg.nbs_path).name)
    outs = {nb: ad(nb, pages[nb]) for nb in nbs}
    anchors = {pages[nb]: {pandoc_slug(h) for c in out['cells'] if c['cell_type'] == 'markdown'
                           for h in re.findall(r'^#{1,6} +(.+?)\s*$', ''.join(c['source']), re.M)} for nb, out in outs.items()}
    for nb, out in outs.items():
        ad.resolve(out, nb, anchors)
        if pages[nb] == 'index':   # the sidebar, as hidden toctrees (one per section) on the home page
            for cap, xs in side:
                docs = [pages[x] for x in xs if x in pages and pages[x] != 'index']
                if not docs: continue
                opts = ':hidden:\n' + (f':caption: {cap}\n' if cap else '')
                out['cells'].append(dict(cell_type='markdown', id=f'toc-{len(out["cells"])}', metadata={}, source=f"```{{toctree}}\n{opts}\n" + '\n'.join(docs) + '\n```'))
        p = dest/(pages[nb] + '.ipynb'); p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(out, indent=1))
    (dest/'_api.json').write_text(json.dumps(ad.api))
    errs += ad.errors
    return len(nbs), errs

def build(out=None, n_workers=2, force=False):
    t0 = time.time()
    out = Path(out).resolve() if out else None   # relative to where the command runs (proc changes to the repository)
    cfg, proc_dir = proc(n_workers, force)
    out = out or Path(cfg.doc_path)
    t1 = time.time()
    from sphinx.cmd.build import build_main
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp)/'src'; src.mkdir()
        n, errs = stage(cfg, proc_dir, src)
        if errs: sys.exit('docs: ' + '\n  '.join(['the notebooks have problems:'] + errs))
        html = Path(tmp)/'html'   # myst-nb writes beside the output folder (jupyter_execute/): keep all of it in tmp
        rc = build_main(['-b', 'html', '-q', '-W', '--keep-going', '-n', '-E', '-j', str(n_workers), '-c', str(conf_dir),
                         '-d', str(Path(tmp)/'doctrees'), str(src), str(html)])
        if rc: sys.exit(f"docs: Sphinx failed (exit {rc}): the warnings above are errors")
        (html/'.nojekyll').touch()
        if SOURCE_DIR: source_pages(Path(cfg.lib_path), html, cfg.lib_name)
        if out.exists(): shutil.rmtree(out)
        shutil.copytree(html, out)
    print(f"docs: {n} pages in {out.relative_to(root) if out.is_relative_to(root) else out}/ "
          f"in {time.time()-t0:.1f} s (nbdev processing {t1-t0:.1f} s, Sphinx {time.time()-t1:.1f} s)")
    return out

if __name__ == '__main__':   # proc_nbs spawns workers, which re-import this file
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--out', help="output folder (default: the nbdev doc_path, _docs/)")
    ap.add_argument('--n-workers', type=int, default=2)
    ap.add_argument('--force', action='store_true', help="reprocess every notebook, not only those changed since the last build")
    a = ap.parse_args()
    build(a.out, a.n_workers, a.force)
