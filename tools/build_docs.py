"""Build the docs site into `_docs/` from the notebooks, without Quarto: nbdev's own processing of the notebooks
(`_proc/`, as `nbdev-docs` does it), then Sphinx + myst-nb with the saved outputs (nothing is executed).

    python tools/build_docs.py          # then open _docs/index.html, or: python -m http.server -d _docs

Needs the `docs` extra (`pip install -e ".[dev,docs]"`). Warnings fail the build: a link to a notebook or an API
name that does not exist, a missing cross-reference, a page missing from `nbs/sidebar.yml`.
"""
import os, re, sys, json, time, shutil, tempfile, posixpath
from pathlib import Path

root = Path(__file__).resolve().parent.parent

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

_LINK = re.compile(r'(\]\()([^)\s]+)(\))(\{[^}]*\})?')   # markdown link target, with an optional Pandoc {attrs}

class Adapter:
    "Turns nbdev-processed notebooks (written for Quarto) into notebooks myst-nb renders the same way."
    def __init__(self, proc, pages, doc_url):
        self.proc, self.pages, self.doc_url, self.errors = proc, pages, doc_url.rstrip('/') + '/', []
        self.by_html = {p + '.html': p for p in pages.values()}

    def link(self, target, src_nb, page):
        "A link target rewritten for Sphinx: notebook paths and the public site's API links become local pages."
        here = posixpath.dirname(page)
        url, _, frag = target.partition('#')
        if url.startswith(self.doc_url):                      # nbdev's API links point to the public site
            rel = url[len(self.doc_url):] or 'index.html'
            if rel not in self.by_html: self.errors.append(f"{src_nb}: link to {target}: no such page"); return target
            dest = self.by_html[rel]
        elif url.endswith('.ipynb') and '://' not in url:
            nb = posixpath.normpath(posixpath.join(posixpath.dirname(src_nb), url))
            if nb not in self.pages: self.errors.append(f"{src_nb}: link to {target}: no such notebook"); return target
            dest = self.pages[nb]
        else: return target
        rel = posixpath.relpath(dest + '.ipynb', here or '.')
        return rel + ('#' + frag if frag else '')

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
            for o in c.get('outputs', []):
                for k in ('text/markdown',):
                    if k in o.get('data', {}):
                        v = o['data'][k]; v = v if isinstance(v, str) else ''.join(v)
                        o['data'][k] = self.md(v, src_nb, page)
            run = [f for f in ('slow', 'cuda') if f in flags]
            if run:                                            # not run by the tests or the docs build: say so
                what = 'needs a GPU (and the full dataset)' if 'cuda' in run else 'takes long on a CPU'
                shown = ('the output below is what it printed where it was run' if c.get('outputs') else
                         'it has no saved output: run the notebook to see it')
                cells.append(dict(cell_type='markdown', metadata={}, source=
                    f"```{{note}}\nThe next cell is marked `#| {run[0]}`: it {what}, so the tests and the docs build "
                    f"do not run it; {shown}.\n```"))
            cells.append(c)
        nb['cells'] = cells
        return nb

CONF = '''
project = {project!r}
author = {author!r}
copyright = {copyright!r}
extensions = ['myst_nb']
nb_execution_mode = 'off'                      # the notebooks' saved outputs are the docs
nb_merge_streams = True
myst_enable_extensions = ['dollarmath', 'amsmath', 'colon_fence']
myst_heading_anchors = 4                       # the anchors Quarto gives headings: API links are page.html#name
nitpicky = True
exclude_patterns = ['_build', '**.ipynb_checkpoints']
html_theme = 'sphinx_book_theme'
html_title = {project!r}
html_copy_source = False
html_show_sourcelink = False
html_theme_options = dict(repository_url={repo!r}, use_repository_button=True, home_page_in_toc=True,
                          show_toc_level=2, navigation_with_keys=False)
html_static_path = ['_static']
html_css_files = ['arat.css']
'''

