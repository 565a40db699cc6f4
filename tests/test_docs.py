"""The docs site's adapter (tools/build_docs.py): nbdev-processed notebooks, written for Quarto, become pages Sphinx +
myst-nb render the same way, and broken links are reported. The full build and the browser check run in tests/check.sh."""
import sys, json
from pathlib import Path
from types import SimpleNamespace
import pytest

root = Path(__file__).resolve().parent.parent
pytest.importorskip('docutils', reason="the docs extra is not installed")
sys.path.insert(0, str(root/'tools'))
import build_docs as bd
from arat_sphinx import pandoc_slug

URL = 'https://arat-dev.github.io/arat'

def nb(*cells): return dict(cells=list(cells), metadata={}, nbformat=4, nbformat_minor=5)
def md(s): return dict(cell_type='markdown', metadata={}, source=s)
def raw(s): return dict(cell_type='raw', metadata={}, source=s)
def code(s, outputs=(), **meta):
    return dict(cell_type='code', metadata=dict(execution={'total': 0.01}, **meta), source=s, outputs=list(outputs), execution_count=1)
def show_doc(name, doc):
    text = (f'---\n\n[source](https://github.com/arat-dev/arat/blob/main/arat/callbacks.py#L1)'
            f'{{target="_blank" style="float:right; font-size:smaller"}}\n\n### {name}\n\n*{doc}*')
    return code(f'#| echo: false\n#| output: asis\nshow_doc({name})',
                [dict(output_type='execute_result', execution_count=1, metadata={}, data={'text/markdown': text, 'text/plain': name})])

SIDEBAR = """website:
  sidebar:
    contents:
      - index.ipynb
      - section: Tutorials
        contents:
          - tutorials/quick.ipynb
      - section: API
        contents:
          - 06_callbacks.ipynb
"""

@pytest.fixture
def site(tmp_path, monkeypatch):
    "A processed-notebook folder as nbdev leaves it (_proc/), with its nbs/sidebar.yml (and no helper sections to move)."
    monkeypatch.setattr(bd, 'HELPER_SECTIONS', {})
    proc, nbs = tmp_path/'_proc', tmp_path/'nbs'
    (proc/'tutorials').mkdir(parents=True); (nbs/'tutorials').mkdir(parents=True)
    (nbs/'sidebar.yml').write_text(SIDEBAR)
    pages = {
        'index.ipynb': nb(raw('---\noutput-file: index.html\ntitle: arat\n---\n'),
                          md('See the [quick start](tutorials/quick.ipynb) and [callbacks](06_callbacks.ipynb).')),
        '06_callbacks.ipynb': nb(raw('---\ndescription: The callbacks.\noutput-file: callbacks.html\ntitle: Callbacks\n---\n'),
                                 show_doc('ARATCallback', f'AR-AT; see [`AutoBalance`]({URL}/callbacks.html#autobalance)'),
                                 show_doc('AutoBalance', 'balances'),
                                 code('#| slow\nlearn.fit(100)')),
        'tutorials/quick.ipynb': nb(raw('---\noutput-file: quick.html\ntitle: Quick start\n---\n'),
                                    md(f'Use [`ARATCallback`]({URL}/callbacks.html#aratcallback) and '
                                       f'[`AutoBalance.history`]({URL}/callbacks.html#autobalance.history), [`_helper`]({URL}/callbacks.html#_helper).\n\n'
                                       '## Run it\n\nBack to [the start](#run-it), [home](../index.ipynb).'))}
    for k, v in pages.items(): (proc/k).write_text(json.dumps(v))
    return SimpleNamespace(nbs_path=nbs, doc_host='https://arat-dev.github.io', doc_baseurl='/arat'), proc, tmp_path/'src'

def staged(dest, page): return json.loads((dest/f'{page}.ipynb').read_text())
def text(cell): return ''.join(cell['source'])

