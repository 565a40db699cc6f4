"""Bad inputs to `arat-train` and `arat-eval` that a careless or unlucky user gives (issue 10): each is refused with
a one- or two-line message naming the value or file and what to do, and leaves the user's files as they were.
The commands are called in-process (`arat_train`, `arat_eval`: the functions the console scripts run; a `CliError` is
what the script prints as its one line, exit status 1); tests/test_cli.py covers the console scripts themselves."""
import hashlib, json, shutil
from pathlib import Path
import pandas as pd, pytest, torch
from fastcore.script import CliError
from arat.cli import arat_train, arat_eval
from arat.data import sample_path

torch.set_num_threads(2)
TINY = dict(method='at', n_train=20, n_valid=10, width=2, steps=1, bs=10, robust_n=0, eval_n=10, grad_sim=0, quiet=True)


def snapshot(folder):
    "sha256 of every file under `folder`, by relative path."
    folder = Path(folder)
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob('*')) if p.is_file()}


def refused(f, *contains, lines=1):
    "Call `f`; it must raise a `CliError` of `lines` lines containing each of `contains`. Returns the message."
    with pytest.raises(CliError) as e: f()
    msg = str(e.value)
    assert len(msg.splitlines()) == lines and 'Traceback' not in msg, msg
    for c in contains: assert c in msg, (c, msg)
    return msg


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    "A finished tiny run and an unfinished one (stopped after epoch 1 of 2)."
    d = tmp_path_factory.mktemp('runs')
    arat_train(epochs=1, out=d/'fin', **TINY)
    arat_train(epochs=2, stop_after=1, out=d/'half', **TINY)
    return d


def copy(runs, name, tmp_path):
    dst = tmp_path/name
    shutil.copytree(runs/name, dst)
    return dst


# item 1: a folder holding a run is never replaced silently, and nothing is touched before everything is checked
NEW_RUN_BAD = [
    (dict(TINY, layers='layer9', epochs=1), ("method 'at' takes no option 'layers'",)),   # refused before any file is touched
    (dict(TINY, method='arat', layers='layer9', epochs=1), ("holds another run (--method was 'at' there, 'arat' now)",)),
    (dict(TINY, lr=0.05, epochs=1), ("holds another run (--lr was 0.1 there, 0.05 now); pass another --out, or --overwrite to replace that run",)),
    (dict(TINY, epochs=2), ("holds another run (--epochs was 1 there, 2 now)",)),
    (dict(TINY, method='arat', method_args='{"gamma": -5}', epochs=1), ('ARATCallback: gamma must be a finite number >= 0',)),
    (dict(TINY, bs=64, epochs=1), ("holds another run (--bs was 10 there, 64 now)",)),
    (dict(TINY, path='no/such/data', epochs=1), ('--path no/such/data: no such folder',)),
]

@pytest.mark.parametrize('kw,msg', NEW_RUN_BAD, ids=[str(i) for i in range(len(NEW_RUN_BAD))])
def test_a_finished_run_is_never_replaced_silently(runs, tmp_path, kw, msg):
    out = copy(runs, 'fin', tmp_path)
    before = snapshot(out)
    refused(lambda: arat_train(out=out, **kw), *msg)
    assert snapshot(out) == before


def test_the_same_run_again_is_finished_and_an_unfinished_one_points_to_resume(runs, tmp_path):
    out = copy(runs, 'fin', tmp_path); before = snapshot(out)
    assert arat_train(out=out, epochs=1, **TINY) == dict(out=out, finished=True)
    assert snapshot(out) == before
    half = copy(runs, 'half', tmp_path); before = snapshot(half)
    refused(lambda: arat_train(out=half, epochs=2, **TINY),
            'holds this run, unfinished (1 of 2 epochs saved): continue it with `arat-train --resume --out', 'or pass --overwrite')
    assert snapshot(half) == before
    (tmp_path/'other').mkdir(); (tmp_path/'other'/'log.csv').write_text('my own file')
    refused(lambda: arat_train(out=tmp_path/'other', epochs=1, **TINY), 'holds another run (its files (log.csv) without a readable config.json)')
    assert (tmp_path/'other'/'log.csv').read_text() == 'my own file'


