"""Kill tests (issue 10 item 5): a run killed at each file operation of its checkpoint (and of its final files)
leaves a folder that `arat-train --resume` either continues bit-identically or refuses with a clear message.

The kill is injected, not timed: `os.replace`, `os.fsync`, `os.open`, `torch.save` and `open` are wrapped so that the
k-th call on a file of the run folder raises `Killed` (a `BaseException`, which no `except Exception` stops), as a
`kill -9` at that instant would end the process. A first pass records the operations; each kill point then gets a
fresh run, killed there, and a resume in the same process (the commands are called in-process for speed)."""
import builtins, os, json
from contextlib import contextmanager
from pathlib import Path
import pandas as pd, pytest, torch
from fastcore.script import CliError
from arat.cli import arat_train

torch.set_num_threads(2)
TINY = dict(method='at', n_train=20, n_valid=10, width=2, steps=1, bs=10, robust_n=0, eval_n=10, grad_sim=0, quiet=True, epochs=2)


class Killed(BaseException): "The process died here."


def _path(name, a, kw):
    "The path a wrapped call works on (`None` for `fsync`, which takes a descriptor)."
    if name == 'fsync': return None
    f = a[1] if name == 'save' else a[0] if a else kw.get('file')
    if not isinstance(f, (str, os.PathLike)): f = getattr(f, 'name', None)   # an open file
    return Path(f) if isinstance(f, (str, os.PathLike)) else None


@contextmanager
def file_ops(folder, kill_at=None, log=None):
    "Count the file operations on `folder` (and every fsync); raise `Killed` at the `kill_at`-th; record them in `log`."
    folder, n = Path(folder).resolve(), [0]
    targets = [(os, 'replace'), (os, 'fsync'), (os, 'open'), (torch, 'save'), (builtins, 'open')]
    origs = [(m, nm, getattr(m, nm)) for m, nm in targets]
    builtins_open = builtins.open
    def wrap(nm, f):
        def g(*a, **kw):
            p = _path(nm, a, kw)
            if p is None or p.resolve() == folder or folder in p.resolve().parents:
                n[0] += 1
                mode = (a[1] if len(a) > 1 else kw.get('mode', 'r')) if nm == 'open' and f is builtins_open else ''
                if log is not None: log.append((nm + ('-write' if 'w' in mode or 'a' in mode else ''), p.name if p else None))
                if n[0] == kill_at: raise Killed(f"killed at {nm} {p}")
            return f(*a, **kw)
        return g
    for m, nm, f in origs: setattr(m, nm, wrap(nm, f))
    try: yield n
    finally:
        for m, nm, f in origs: setattr(m, nm, f)


@pytest.fixture(scope='module')
def straight(tmp_path_factory):
    "An uninterrupted run, and the file operations it made."
    out, log = tmp_path_factory.mktemp('ck')/'straight', []
    with file_ops(out, log=log): arat_train(out=out, **TINY)
    return out, log


def _same(a, b):
    # bit-identical: a resumed run does the float operations of the uninterrupted one, in the same order, on this machine
    # (both runs here share the CPU and thread count; across CPUs the weights differ in their last bits)
    sa, sb = torch.load(a/'resume.pth', weights_only=False), torch.load(b/'resume.pth', weights_only=False)
    assert sa['epoch'] == sb['epoch'] == 2
    for k in sa['model']: assert torch.equal(sa['model'][k], sb['model'][k]), k
    ma, mb = torch.load(a/'model.pth'), torch.load(b/'model.pth')
    for k in ma: assert torch.equal(ma[k], mb[k]), k
    la, lb = pd.read_csv(a/'log.csv'), pd.read_csv(b/'log.csv')
    assert la.drop(columns='time').equals(lb.drop(columns='time'))
    assert pd.read_csv(a/'eval.csv').equals(pd.read_csv(b/'eval.csv'))
    ra, rb = json.loads((a/'results.json').read_text()), json.loads((b/'results.json').read_text())
    assert ra['model']['weights_sha256'] == rb['model']['weights_sha256'] and ra['accuracy'] == rb['accuracy']


