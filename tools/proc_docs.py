"""Run the part of the nbdev docs build that needs no Quarto (nbdev-proc-nbs without the Quarto install) and check it."""
import os, sys, json
from pathlib import Path
from nbdev.config import get_config
from nbdev.quarto import refresh_quarto_yml
from nbdev.serve import proc_nbs
import nbdev.doclinks

def main():
    cfg = get_config()
    os.chdir(cfg.config_path)
    refresh_quarto_yml()
    nbdev.doclinks._build_modidx()
    cache = proc_nbs(cfg.nbs_path, n_workers=2, force=True)
    nbs = sorted(p.relative_to(cfg.nbs_path) for p in cfg.nbs_path.rglob('*.ipynb') if '.ipynb_checkpoints' not in p.parts)
    missing = [str(p) for p in nbs if not (cache/p).exists()]
    if missing: sys.exit(f"nbdev-proc-nbs did not process: {missing}")
    bad = []
    for p in nbs:
        nb = json.loads((cache/p).read_text())
        src = lambda c: ''.join(c['source']).lstrip()
        if not any((c['cell_type'] == 'raw' and 'title:' in src(c)) or (c['cell_type'] == 'markdown' and src(c).startswith('#'))
                   for c in nb['cells']):
            bad.append(str(p))
    if bad: sys.exit(f"processed notebooks without a title: {bad}")
    print(f"docs pipeline: {len(nbs)} notebooks processed into {cache}")

if __name__ == '__main__': main()   # proc_nbs spawns workers, which re-import this file