# the flags of issues 12 and 16: checked before any file is touched, and new settings of a run like the others
NEW_FLAG_BAD = [
    (dict(precision='fp8'), "--precision must be one of 'bf16', 'fp16', got 'fp8'"),
    (dict(device_data='gpu'), "--device-data must be one of 'auto', 'on', 'off', got 'gpu'"),
    (dict(dataset='imagenette', device_data='on'), "--device-data on: Imagenette's item transforms are random"),
    (dict(lr_delay=-1), '--lr-delay must be a whole number >= 0, got -1'),
    (dict(swa_start=0.5), '--swa-start 0.5 sets up SWA, which is off: add --swa, or drop --swa-start'),
    (dict(swa=True, swa_freq=0), 'SWACallback: freq must be a whole number >= 1'),
    (dict(swa=True, swa_start=-0.5), 'SWACallback: start must be a fraction of the run in [0, 1)'),
    (dict(swa=True, swa_start=5.), '--swa-start 5 is not an epoch of the run (0-based, --epochs 1)'),
    (dict(two_pass=True), '--two-pass is not an option of --method at; drop it'),
    (dict(method='arat', method_args='{"single_forward": false}'), "--method-args: 'single_forward' has its own flag, --two-pass"),
    (dict(channels_last='yes'), "--channels-last must be one of True, False, got 'yes'"),
    # issue 21, probe 7: inductor fails on the CPU in AR-AT's auto-balance pass: refused before any file (was a 292-line traceback)
    (dict(method='arat', compile=True, device='cpu'), "--compile: on the CPU, inductor fails to compile --method arat's auto-balance pass; drop --compile"),
    (dict(method='asym-trades', compile=True, device='cpu'), "--compile: on the CPU, inductor fails to compile --method asym-trades's auto-balance pass"),
]

@pytest.mark.parametrize('kw,msg', NEW_FLAG_BAD, ids=[str(i) for i in range(len(NEW_FLAG_BAD))])
def test_new_flags_are_checked_before_any_file(runs, tmp_path, kw, msg):
    out = copy(runs, 'fin', tmp_path); before = snapshot(out)
    refused(lambda: arat_train(out=out, epochs=1, **{**TINY, **kw}), msg)
    assert snapshot(out) == before
    refused(lambda: arat_train(out=tmp_path/'new', epochs=1, **{**TINY, **kw}), msg)
    assert not (tmp_path/'new').exists()


def test_a_new_setting_is_a_different_run(runs, tmp_path):
    out = copy(runs, 'fin', tmp_path); before = snapshot(out)
    refused(lambda: arat_train(out=out, epochs=1, swa=True, **TINY), "holds another run (--swa was False there, True now)")
    refused(lambda: arat_train(out=out, epochs=1, precision='bf16', **TINY), "holds another run (--precision was None there, 'bf16' now)")
    half = copy(runs, 'half', tmp_path)
    refused(lambda: arat_train(resume=True, out=half, swa=True), "--resume continues the run in", "--swa was False there, True now")
    assert snapshot(out) == before


def test_init_starts_arrest_from_a_saved_model(runs, tmp_path):
    "--init loads a run's model.pth before the learner is built: ARREST's frozen teacher is that model; a bad file is refused first."
    init = runs/'fin'/'model.pth'
    sd = torch.load(init)
    res = arat_train(out=tmp_path/'arrest', epochs=1, init=str(init), **{**TINY, 'method': 'arrest'})
    teacher = res['learn'].model.arrest_teacher.state_dict()
    for k in sd: assert torch.equal(teacher[k].cpu(), sd[k]), k
    assert json.loads((tmp_path/'arrest'/'config.json').read_text())['init'] == str(init.resolve())
    (tmp_path/'junk.pth').write_text('not torch')
    refused(lambda: arat_train(out=tmp_path/'bad', epochs=1, init=str(tmp_path/'junk.pth'), **TINY), '--init', 'cannot be read', 'pass a state-dict file')
    refused(lambda: arat_train(out=tmp_path/'bad', epochs=1, init=str(init), **{**TINY, 'width': 4}),
            f'--init {init.resolve()} does not fit the model (resnet18, width 4, 10 classes): conv1.weight has shape (2, 3, 3, 3) there')
    assert not (tmp_path/'bad').exists()


def test_batch_size_above_the_training_set(tmp_path):
    refused(lambda: arat_train(out=tmp_path/'bs', epochs=1, **{**TINY, 'bs': 64}),
            "--bs 64 is more than the 20 training images: no full batch to train on (fastai drops the last incomplete batch); pass --bs 20 or less or a larger --n-train")
    assert not (tmp_path/'bs').exists()