CSS = '''/* show_doc's "source" link floats right of the signature, as on the Quarto site */
p:has(> a.reference.external[href*="/blob/"]:only-child) { float: right; font-size: smaller; margin: 0; }
'''

def proc(n_workers=2):
    "nbdev's processing of every notebook into `_proc/` (what `nbdev-docs` feeds Quarto)."
    from nbdev.config import get_config
    from nbdev.quarto import refresh_quarto_yml
    from nbdev.serve import proc_nbs
    cfg = get_config(); os.chdir(cfg.config_path)
    refresh_quarto_yml()
    return cfg, Path(proc_nbs(cfg.nbs_path, n_workers=n_workers, force=True))

def stage(cfg, proc_dir, dest):
    "Adapted copies of the processed notebooks under their page names in `dest`, an index with the sidebar, conf.py."
    nbs = sorted(str(p.relative_to(proc_dir)) for p in proc_dir.rglob('*.ipynb') if '.ipynb_checkpoints' not in p.parts)
    pages, fms = {}, {}
    for nb in nbs: pages[nb], fms[nb] = _page(Path(nb), proc_dir)
    side = _sidebar(cfg.nbs_path)
    listed = [nb for _, xs in side for nb in xs]
    errs = [f"sidebar.yml lists {nb}, which is not a notebook" for nb in listed if nb not in pages]
    errs += [f"{nb} is not in nbs/sidebar.yml" for nb in nbs if nb not in listed]
    ad = Adapter(proc_dir, pages, cfg.doc_host.rstrip('/') + '/' + cfg.doc_baseurl.strip('/'))
    for nb in nbs:
        out = ad(nb, pages[nb])
        if pages[nb] == 'index':   # the sidebar, as hidden toctrees (one per section) on the home page
            for cap, xs in side:
                docs = [pages[x] for x in xs if x in pages and pages[x] != 'index']
                if not docs: continue
                opts = ':hidden:\n' + (f':caption: {cap}\n' if cap else '')
                out['cells'].append(dict(cell_type='markdown', metadata={}, source=f"```{{toctree}}\n{opts}\n" + '\n'.join(docs) + '\n```'))
        p = dest/(pages[nb] + '.ipynb'); p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(out, indent=1))
    errs += ad.errors
    (dest/'_static').mkdir(exist_ok=True); (dest/'_static'/'arat.css').write_text(CSS)
    (dest/'conf.py').write_text(CONF.format(project=cfg.lib_name, author=cfg.get('author', cfg.lib_name),
                                            copyright=f"{time.gmtime().tm_year}, {cfg.get('author', cfg.lib_name)}",
                                            repo=cfg.get('git_url', '')))
    return len(nbs), errs

def build(out=None, n_workers=2):
    t0 = time.time()
    cfg, proc_dir = proc(n_workers)
    out = Path(out or cfg.doc_path)
    t1 = time.time()
    from sphinx.cmd.build import build_main
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp)/'src'; src.mkdir()
        n, errs = stage(cfg, proc_dir, src)
        if errs: sys.exit('docs: ' + '\n  '.join(['the notebooks have problems:'] + errs))
        if out.exists(): shutil.rmtree(out)
        rc = build_main(['-b', 'html', '-q', '-W', '--keep-going', '-n', '-E', '-j', str(n_workers),
                         '-d', str(Path(tmp)/'doctrees'), str(src), str(out)])
    if rc: sys.exit(f"docs: Sphinx failed (exit {rc}): the warnings above are errors")
    (out/'.nojekyll').touch()
    print(f"docs: {n} pages in {out.relative_to(root) if out.is_relative_to(root) else out}/ "
          f"in {time.time()-t0:.1f} s (nbdev processing {t1-t0:.1f} s, Sphinx {time.time()-t1:.1f} s)")
    return out

if __name__ == '__main__':   # proc_nbs spawns workers, which re-import this file
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--out', help="output folder (default: the nbdev doc_path, _docs/)")
    ap.add_argument('--n-workers', type=int, default=2)
    a = ap.parse_args()
    build(a.out, a.n_workers)
