"Cross-module checks: the public API, the README contract, packaging."
import importlib, inspect, json, re, subprocess, sys, tomllib
from pathlib import Path
import pytest

root = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(root/'tests'))
import readme

def _blocks(text, lang='sh'): return [b.strip() for b in re.findall(rf"```{lang}\n(.*?)```", text, re.S)]

def test_readme_in_step_with_index():
    assert (root/'README.md').read_text() == readme.readme_text(), "run `python tests/readme.py --write`"

def test_readme_commands_are_the_ci_and_tutorial_commands():
    sh = _blocks((root/'README.md').read_text())
    main_job, tests_cmd = sh[0], sh[1]
    assert 'pip install' in main_job and 'arat-train' in main_job
    assert 'pip install -e ".[dev]"' in tests_cmd and 'tests/check.sh' in tests_cmd
    ci = (root/'.ci'/'run').read_text()
    assert tests_cmd in ci.splitlines(), f".ci/run must run the README's test command verbatim: {tests_cmd!r}"
    quick = (root/'nbs'/'tutorials'/'quickstart.ipynb')
    if quick.exists(): assert main_job in quick.read_text().replace('\\"', '"'), "the quick start must show the README's main-job command"

def test_no_fastai_name_is_shadowed():
    import arat.all, fastai.vision.all as fv
    clash = set(arat.all.__all__) & set(dir(fv))
    assert not clash, f"arat.all would shadow fastai names: {sorted(clash)}"
    ns = {}
    exec("from fastai.vision.all import *\nfrom arat.all import *", ns)
    assert ns['Learner'] is fv.Learner and 'ARATCallback' in ns and 'pgd' in ns

def test_every_public_symbol_has_a_docstring():
    import arat.all
    missing = [n for n in arat.all.__all__ if (inspect.isfunction(o := getattr(arat.all, n)) or inspect.isclass(o)) and not inspect.getdoc(o)]
    assert not missing, f"no docstring: {missing}"

def test_modules_only_import_earlier_modules():
    mods = sorted(p for p in (root/'nbs').glob('[0-9][0-9]_*.ipynb'))
    order = {}
    for p in mods:
        src = json.loads(p.read_text())
        m = re.search(r"#\| default_exp ([\w.]+)", '\n'.join(''.join(c['source']) for c in src['cells']))
        if m: order[m.group(1)] = int(p.name[:2])
    for name, k in order.items():
        text = (root/'arat'/f"{name.replace('.', '/')}.py").read_text()
        for imp in re.findall(r"^from \.(\w+) import", text, re.M) + re.findall(r"^from arat\.(\w+) import", text, re.M):
            if imp in order: assert order[imp] < k, f"arat.{name} (notebook {k:02d}) imports arat.{imp} (notebook {order[imp]:02d})"

def test_dev_extra_pins_nbdev_and_fastcore():
    proj = tomllib.loads((root/'pyproject.toml').read_text())['project']
    dev = proj['optional-dependencies']['dev']
    assert any(re.fullmatch(r"nbdev==[\d.]+", d) for d in dev) and any(re.fullmatch(r"fastcore==[\d.]+", d) for d in dev)
    assert not any('==' in d for d in proj['dependencies']), "runtime dependencies take lower bounds, not pins"

def test_sample_is_shipped_and_small():
    import importlib.resources as ir
    f = ir.files('arat')/'sample'/'cifar10_sample.tgz'
    assert f.is_file() and len(f.read_bytes()) <= 5 * 2**20

def test_sidebar_lists_every_notebook():
    side = (root/'nbs'/'sidebar.yml').read_text()
    nbs = [p.relative_to(root/'nbs').as_posix() for p in (root/'nbs').rglob('*.ipynb') if '.ipynb_checkpoints' not in p.parts]
    missing = [n for n in nbs if n not in side]
    assert not missing, f"not in nbs/sidebar.yml: {missing}"