def test_overwrite_replaces_the_whole_run(runs, tmp_path):
    "--overwrite deletes the files the run's manifest lists (arat-train's, and the report arat-eval wrote), and nothing else."
    out = copy(runs, 'fin', tmp_path)
    arat_eval(out, n=10, aa='cheap', aa_iters=2, quiet=True, analysis=False, sanity=False)
    listed = json.loads((out/'manifest.json').read_text())['files']
    assert 'report/robustness_report.md' in listed and 'report/results.json' in listed and 'config.json' in listed
    (out/'report'/'paper.md').write_text('my paper')   # the user's own file in the report folder
    (out/'notes.txt').write_text('mine')
    m = json.loads((out/'manifest.json').read_text()); (tmp_path/'outside.txt').write_text('not the run\'s')
    (out/'manifest.json').write_text(json.dumps(m | dict(files=m['files'] + ['../outside.txt', '.'])))   # a manifest edited to point outside
    arat_train(out=out, epochs=1, overwrite=True, **{**TINY, 'lr': 0.05})
    assert (tmp_path/'outside.txt').exists() and out.is_dir()
    assert not (out/'report'/'robustness_report.md').exists() and not (out/'report'/'results.json').exists()
    assert (out/'report'/'paper.md').read_text() == 'my paper' and (out/'notes.txt').read_text() == 'mine'
    assert json.loads((out/'config.json').read_text())['lr'] == 0.05
    assert json.loads((out/'results.json').read_text())['config']['lr'] == 0.05


# issue 21, probe 1: a folder that no run of arat listed as its own is not a run to replace: --overwrite deletes nothing there
USER_FOLDERS = [  # (files the user has there, what the message names)
    ({'log.csv': 'epoch,loss\n0,1\n', 'report/paper.md': '# my paper', 'notes.txt': 'mine'}, 'holds files (log.csv, report) but no manifest.json'),
    ({'config.json': '{"mine": 1}', 'model.pth': 'my weights'}, 'holds files (config.json, model.pth) but no manifest.json'),
]

@pytest.mark.parametrize('files,msg', USER_FOLDERS, ids=['log-report-notes', 'config-model'])
def test_overwrite_never_deletes_what_no_run_wrote(tmp_path, files, msg):
    out = tmp_path/'mine'
    for n, t in files.items(): (out/n).parent.mkdir(parents=True, exist_ok=True); (out/n).write_text(t)
    before = snapshot(out)
    refused(lambda: arat_train(out=out, epochs=1, overwrite=True, **TINY), f'--overwrite: {out} {msg}', 'move your files out of it, or pass another --out')
    assert snapshot(out) == before
    refused(lambda: arat_train(out=out, epochs=1, **TINY), 'holds another run', 'or move those files away (no manifest.json lists them')
    assert snapshot(out) == before


