"Cross-module checks: the public API, the README contract, packaging."
import ast, importlib, inspect, json, re, subprocess, sys, tomllib
from pathlib import Path
import pytest

root = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(root/'tools'))
import readme

def _blocks(text, lang='sh'): return [b.strip() for b in re.findall(rf"```{lang}\n(.*?)```", text, re.S)]

def test_readme_in_step_with_index():
    assert (root/'README.md').read_text() == readme.readme_text(), "run `python tools/readme.py --write`"

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

# The import order: a module imports only modules numbered before it (its notebook's number). The checker reads every
# import statement with `ast`, wherever it is (top level, inside a function, under `if`), in every spelling.
def arat_imports(src:str, pkg:str='arat') -> set:
    "The names of the `pkg` modules (first level) that the module source `src` imports anywhere."
    res = set()
    def add(dotted):
        if dotted: res.add(dotted.split('.')[0])
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, ast.Import):                      # import arat.x / import arat.x.y as z
            for a in node.names:
                if a.name.startswith(pkg + '.'): add(a.name[len(pkg)+1:])
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module == pkg:        # from arat import x
                for a in node.names: add(a.name)
            elif node.level == 0 and (node.module or '').startswith(pkg + '.'): add(node.module[len(pkg)+1:])  # from arat.x import f
            elif node.level == 1 and node.module: add(node.module)                 # from .x import f
            elif node.level == 1:                                                   # from . import x
                for a in node.names: add(a.name)
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str) and node.args[0].value.startswith(pkg + '.')
              and getattr(node.func, 'attr', getattr(node.func, 'id', None)) in ('import_module', '__import__')):
            add(node.args[0].value[len(pkg)+1:])              # importlib.import_module('arat.x')
    return res

def import_problems(sources:dict, order:dict) -> list:
    "Back-references (a module importing one numbered the same or later) and import cycles among `sources` (name -> source)."
    graph = {m: sorted(arat_imports(s) & set(sources) - {m}) for m, s in sources.items()}
    probs = [f"arat.{m} (notebook {order[m]:02d}) imports arat.{i} (notebook {order[i]:02d}): a module imports only earlier ones"
             for m, imps in graph.items() for i in imps if m in order and i in order and order[i] >= order[m]]
    state, stack = {}, []
    def visit(m):
        state[m] = 'open'; stack.append(m)
        for i in graph[m]:
            if state.get(i) == 'open': probs.append("import cycle: " + ' -> '.join(f"arat.{o}" for o in stack[stack.index(i):] + [i]))
            elif i not in state: visit(i)
        state[m] = 'done'; stack.pop()
    for m in sorted(graph):
        if m not in state: visit(m)
    return probs

def notebook_order() -> dict:
    "Module name -> number of the notebook that exports it."
    order = {}
    for p in sorted((root/'nbs').glob('[0-9][0-9]_*.ipynb')):
        src = '\n'.join(''.join(c['source']) for c in json.loads(p.read_text())['cells'])
        if m := re.search(r"^#\|\s*default_exp\s+([\w.]+)", src, re.M): order[m.group(1)] = int(p.name[:2])
    return order

PLANTED = {  # every spelling of an import of the later module `late` from the earlier `early`
    'relative': "from .late import f",
    'relative, indented (lazy)': "def g():\n    from .late import f\n    return f",
    'from . import': "from . import late",
    'absolute': "import arat.late",
    'absolute, aliased, in a method': "class C:\n    def m(self):\n        import arat.late as L",
    'from arat import': "from arat import late",
    'from arat.x import': "if True:\n    from arat.late import f",
    'import_module': "import importlib\nM = importlib.import_module('arat.late')",
}

@pytest.mark.parametrize('how', PLANTED)
def test_import_checker_sees_every_spelling(how):
    probs = import_problems({'early': PLANTED[how], 'late': "x = 1"}, {'early': 1, 'late': 2})
    assert probs and "arat.early (notebook 01) imports arat.late (notebook 02)" in probs[0], (how, probs)

def test_import_checker_finds_cycles_and_passes_clean_code():
    cyc = import_problems({'a': "def f():\n    import arat.b", 'b': "from .c import g", 'c': "from . import a"}, {})
    assert cyc == ["import cycle: arat.a -> arat.b -> arat.c -> arat.a"], cyc
    assert import_problems({'a': "import os\nfrom arat import __version__", 'b': "from .a import f\nimport arat.a",
                            'c': "def f():\n    from arat import a, b"}, {'a': 0, 'b': 1, 'c': 2}) == []
    same = import_problems({'a': "from .b import f", 'b': "y = 1"}, {'a': 3, 'b': 3})
    assert same and 'imports arat.b' in same[0]
    assert arat_imports("from fastai.vision.all import *\nimport arat_other\nfrom ..x import y") == set()

def test_modules_only_import_earlier_modules():
    order = notebook_order()
    sources = {p.stem: p.read_text() for p in (root/'arat').glob('*.py') if not p.stem.startswith('_')}
    assert {'data', 'test_utils', 'all'} <= set(order), sorted(order)
    probs = import_problems(sources, order)
    assert not probs, '\n'.join(probs)
    users = [m for m, s in sources.items() if 'test_utils' in arat_imports(s) and m != 'test_utils']
    assert not users, f"library modules import arat.test_utils (only notebooks and tests may): {users}"

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

def test_no_warning_on_import_or_cli_help():
    "Importing arat (any module first) and `arat-train --help` print no warning (fastai's torch.jit FutureWarning is silenced)."
    for code in ("import arat.all", "import arat.cli", "import arat.callbacks"):
        r = subprocess.run([sys.executable, '-W', 'error::FutureWarning', '-c', code], capture_output=True, text=True)
        assert r.returncode == 0 and not r.stderr.strip(), f"{code!r} warned:\n{r.stderr[-2000:]}"
    exe = Path(sys.executable).parent/'arat-train'
    if exe.exists():
        r = subprocess.run([str(exe), '--help'], capture_output=True, text=True)
        assert r.returncode == 0 and 'Warning' not in r.stderr, r.stderr[-2000:]
