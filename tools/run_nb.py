"""Execute notebooks and save their outputs as documentation: `#| slow`/`#| cuda` cells keep the outputs they had
(they are run where the notebook says so), and saved outputs are cleaned of warnings, progress-bar control
characters and machine paths.

    python tools/run_nb.py nbs/03_attacks.ipynb [more notebooks]   # each notebook in its own process
"""
import os, re, sys, json, time
from pathlib import Path
os.environ.setdefault('OMP_NUM_THREADS', '2'); os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
os.environ.setdefault('MPLBACKEND', 'Agg'); os.environ.setdefault('PYTHONWARNINGS', 'ignore::DeprecationWarning')
from fastcore.nbio import read_nb, write_nb
from execnb.shell import CaptureShell

root = Path(__file__).resolve().parent.parent
SKIP = ('slow', 'cuda')

def _flags(src):
    "The `#| flag` directives of a cell's source."
    return {m.group(1) for m in re.finditer(r'^#\|\s*([\w-]+)', src, re.M)}

def _skip(cell):
    if cell.cell_type != 'code': return True
    src = cell.source
    if 'nbdev_export(' in src: return True
    if re.search(r'^#\|\s*eval:\s*false', src, re.M): return True
    return bool(_flags(src) & set(SKIP))

_PATHS = None
def _paths():
    "Machine paths to hide in outputs, longest first."
    global _PATHS
    if _PATHS is None:
        import tempfile, sys as _s
        ps = {str(root), str(Path.home()), tempfile.gettempdir(), _s.prefix, str(Path(_s.prefix).resolve())}
        _PATHS = sorted((p for p in ps if p and p != '/'), key=len, reverse=True)
    return _PATHS

def clean_text(t):
    "Carriage-return overwrites resolved, progress-bar glyph lines dropped, machine paths replaced."
    lines = []
    for ln in t.split('\n'):
        ln = ln.split('\r')[-1] if '\r' in ln.rstrip('\r') else ln.rstrip('\r')
        if ln.strip() in ('█',) or re.fullmatch(r'\s*[█\s]*\|?[ -]*\d*\.?\d*%?.*\[\d+:\d+<\d+:\d+.*\]\s*', ln): continue
        if re.match(r'\s*(Epoch \d+/\d+ : )?\|[-█ ]*\|\s*\d+(\.\d+)?%', ln): continue   # a (cancelled) progress bar
        lines.append(ln)
    t = '\n'.join(lines)
    t = re.sub(r'/tmp/tmp[\w]+', '<tmp>', t)
    for p in _paths(): t = t.replace(p, '<path>' if p != str(root) else '.')
    return t

def _is_warning(o):
    t = ''.join(o.get('text', '')) if isinstance(o.get('text'), list) else o.get('text', '')
    return o.get('name') == 'stderr' and re.search(r'Warning|warn\(', t)

def clean_outputs(cell):
    outs = []
    for o in cell.get('outputs', []):
        if o.get('output_type') == 'stream':
            if _is_warning(o): continue
            txt = o['text'] if isinstance(o['text'], str) else ''.join(o['text'])
            txt = clean_text(txt)
            if not txt.strip(): continue
            o['text'] = txt
        elif 'data' in o:
            for k in ('text/plain', 'text/html', 'text/markdown'):
                if k in o['data']:
                    v = o['data'][k]; v = v if isinstance(v, str) else ''.join(v)
                    if k == 'text/html' and re.search(r'<progress', v):
                        v = re.sub(r'<div>\s*<progress.*?</div>', '', v, flags=re.S)
                    o['data'][k] = clean_text(v)
        outs.append(o)
    cell['outputs'] = outs

def run(fn):
    fn = Path(fn).resolve()
    nb = read_nb(fn)
    old = {i: c.get('outputs', []) for i, c in enumerate(nb.cells) if c.cell_type == 'code'}
    t0 = time.time()
    cwd = os.getcwd(); os.chdir(fn.parent)
    try:
        sh = CaptureShell(fn)
        sh.run_cell('import warnings; warnings.filterwarnings("ignore", category=FutureWarning); '
                    'warnings.filterwarnings("ignore", category=DeprecationWarning)')
        sh.run_all(nb, exc_stop=True, preproc=_skip)
    finally: os.chdir(cwd)
    for i, c in enumerate(nb.cells):
        if c.cell_type != 'code': continue
        if _skip(c): c['outputs'] = old.get(i, [])
        clean_outputs(c)
    write_nb(nb, fn)
    print(f"{fn.relative_to(root)}: executed in {time.time()-t0:.0f} s", flush=True)

if __name__ == '__main__':
    if not sys.argv[1:]: sys.exit(__doc__)
    if len(sys.argv) == 2: run(sys.argv[1])
    else:   # one process per notebook: module state (e.g. registries) must not leak from one notebook into the next
        import subprocess
        for f in sys.argv[1:]: subprocess.run([sys.executable, __file__, f], check=True)