# item 12: damaged run folders, for --resume and for arat-eval
def _trunc(f): f.write_bytes(f.read_bytes()[:len(f.read_bytes())//2])
def _cfg(f, **kw):
    c = json.loads(f.read_text()); c.update(kw)
    f.write_text(json.dumps({k: v for k, v in c.items() if v != '<drop>'}))

DAMAGE = [  # (run, damage, command, what the message says)
    ('half', lambda d: _trunc(d/'resume.pth'), 'resume',
     ('resume.pth cannot be read: it is cut short or not a PyTorch file', 'restore the file, or train again with --overwrite')),
    ('half', lambda d: torch.save(dict(epoch=1), d/'resume.pth'), 'resume', ('resume.pth is not a whole checkpoint of this arat version (no n_epoch',)),
    ('half', lambda d: (d/'config.json').write_text('{"method": "at", '), 'resume', ('config.json cannot be read as JSON', 'or train again with --overwrite')),
    ('half', lambda d: _cfg(d/'config.json', arch='<drop>'), 'resume', ('config.json is incomplete: no arch;',)),
    ('half', lambda d: _cfg(d/'config.json', epochs='five'), 'resume',
     ("config.json: arat-train: --epochs must be a whole number >= 1, got 'five' (the file is not as arat-train wrote it: restore it",)),
    ('half', lambda d: _cfg(d/'config.json', eps=None), 'resume',   # review: a saved null ended in a TypeError traceback
     ("config.json: arat-train: --eps must be a finite number >= 0, got None", "the file is not as arat-train wrote it")),
    ('half', lambda d: _cfg(d/'config.json', step=None), 'resume', ("config.json: arat-train: --step must be a finite number >= 0, got None",)),
    ('half', lambda d: _cfg(d/'config.json', width=3), 'resume', ("config.json: width is 3 there, but the run trained with 2 (", 'resume.pth records its settings)')),
    # issue 21, probe 2: a hand-edited setting is refused on --resume, naming the key (the checkpoint records the settings)
    ('half', lambda d: _cfg(d/'config.json', lr=0.05), 'resume', ("config.json: lr is 0.05 there, but the run trained with 0.1 (", "--resume changes only --epochs, --eval-n", "restore lr, or start a new run")),
    ('half', lambda d: _cfg(d/'config.json', seed=7), 'resume', ("config.json: seed is 7 there, but the run trained with 0 (",)),
    ('half', lambda d: _cfg(d/'config.json', eps=16.), 'resume', ("config.json: eps is 16.0 there, but the run trained with 8.0 (",)),
    ('half', lambda d: _cfg(d/'config.json', n_out=11), 'resume', ("config.json: n_out is 11 there, but the run trained with 10 (",)),
    ('half', lambda d: _cfg(d/'config.json', path='/no/such/data', dataset='cifar10'), 'resume',
     ("the run's data folder '/no/such/data' (", "config.json: path) is not there any more; put the data back there")),
    ('fin', lambda d: _trunc(d/'model.pth'), 'eval',
     ('model.pth cannot be read: it is cut short or not a PyTorch file', 'write it again from the run\'s checkpoint with `arat-train --resume --out')),
    ('fin', lambda d: (d/'model.pth').write_bytes(b''), 'eval', ('model.pth cannot be read',)),
    ('fin', lambda d: (d/'config.json').write_text('not json'), 'eval', ('config.json cannot be read as JSON', 'restore it, or train the run again')),
    ('fin', lambda d: _cfg(d/'config.json', n_out='<drop>'), 'eval', ('config.json is incomplete: no n_out',)),
    ('fin', lambda d: _cfg(d/'config.json', width=3), 'eval', ('model.pth does not fit the model of', 'has shape', 'restore the config.json of this run')),
    ('fin', lambda d: _cfg(d/'config.json', arch='vgg'), 'eval', ("config.json: arch must be one of 'resnet18'", "got 'vgg' (", 'restore it')),
]

@pytest.mark.parametrize('run,damage,cmd,msg', DAMAGE, ids=[str(i) for i in range(len(DAMAGE))])
def test_a_damaged_run_is_a_clear_error(runs, tmp_path, run, damage, cmd, msg):
    out = copy(runs, run, tmp_path)
    damage(out)
    before = snapshot(out)
    if cmd == 'resume': refused(lambda: arat_train(out=out, resume=True, quiet=True), *msg)
    else: refused(lambda: arat_eval(out, n=10, aa='cheap', aa_iters=2, quiet=True, analysis=False, sanity=False), *msg)
    assert snapshot(out) == before


def test_resume_writes_a_damaged_model_again(runs, tmp_path):
    out = copy(runs, 'fin', tmp_path)
    good = (out/'model.pth').read_bytes()
    _trunc(out/'model.pth')
    arat_train(out=out, resume=True, quiet=True)
    # resumed = the run's own model.pth, on one machine: the same operations
    assert (out/'model.pth').read_bytes() == good or all(
        torch.equal(a, b) for a, b in zip(torch.load(runs/'fin'/'model.pth').values(), torch.load(out/'model.pth').values()))


# item 9: a resumed run keeps its --eval-n
def test_resume_keeps_eval_n(runs, tmp_path):
    out = copy(runs, 'half', tmp_path)
    arat_train(out=out, resume=True, quiet=True)
    assert pd.read_csv(out/'eval.csv').n.item() == 10 and json.loads((out/'config.json').read_text())['eval_n'] == 10


# item 4: the data folder is stored as an absolute path and checked on --resume and by arat-eval
def test_the_run_data_is_checked(tmp_path, monkeypatch):
    shutil.copytree(sample_path(), tmp_path/'data')
    monkeypatch.chdir(tmp_path)
    kw = {**TINY, 'path': 'data'}
    arat_train(out='half', epochs=2, stop_after=1, **kw)
    cfg = json.loads((tmp_path/'half'/'config.json').read_text())
    assert cfg['path'] == str((tmp_path/'data').resolve()) and cfg['data']['files'] > 900
    shutil.copytree(tmp_path/'half', tmp_path/'fin')
    arat_train(out='fin', resume=True, quiet=True)
    extra = next((tmp_path/'data'/'train').iterdir())/'extra.png'
    shutil.copy(next(extra.parent.iterdir()), extra)
    before = snapshot(tmp_path/'half')
    refused(lambda: arat_train(out='half', resume=True, quiet=True),
            f"the data in {cfg['path']} changed since the run started ({cfg['data']['files']} files then, {cfg['data']['files']+1} now); put the run's data back")
    # issue 21, probe 3: an image replaced by another of the same name (other size) is other data
    img = next(p for p in extra.parent.iterdir() if p != extra); kept = img.read_bytes()
    other = next(p for p in extra.parent.iterdir() if p not in (extra, img) and p.stat().st_size != len(kept))
    extra.unlink(); img.write_bytes(other.read_bytes())
    refused(lambda: arat_train(out='half', resume=True, quiet=True), "(the same file names, other file sizes: a file was replaced or changed)")
    img.write_bytes(kept); shutil.copy(img, extra)
    refused(lambda: arat_eval('fin', n=10, aa='cheap', aa_iters=2, quiet=True, analysis=False, sanity=False),
            'changed since the run started', f"or pass --path {cfg['path']} to evaluate on it as it is")
    assert snapshot(tmp_path/'half') == before
    monkeypatch.chdir(tmp_path/'half')      # a folder called data here is not the run's data
    (tmp_path/'half'/'data').mkdir()
    extra.unlink()
    arat_train(out=tmp_path/'half', resume=True, quiet=True)     # the absolute path: the right data, from anywhere
    assert (tmp_path/'half'/'results.json').exists()


# item 13: a run that diverges stops with two lines, no traceback, and keeps the last finite checkpoint
def test_divergence_is_two_lines_and_keeps_the_last_finite_checkpoint(tmp_path):
    msg = refused(lambda: arat_train(out=tmp_path/'nan', epochs=2, **{**TINY, 'lr': 1e4}), 'training diverged in epoch', lines=2)
    assert 'train again with a smaller --lr' in msg.splitlines()[1], msg
    assert not (tmp_path/'nan'/'model.pth').exists()
    st = torch.load(tmp_path/'nan'/'resume.pth', weights_only=False) if (tmp_path/'nan'/'resume.pth').exists() else None
    assert st is None or all(torch.isfinite(v.float()).all() for v in st['model'].values())
    # issue 21, probe 9: the log keeps the epochs the checkpoint holds, not the row of the epoch that was not saved
    log = pd.read_csv(tmp_path/'nan'/'log.csv') if (tmp_path/'nan'/'log.csv').exists() else pd.DataFrame(dict(epoch=[]))
    assert len(log) == (st['epoch'] if st else 0), (log, st and st['epoch'])


# issue 21, probe 8: --eps 0 (no attack) is a setting of both threat models; a bad --eps is named as --eps, not as the --step derived from it
@pytest.mark.parametrize('norm', ['Linf', 'L2'])
def test_eps_zero_is_allowed_in_both_threat_models(tmp_path, norm):
    import inspect
    from arat.cli import train_config
    args = {k: p.default for k, p in inspect.signature(arat_train).parameters.items()} | dict(norm=norm, eps=0., out=str(tmp_path/'z'))
    cfg, out, state = train_config(args)
    assert cfg['eps'] == 0 and cfg['step'] > 0 and state is None and not out.exists()
    for bad in (-0.5, float('nan')):
        with pytest.raises(ValueError, match=f"--eps must be a finite number >= 0, got {bad}"): train_config(args | dict(eps=bad))


# issue 21, probe 9: arat-eval evaluates the images of arat-train's final table when the run validated on a subset, and says so
def test_eval_uses_the_run_validation_images(runs, tmp_path, capsys):
    out = copy(runs, 'fin', tmp_path)
    capsys.readouterr()
    res = arat_eval(out, n=10, aa='cheap', aa_iters=2, quiet=True, analysis=False, sanity=False)
    said = capsys.readouterr().out
    assert "the run's validation images, the subset of 10 it trained with (--n-valid 10, seed 0), as its eval.csv; pass --dataset sample for the whole" in said, said
    ev = pd.read_csv(out/'eval.csv')
    assert res['table'].clean.item() == ev.clean.item() and res['table'].n.item() == ev.n.item() == 10