def test_pandoc_slug():
    "The anchors Quarto gives headings, which nbdev's API links use."
    for title, slug in [('ARATCallback', 'aratcallback'), ('ARATCallback.before_fit', 'aratcallback.before_fit'),
                        ('arat_learner', 'arat_learner'), ('Training with the normalization inside', 'training-with-the-normalization-inside'),
                        ('1. Data!', 'data'), ('CIFAR-10, ResNet-18 (γ = 30)', 'cifar-10-resnet-18-γ-30')]:
        assert pandoc_slug(title) == slug, title

def test_stage_pages_titles_and_links(site):
    cfg, proc, dest = site
    dest.mkdir()
    n, errs = bd.stage(cfg, proc, dest)
    assert (n, errs) == (3, [])
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob('*.ipynb')) == ['callbacks.ipynb', 'index.ipynb', 'tutorials/quick.ipynb']
    cb = staged(dest, 'callbacks')
    # front matter -> title and summary; every cell has an id and no float `execution` metadata
    assert text(cb['cells'][0]) == '# Callbacks\n\nThe callbacks.'
    assert all('id' in c and 'execution' not in c['metadata'] for c in cb['cells'])
    # show_doc: the heading becomes a real one, the code is hidden, directives and Pandoc link attributes go
    heads = [text(c) for c in cb['cells'] if c['cell_type'] == 'markdown' and text(c).startswith('###')]
    assert heads == ['### ARATCallback', '### AutoBalance']
    sd = [c for c in cb['cells'] if c['cell_type'] == 'code' and 'show_doc' in text(c)]
    assert all(c['metadata']['tags'] == ['remove-input'] and not text(c).startswith('#|') for c in sd)
    out = sd[0]['outputs'][0]['data']['text/markdown']
    assert '{target=' not in out and '### ARATCallback' not in out
    assert '[`AutoBalance`](callbacks.html#autobalance)' in out           # in an output: a plain HTML link
    # a slow cell is shown with a note saying it was not run
    i = next(i for i, c in enumerate(cb['cells']) if text(c) == 'learn.fit(100)')
    assert '`#| slow`' in text(cb['cells'][i-1]) and 'no saved output' in text(cb['cells'][i-1])
    # markdown: API links to the local page's anchor (Class.attr without docs of its own -> Class), notebook links
    q = text(staged(dest, 'tutorials/quick')['cells'][1])
    assert '[`ARATCallback`](../callbacks.ipynb#aratcallback)' in q and '(../callbacks.ipynb#autobalance)' in q
    assert '[home](../index.ipynb)' in q and '[the start](#run-it)' in q
    assert ', `_helper`.' in q                                              # a private name has no docs: plain code
    home = [text(c) for c in staged(dest, 'index')['cells']]
    assert '[quick start](tutorials/quick.ipynb)' in home[1] and '[callbacks](callbacks.ipynb)' in home[1]
    assert any(':caption: Tutorials' in t and 'tutorials/quick' in t for t in home)     # the sidebar, from sidebar.yml
    assert any(':caption: API' in t and '\ncallbacks' in t for t in home)

@pytest.mark.parametrize('change, error', [
    (lambda p: p.replace('callbacks.html#aratcallback', 'callbacks.html#nosuchname'), 'callbacks#nosuchname: no such heading'),
    (lambda p: p.replace('callbacks.html#aratcallback', 'nosuchpage.html#aratcallback'), 'nosuchpage.html#aratcallback: no such page'),
    (lambda p: p.replace('../index.ipynb', 'missing.ipynb'), 'link to missing.ipynb: no such notebook'),
])
def test_stage_reports_broken_links(site, change, error):
    cfg, proc, dest = site
    dest.mkdir()
    q = proc/'tutorials'/'quick.ipynb'; q.write_text(change(q.read_text()))
    n, errs = bd.stage(cfg, proc, dest)
    assert len(errs) == 1 and error in errs[0] and errs[0].startswith('tutorials/quick.ipynb'), errs