def _write_ops(log, name):
    "The indices (1-based) of the operations of `atomic_write` of file `name`: open, (torch.save), fsync, replace, open folder, fsync folder."
    i = next(i for i, (nm, f) in enumerate(log) if nm == 'open-write' and f == f'{name}.tmp')
    r = next(j for j in range(i, len(log)) if log[j] == ('replace', f'{name}.tmp'))
    return list(range(i + 1, r + 4))


def _kill_points(log):
    "The first write (config.json), every operation of the first epoch's checkpoint, and the commit points of the final files."
    fin = _write_ops(log, 'model.pth'), _write_ops(log, 'results.json')
    return [1] + _write_ops(log, 'resume.pth') + [fin[0][0], fin[0][3], fin[0][5], fin[1][0], fin[1][2]]


def test_the_kill_points_cover_the_checkpoint(straight):
    _, log = straight
    names = [(nm, f) for nm, f in log]
    assert ('save', 'resume.pth.tmp') in names and ('replace', 'resume.pth.tmp') in names and ('fsync', None) in names
    assert ('replace', 'model.pth.tmp') in names and ('replace', 'results.json.tmp') in names
    assert not any(f in ('resume.pth', 'model.pth', 'results.json') and nm in ('save', 'open-write') for nm, f in names)   # never written in place


def test_a_kill_at_each_file_operation_resumes_bit_identically_or_is_refused(straight, tmp_path):
    ref, log = straight
    pts = _kill_points(log)
    assert len(pts) >= 10, pts
    outcomes = {}
    for k in pts:
        out = tmp_path/f'k{k}'
        with pytest.raises(Killed):
            with file_ops(out, kill_at=k): arat_train(out=out, **TINY)
        nm, f = log[k-1]
        if f and f.endswith('.tmp') and nm in ('save', 'fsync', 'replace'): (out/f).write_bytes(b'PK half a checkpoint')  # what a kill leaves
        try: arat_train(out=out, resume=True, quiet=True)
        except CliError as e:      # refused: one line, naming what to do
            msg = str(e)
            assert len(msg.splitlines()) == 1 and ('start it without --resume' in msg or '--overwrite' in msg), (k, log[k-1], msg)
            outcomes[k] = 'refused'
            continue
        _same(ref, out)
        outcomes[k] = 'identical'
    # only a kill before the run's configuration exists can leave nothing to resume
    assert [k for k, o in outcomes.items() if o == 'refused'] == [1], (outcomes, [log[k-1] for k in pts])


def test_fp16_resume_restores_the_loss_scale(tmp_path):
    "Stopped and resumed under fp16 (CPU autocast): resume.pth holds the GradScaler's state and the resumed run carries it on."
    run = dict(TINY, precision='fp16')
    arat_train(out=tmp_path/'straight', **run)
    arat_train(out=tmp_path/'part', stop_after=1, **run)
    first = torch.load(tmp_path/'part'/'resume.pth', weights_only=False)
    assert first['epoch'] == 1 and first['scaler']['scale'] > 0
    scales = []
    import arat.runs as R
    load = R.ResumeCheckpoint.before_epoch
    def spy(self):   # the scale the resumed epoch starts from: the saved one, not a fresh 2**16
        load(self)
        if self.resume and self.epoch == self.start: scales.append(self.learn.scaler.get_scale())
    R.ResumeCheckpoint.before_epoch = spy
    try: arat_train(out=tmp_path/'part', resume=True, quiet=True)
    finally: R.ResumeCheckpoint.before_epoch = load
    assert scales == [first['scaler']['scale']]
    a, b = (torch.load(tmp_path/d/'resume.pth', weights_only=False) for d in ('straight', 'part'))
    assert a['scaler'] == b['scaler'] and all(torch.equal(a['model'][k], b['model'][k]) for k in a['model'])