def test_stage_reports_sidebar_and_titles(site):
    cfg, proc, dest = site
    dest.mkdir()
    (proc/'extra.ipynb').write_text(json.dumps(nb(md('no front matter'))))
    (cfg.nbs_path/'sidebar.yml').write_text(SIDEBAR + '          - 99_gone.ipynb\n')
    n, errs = bd.stage(cfg, proc, dest)
    assert sorted(errs) == sorted(['extra.ipynb has no title (a `# Title` first cell, as nbdev wants)',
                                   'sidebar.yml lists 99_gone.ipynb, which is not a notebook',
                                   'extra.ipynb is not in nbs/sidebar.yml'])

def test_output_problems():
    "Saved outputs must not show warnings, machine paths or progress-bar characters (the docs build fails on them)."
    def stream(t, name='stdout'): return dict(output_type='stream', name=name, text=t)
    good = nb(code('x = 1\nprint(x)', [stream('1\nruns/cifar10-arat/log.csv\n')]),
              code('df', [dict(output_type='execute_result', data={'text/plain': 'Warning: AutoAttack was not run'}, metadata={})]))
    assert bd.output_problems('a.ipynb', good) == []
    bad = nb(code('import torch', [stream('/work/main/.venv/lib/python3.11/site-packages/torch/jit/_script.py:1491: '
                                          'FutureWarning: deprecated\n  warnings.warn(\n', 'stderr')]),
             code('#| slow\nlearn.fit(1)', [stream('\u2588\repoch     train_loss\n')]))
    errs = bd.output_problems('b.ipynb', bad)
    assert [e.split(' shows ')[1].split(':')[0] for e in errs] == ['a Python warning', 'a machine path',
                                                                 'progress-bar or terminal control characters']
    assert errs[0].startswith('b.ipynb: the output of the cell `import torch`') and '`learn.fit(1)`' in errs[2]

def test_readme_links_resolve():
    "README.md is the front page on GitHub: every relative link in it names a file of the repository (from its root)."
    import re
    text = (root/'README.md').read_text()
    links = [t.split('#')[0] for t in re.findall(r'\]\(([^)\s]+)\)', text) if not re.match(r'[a-z]+:|#', t)]
    assert len(links) >= 20, links
    assert [t for t in links if not (root/t).is_file()] == []
    sys.path.insert(0, str(root/'tools'))
    import readme
    assert (root/'README.md').read_text() == readme.readme_text(), "README.md is out of step: python tools/readme.py --write"

def test_stage_readme_links_sources_and_index(site):
    "The home page (README.md) links from the repository root; source links go to the site's own source pages; the index."
    cfg, proc, dest = site
    cfg.readme_nb, cfg.git_url = 'index.ipynb', 'https://github.com/arat-dev/arat'
    dest.mkdir()
    i = proc/'index.ipynb'; i.write_text(i.read_text().replace('(tutorials/quick.ipynb)', '(nbs/tutorials/quick.ipynb)').replace('(06_callbacks.ipynb)', '(nbs/06_callbacks.ipynb)'))
    n, errs = bd.stage(cfg, proc, dest)
    assert errs == []
    assert '[quick start](tutorials/quick.ipynb)' in text(staged(dest, 'index')['cells'][1])
    out = [c['outputs'][0]['data']['text/markdown'] for c in staged(dest, 'callbacks')['cells'] if c.get('outputs')]
    assert f'[source]({bd.SOURCE_DIR}/arat/callbacks.py.html#L-1)' in out[0] and 'github.com' not in ''.join(out)
    assert json.loads((dest/'_api.json').read_text()) == {'callbacks': ['ARATCallback', 'AutoBalance']}
    # a README link written from nbs/ does not resolve on GitHub: the build says so
    i.write_text(i.read_text().replace('(nbs/tutorials/quick.ipynb)', '(tutorials/quick.ipynb)'))
    n, errs = bd.stage(cfg, proc, dest)
    assert len(errs) == 1 and "the README's links start at the repository root" in errs[0]

def test_source_pages(tmp_path):
    lib = tmp_path/'arat'; lib.mkdir(); (lib/'callbacks.py').write_text('import os\n\ndef f(): pass\n')
    assert bd.source_pages(lib, tmp_path/'html', 'arat') == 1
    page = (tmp_path/'html'/bd.SOURCE_DIR/'arat'/'callbacks.py.html').read_text()
    assert 'id="L-3"' in page and 'href="../../index.html"' in page

def test_empty_method_entries_dropped(site):
    "show_doc of a method with no docstring and no parameters (a callback's `before_batch`) makes no entry."
    cfg, proc, dest = site
    dest.mkdir()
    cb = json.loads((proc/'06_callbacks.ipynb').read_text())
    empty = show_doc('ARATCallback.before_batch', '')
    empty['outputs'][0]['data']['text/markdown'] = empty['outputs'][0]['data']['text/markdown'].replace('**', '') + '\n\n```python\ndef before_batch():\n```\n'
    cb['cells'].append(empty); (proc/'06_callbacks.ipynb').write_text(json.dumps(cb))
    bd.stage(cfg, proc, dest)
    heads = [text(c) for c in staged(dest, 'callbacks')['cells'] if c['cell_type'] == 'markdown' and text(c).startswith('###')]
    assert heads == ['### ARATCallback', '### AutoBalance']
    assert bd._empty_doc('---\n\n[source](x)\n\n### A.f\n\n```python\ndef f():\n```\n')
    assert not bd._empty_doc('### A.f\n\n```python\ndef f(x):\n```\n\n*Does f.*')

def test_logs_as_tables():
    "fastai's text log becomes a table, also where a value fills its column and runs into the next."
    log = ('before\nepoch     train_loss  valid_loss  clean_acc  time    \n'
           '0         24.096327   9034.293945 0.125000   00:01     \n'
           '1         15.614993   10261.2890620.125000   00:01\nafter\n')
    outs = bd.logs_as_tables([dict(output_type='stream', name='stdout', text=log)])
    assert [o['output_type'] for o in outs] == ['stream', 'display_data', 'stream']
    assert outs[0]['text'] == 'before\n' and outs[2]['text'] == 'after\n'
    html = outs[1]['data']['text/html']
    assert '<td>10261.289062</td><td>0.125000</td>' in html and 'train_<wbr>loss' in html
    bad = 'epoch     train_loss\n0         1.0  2.0\n'          # does not parse: left as text
    assert bd.logs_as_tables([dict(output_type='stream', name='stdout', text=bad)])[0]['text'] == bad

def test_end_announcements():
    "A paragraph ending in ':' whose code is hidden on the page ends in '.'; one before shown code keeps its ':'."
    shown = code('x = 1')
    hidden = dict(code('y = 2'), metadata={'tags': ['remove-input']}, outputs=[])
    cells = [md('Then the check:'), hidden, md('More prose.'), md('The steps:'), shown, md('- a list:'), md('end:')]
    bd.end_announcements(cells)
    assert [text(c) for c in cells if c['cell_type'] == 'markdown'] == ['Then the check.', 'More prose.', 'The steps:', '- a list:', 'end.']

def test_move_helpers():
    cells = [md('# T'), md('## Checking options\n\nHelpers.'), md('### check_number'), md('Intro.\n\n## Metrics'), md('### clean_acc')]
    out, errs = bd.move_helpers(cells, ['Checking options'], 'x.ipynb')
    assert errs == []
    assert [text(c).split('\n')[0] for c in out] == ['# T', '## Metrics', '### clean_acc', '## Helpers',
                                                     '### Checking options', '#### check_number', 'Intro.']
    assert 'not H2 headings' in bd.move_helpers(cells, ['Nope'], 'x.ipynb')[1][0]
