"End-to-end checks of the console scripts `arat-train` and `arat-eval`, run as subprocesses on tiny data (CPU, 2 threads)."
import json, os, signal, subprocess, sys, time
from pathlib import Path
import pandas as pd, pytest, torch
from arat.models import cifar_resnet18
from arat.learner import METHODS

torch.set_num_threads(2)
BIN = Path(sys.executable).parent
ENV = {**os.environ, 'OMP_NUM_THREADS': '2', 'MKL_NUM_THREADS': '2', 'OMP_WAIT_POLICY': 'PASSIVE', 'MPLBACKEND': 'Agg'}
TINY = ['--n-train', '32', '--n-valid', '16', '--width', '4', '--steps', '1', '--bs', '16', '--robust-n', '8',
        '--eval-n', '16', '--grad-sim', '1', '--quiet']


def run(script, *args, timeout=120):
    "Run a console script of the venv; returns the CompletedProcess."
    exe = BIN/script
    assert exe.exists(), f"{exe} missing: run `.venv/bin/pip install -e . --no-deps`"
    return subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True, env=ENV, timeout=timeout)


def weights(folder):
    "The training state's weights (dual BNs, predictors) in a run's checkpoint."
    return torch.load(Path(folder)/'resume.pth', weights_only=False)['model']


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp('cli')/'run'
    p = run('arat-train', *TINY, '--epochs', '1', '--out', out)
    assert p.returncode == 0, p.stderr
    return out, p


def test_train_writes_every_file(trained):
    out, p = trained
    names = {f.name for f in out.iterdir()}
    assert {'config.json', 'model.pth', 'resume.pth', 'log.csv', 'loss.png', 'metrics.png', 'grad_sim.csv', 'grad_sim.png',
            'eval.csv', 'results.json', 'model_card.md', 'manifest.json'} == names
    assert names - {'manifest.json'} <= set(json.loads((out/'manifest.json').read_text())['files'])   # what --overwrite may delete
    cfg = json.loads((out/'config.json').read_text())
    assert (cfg['method'], cfg['arch'], cfg['width'], cfg['epochs'], cfg['n_train'], cfg['steps']) == ('arat', 'resnet18', 4, 1, 32, 1)
    log = pd.read_csv(out/'log.csv')
    assert len(log) == 1 and {'train_loss', 'valid_loss', 'clean_acc', 'robust_acc', 'inv', 'alpha'} <= set(log.columns)
    # model.pth: merged to single BNs, no predictors: loads into the plain architecture
    m = cifar_resnet18(10, width=4)
    m.load_state_dict(torch.load(out/'model.pth'))
    st = torch.load(out/'resume.pth', weights_only=False)
    assert {'model', 'opt', 'epoch', 'rng'} <= set(st) and st['epoch'] == 1 and any('.aux.' in k for k in st['model'])
    ev = pd.read_csv(out/'eval.csv', index_col=0)
    res = json.loads((out/'results.json').read_text())
    assert res['tool'] == 'arat-train' and res['accuracy']['clean'] == ev.clean.item() and res['n'] == 16
    assert ev.n.item() == 16 and 0 <= ev.pgd20.item() <= ev.clean.item() <= 1
    assert 'clean accuracy' in p.stdout and 'PGD-20 accuracy' in p.stdout
    assert f"{100*ev.clean.item():.2f}%" in p.stdout
    # issue 20: numbers that say what they are; --quiet prints one readable line per epoch, not fastai's raw list
    assert 'valid_loss is the clean cross-entropy on the 16 validation images, not comparable to train_loss' in p.stdout
    assert 'robust_acc (PGD-20 L∞ ε = 8/255) on the first 8 of them' in p.stdout
    line = next(l for l in p.stdout.splitlines() if l.startswith('epoch 1/1: '))
    assert 'train_loss ' in line and '(adv_ce ' in line and '; valid clean CE ' in line and '% of 16' in line and '% of 8' in line, line
    assert '[0, ' not in p.stdout, p.stdout
    # one training time everywhere: the summary, results.json and the card
    secs = res['wall_time_s']
    assert f"after 1 epochs ({secs:.0f} s of training" in p.stdout and 'both on 16 test images' in p.stdout, (secs, p.stdout)
    card = (out/'model_card.md').read_text()
    assert f"{secs:.0f} s of training" in card and '## Scale' in card and 'resnet18 width 4 (the paper: 64), 1 epochs (the paper: 100)' in card
    assert all((out/f).stat().st_size > 1000 for f in ('loss.png', 'metrics.png', 'grad_sim.png'))


def test_eval_reads_the_run(trained):
    out, _ = trained
    p = run('arat-eval', out, '--n', '16', '--aa', 'cheap', '--aa-iters', '5', '--no-analysis', '--quiet', '--device', 'cpu', timeout=300)
    assert p.returncode == 0, p.stderr
    md, html = out/'report'/'robustness_report.md', out/'report'/'robustness_report.html'
    assert md.exists() and html.exists()
    text = md.read_text()
    assert 'Sanity checks' in text and 'autoattack' in text
    assert 'sanity checks:' in p.stdout and 'report:' in p.stdout
    res = json.loads((out/'report'/'results.json').read_text())
    assert res['tool'] == 'arat-eval' and res['autoattack']['mode'] == 'cheap' and 'autoattack' in res['accuracy']
    assert (out/'report'/'model_card.md').exists()


DRIVER = """
import io, json, runpy, sys, contextlib
res = []
for script, argv in json.loads(sys.argv[1]):
    out, err = io.StringIO(), io.StringIO()
    sys.argv = [script, *argv]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try: runpy.run_path(script, run_name='__main__'); code = 0
        except SystemExit as e:   # what the interpreter does with sys.exit(x)
            code = e.code if isinstance(e.code, int) else 0 if e.code is None else 1
            if isinstance(e.code, str): err.write(e.code)
    res.append(dict(code=code, stdout=out.getvalue(), stderr=err.getvalue()))
print(json.dumps(res))
"""

def run_many(cases, timeout=120):
    "Run the console scripts `[(script, [args])]` in one interpreter (one import), each as `python script args` would."
    cases = [(str(BIN/s), list(map(str, a))) for s, a in cases]
    p = subprocess.run([sys.executable, '-c', DRIVER, json.dumps(cases)], capture_output=True, text=True, env=ENV, timeout=timeout)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout.strip().splitlines()[-1])


BAD = [  # (arguments, a fragment of the message, exit status: 2 for argparse's usage errors)
       (['--method', 'fgsm'], "--method must be one of 'arat', 'at', 'trades', 'mart', 'lbgat', 'asym-trades', 'arat-separate'", 1),
       (['--epochs', '-1'], '--epochs must be a whole number >= 1, got -1', 1),
       (['--path', '/nonexistent'], '--path /nonexistent: no such folder', 1),
       (['--arch', 'vgg16'], "--arch must be one of 'resnet18', 'preact18', 'wrn34-10', 'imagenette-resnet18', got 'vgg16'", 1),
       (['--dataset', 'mnist'], "--dataset must be one of 'sample', 'cifar10', 'cifar100', 'imagenette', got 'mnist'", 1),
       (['--eps', '-2'], '--eps must be a finite number >= 0, got -2.0', 1),
       (['--lr', '0'], '--lr must be > 0, got 0.0', 1),
       (['--method', 'at', '--gamma', '10'], "method 'at' takes no option 'gamma'; ATCallback takes: ", 1),
       (['--method', 'trades', '--layers', 'penultimate'], "method 'trades' takes no option 'layers'", 1),
       (['--attack-mode', 'test'], "--attack-mode must be one of 'train', 'eval', got 'test'", 1),
       (['--recipe', 'fast'], "--recipe must be one of 'paper', 'imagenet', got 'fast'", 1),
       (['--resume'], 'holds no run', 1),
       (['--method-args', '{"gamma": -5}'], "ARATCallback: gamma must be a finite number >= 0", 1),
       (['--method', 'trades', '--method-args', '{"beta": -100}'], "TRADESCallback: beta must be a finite number >= 0", 1),
       (['--method', 'trades', '--beta', '-100'], 'TRADESCallback: beta must be a finite number >= 0, got -100.0', 1),
       (['--method-args', '{"nope": 1}'], "method 'arat' takes no option 'nope'; ARATCallback takes: gamma", 1),
       (['--layers', ','], "ARATCallback: layers must be a tap spec", 1),
       (['--n-train', '20', '--bs', '32'], '--bs 32 is more than the 20 training images: no full batch to train on', 1),
       (['--epochs', 'two'], "argument --epochs: invalid int value: 'two'", 2),
       (['--norm', 'l2'], "--norm must be one of 'Linf', 'L2', got 'l2'", 1),
       (['--random-start', 'gauss'], "--random-start must be one of 'uniform', 'inplace', got 'gauss'", 1),
       (['--method', 'trades', '--random-start', 'inplace'], "TRADESCallback: random_start='inplace' is the public AR-AT code's uniform start", 1),
       (['--norm', 'L2', '--random-start', 'inplace'], "ARATCallback: random_start='inplace' is the public AR-AT code's L∞ start", 1),
       # issue 21, probe 8: the flag given is named (the L2 step is derived from --eps, which is checked first)
       (['--norm', 'L2', '--eps', '-0.5'], '--eps must be a finite number >= 0, got -0.5', 1),
       (['--norm', 'L2', '--eps', 'nan'], '--eps must be a finite number >= 0, got nan', 1),
       (['--eps', 'nan'], '--eps must be a finite number >= 0, got nan', 1),
       # issue 21, probe 6: refused before torchrun starts: one line, no launcher traceback
       (['--nproc', '2', '--n-train', '40', '--bs', '1000'], '--bs 1000 is more than the 40 training images: no full batch to train on', 1),
       (['--nproc', '2', '--method', 'fgsm'], "--method must be one of 'arat', 'at'", 1),
       (['--nproc', '2', '--device-data', 'on'], "--device-data on: under DDP the batches come through fastai's DistributedDL", 1),
       (['--resume', '--overwrite'], "--resume continues the run in --out, --overwrite replaces it: pass one of them", 2)]


def _lines(err): return [l for l in err.splitlines() if l.strip()]


def test_bad_flags_are_clear_errors(tmp_path):
    (tmp_path/'afile').write_text('not a folder')
    out_bad = [(['--out', tmp_path/'afile'], 'afile is a file, not a folder; pass a folder (it is made if missing)', 1),
               (['--out', tmp_path/'afile'/'run'], 'afile is a file, so no folder can be made under it; pass another --out', 1)]
    if Path('/sys').is_dir() and os.name == 'posix':    # a folder nobody may write, even root
        out_bad.append((['--out', '/sys/arat-run', '--epochs', '1'], '/sys/arat-run', 1))
    cases = [([*a, '--out', tmp_path/'bad'], m, c) for a, m, c in BAD] + out_bad
    debug = ['--method-args', '{"gamma": -5}', '--debug', '--out', tmp_path/'bad']
    ev_bad = [(['--aa', 'fast'], "--aa must be one of 'standard', 'cheap', got 'fast'"),
              (['--dataset', 'mnist'], "--dataset must be one of 'sample', 'cifar10', 'cifar100', 'imagenette', got 'mnist'")]
    *res, aa, ds, af, dbg = run_many([('arat-train', a) for a, _, _ in cases] + [('arat-eval', [tmp_path])]
                                     + [('arat-eval', [tmp_path, *a]) for a, _ in ev_bad] + [('arat-eval', [tmp_path/'afile']), ('arat-train', debug)])
    # a file that is no run: named as such (not as an unusable report folder), one line
    assert af['code'] == 1 and len(_lines(af['stderr'])) == 1 and 'afile: not a run folder' in af['stderr'], af
    for (_, msg), r in zip(ev_bad, (aa, ds)): assert r['code'] == 1 and _lines(r['stderr']) == ['arat-eval: ' + msg], r
    # --debug shows the traceback, and the message last
    assert dbg['code'] == 1 and 'Traceback' in dbg['stderr'] and _lines(dbg['stderr'])[-1].startswith("ARATCallback: gamma must be")
    for (args, msg, code), r in zip(cases, res):
        argparse = code == 2 and '--overwrite' not in args   # argparse's own error: the usage, then the message
        assert r['code'] == code, (args, r)
        assert msg in r['stderr'], (args, r['stderr'])
        assert 'Traceback' not in r['stderr'], (args, r['stderr'])
        if not argparse: assert len(_lines(r['stderr'])) == 1, (args, r['stderr'])
    assert res[-1]['code'] == 1 and 'not a run folder' in res[-1]['stderr']
    assert not (tmp_path/'bad').exists() and (tmp_path/'afile').read_text() == 'not a folder'
    if len(out_bad) == 3: assert 'pass a folder you can write to' in res[-2]['stderr'] and not Path('/sys/arat-run').exists()


def test_help_explains_every_flag():
    tr, ev = run_many([('arat-train', ['--help']), ('arat-eval', ['--help'])])
    assert tr['code'] == 0 and ev['code'] == 0
    for flag in ('--method', '--arch', '--width', '--dataset', '--path', '--epochs', '--bs', '--lr', '--gamma', '--layers',
                 '--no-auto-balance', '--eps', '--step ', '--steps', '--attack-mode', '--recipe', '--seed', '--out', '--resume', '--n-train',
                 '--device', '--precision', '--channels-last', '--swa', '--swa-start', '--swa-freq', '--lr-delay', '--two-pass', '--device-data', '--init', '--norm', '--random-start', '--compile'):
        assert flag in tr['stdout'], flag
    assert '--bn-mode' not in tr['stdout'] and 'imagenette-resnet18' in tr['stdout']
    for m in METHODS: assert m in tr['stdout'], m      # every registered method is named
    assert '--aa' in ev['stdout'] and '--n ' in ev['stdout'] and 'cheap' in ev['stdout'] and '--norm' in ev['stdout'] and '--eps' in ev['stdout']


def test_every_method_trains_and_attack_mode_reaches_trades(tmp_path):
    "Every registered method runs from the console script; `--method trades --attack-mode train` attacks in train mode."
    tiny = [*TINY, '--epochs', '1', '--n-train', '20', '--n-valid', '10', '--bs', '10', '--eval-n', '10', '--robust-n', '0']
    cases = [('arat-train', [*tiny, '--method', m, '--out', tmp_path/m]) for m in METHODS]
    cases += [('arat-train', [*tiny, '--method', 'trades', '--attack-mode', 'train', '--out', tmp_path/'trades-train'])]
    res = run_many(cases, timeout=600)
    for (_, args), r in zip(cases, res): assert r['code'] == 0, (args, r['stderr'])
    for m in METHODS: assert json.loads((tmp_path/m/'config.json').read_text())['method'] == m
    banner = {m: next(l for l in r['stdout'].splitlines() if l.startswith('arat-train: ')) for (_, a), r, m in zip(cases, res, METHODS)}
    assert 'no attack in training (evaluated at L∞ ε = 8/255)' in banner['standard'] and 'PGD-' not in banner['standard']   # issue 21, probe 9
    assert 'PGD-1 L∞ ε = 8/255' in banner['at']
    nbt = lambda f: weights(tmp_path/f)['bn1.num_batches_tracked'].item()
    # in train mode the attack's forward passes update the BN statistics too; TRADES' own default is eval mode
    assert nbt('trades-train') > nbt('trades')
    assert json.loads((tmp_path/'trades-train'/'config.json').read_text())['attack_mode'] == 'train'
    assert json.loads((tmp_path/'trades'/'config.json').read_text())['attack_mode'] is None


@pytest.fixture(scope='module')
def straight(tmp_path_factory):
    out = tmp_path_factory.mktemp('cli')/'straight'
    p = run('arat-train', *TINY, '--n-train', '64', '--epochs', '2', '--out', out)
    assert p.returncode == 0, p.stderr
    return out


def _same_run(a, b):
    # bit-identical: a resumed run does the float operations of the uninterrupted one, in the same order, on this machine
    wa, wb = weights(a), weights(b)
    assert list(wa) == list(wb)
    for k in wa: assert torch.equal(wa[k], wb[k]), k
    ma, mb = torch.load(a/'model.pth'), torch.load(b/'model.pth')
    for k in ma: assert torch.equal(ma[k], mb[k]), k
    la, lb = pd.read_csv(a/'log.csv'), pd.read_csv(b/'log.csv')
    assert la.drop(columns='time').equals(lb.drop(columns='time'))
    assert pd.read_csv(a/'grad_sim.csv').equals(pd.read_csv(b/'grad_sim.csv'))
    assert pd.read_csv(a/'eval.csv').equals(pd.read_csv(b/'eval.csv'))


def test_stop_and_resume_is_bit_identical(straight, tmp_path):
    out = tmp_path/'resumed'
    p = run('arat-train', *TINY, '--n-train', '64', '--epochs', '2', '--stop-after', '1', '--out', out)
    assert p.returncode == 0 and 'stopped after epoch 1' in p.stdout, p.stderr
    assert not (out/'model.pth').exists() and len(pd.read_csv(out/'log.csv')) == 1
    assert 'epoch 1 took ' in p.stdout and 'more for the other 1 epoch(s), until about ' in p.stdout   # issue 20: a time estimate
    before = snapshot(out)
    p = run('arat-train', '--resume', '--nproc', '2', '--out', out)   # issue 21, probe 6: refused before torchrun starts
    assert p.returncode == 1 and len(_lines(p.stderr)) == 1 and 'Traceback' not in p.stderr, p.stderr
    assert 'resume.pth was written by 1 process(es), this run has 2' in p.stderr and snapshot(out) == before
    p = run('arat-train', '--resume', '--out', out)   # the saved configuration is used, --quiet included (issue 21, probe 9)
    assert p.returncode == 0 and 'resuming' in p.stdout, p.stderr
    assert 'epoch 2/2: train_loss ' in p.stdout and 'train_loss  valid_loss' not in p.stdout + p.stderr, p.stdout
    _same_run(straight, out)


def snapshot(folder):
    "sha256 of every file under `folder`, by relative path."
    import hashlib
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(Path(folder).rglob('*')) if p.is_file()}


def test_killed_while_writing_the_model_finishes_the_outputs(straight, tmp_path):
    "Issue 21, probe 4: killed while model.pth is written (every epoch saved): --resume writes every output, grad_sim included."
    import shutil
    out = tmp_path/'late'; shutil.copytree(straight, out)
    for n in ('model.pth', 'results.json', 'eval.csv', 'model_card.md', 'grad_sim.csv', 'grad_sim.png', 'loss.png', 'metrics.png'): (out/n).unlink()
    (out/'model.pth.tmp').write_bytes(b'cut short')
    p = run('arat-train', '--resume', '--out', out)
    assert p.returncode == 0, p.stderr
    assert 'all 2 epochs are saved; writing the outputs the run did not finish' in p.stdout and 'epoch 3 of 2' not in p.stdout, p.stdout
    assert 'per epoch:' not in p.stdout and (out/'grad_sim.png').exists() and not (out/'model.pth.tmp').exists()
    _same_run(straight, out)
    rs, rl = (json.loads((f/'results.json').read_text())['wall_time_s'] for f in (straight, out))
    assert rl == rs   # the training time is the epochs' (kept in resume.pth), not this session's


def test_killed_run_resumes_bit_identically(straight, tmp_path):
    out = tmp_path/'killed'
    exe = BIN/'arat-train'
    proc = subprocess.Popen([str(exe), *TINY, '--n-train', '64', '--epochs', '2', '--out', str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    try:
        t0 = time.time()
        while not (out/'resume.pth').exists() and proc.poll() is None and time.time() - t0 < 90: time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL); proc.wait()
    assert (out/'resume.pth').exists()
    p = run('arat-train', '--resume', '--quiet', '--out', out)
    assert p.returncode == 0, p.stderr
    _same_run(straight, out)


# the flags of issues 12 and 16, in-process (`arat_train` is the function the script runs; no interpreter start)
NEW = dict(method='arat', n_train=20, n_valid=10, width=2, steps=1, bs=10, robust_n=0, eval_n=10, grad_sim=0, quiet=True,
           swa=True, swa_start=0., swa_freq=1, device_data='on', lr_delay=1, warmup=True, two_pass=True, precision='bf16')


def test_new_flags_are_saved_and_resume_bit_identically(tmp_path):
    "SWA, device-resident data, the late lr decay, two passes and bf16 reach the learner, go to config.json, and resume exactly."
    from fastcore.script import CliError
    from arat.cli import arat_train
    from arat.data import DeviceDataLoaders
    from arat.learner import SWACallback
    res = arat_train(epochs=2, out=tmp_path/'a', **NEW)
    learn = res['learn']
    assert isinstance(learn.dls, DeviceDataLoaders) and learn.swa.n_averaged > 0 and learn.swa.swapped
    assert learn.arat.single_forward is False and learn.swa.freq == 1
    cfg = json.loads((tmp_path/'a'/'config.json').read_text())
    assert {k: cfg[k] for k in ('swa', 'swa_start', 'swa_freq', 'device_data', 'lr_delay', 'two_pass', 'precision', 'channels_last')} == \
        dict(swa=True, swa_start=0., swa_freq=1, device_data='on', lr_delay=1, two_pass=True, precision='bf16', channels_last=False)
    arat_train(epochs=2, stop_after=1, out=tmp_path/'b', **NEW)
    with pytest.raises(CliError, match="--swa-freq was 1 there, 2 now"): arat_train(resume=True, out=tmp_path/'b', swa_freq=2)
    with pytest.raises(CliError, match="--device-data was 'on' there, 'off' now"): arat_train(resume=True, out=tmp_path/'b', device_data='off')
    arat_train(resume=True, quiet=True, out=tmp_path/'b')
    ma, mb = torch.load(tmp_path/'a'/'model.pth'), torch.load(tmp_path/'b'/'model.pth')
    for k in ma: assert torch.equal(ma[k], mb[k]), k   # resumed = uninterrupted, on one machine: the same operations
    # model.pth is the SWA average: not the raw last weights
    raw = learn.swa.raw_state
    assert any(not torch.equal(ma[k], raw[k].cpu()) for k in ma if k in raw and ma[k].is_floating_point())


def test_lr_delay_makes_each_division_one_epoch_late(tmp_path):
    "--warmup --lr-delay 1 is the public code's schedule: with 4 epochs, lr/5, then 0.1 (the division at epoch 4 comes one epoch late)."
    from arat.cli import arat_train
    tiny = dict(method='standard', n_train=10, n_valid=10, width=2, bs=10, robust_n=0, eval_n=10, grad_sim=0, quiet=True, epochs=4, warmup=True)
    lrs = [arat_train(out=tmp_path/str(d), lr_delay=d, channels_last=bool(d), **tiny)['learn'].recorder.hps['lr'] for d in (0, 1)]
    assert json.loads((tmp_path/'1'/'config.json').read_text())['channels_last'] is True   # on the CPU: recorded, left off with a warning
    assert [round(v, 6) for v in lrs[0]] == [0.02, 0.1, 0.1, 0.01] and [round(v, 6) for v in lrs[1]] == [0.02, 0.1, 0.1, 0.1]


def test_l2_and_the_inplace_start_reach_the_attack_and_the_results(tmp_path):
    "--norm L2 trains and evaluates in the L2 ball (ε 0.5, step ε/4 by default); --random-start inplace reaches the callback; both saved."
    from arat.cli import arat_train, arat_eval
    from arat.callbacks import RobustAccuracy
    tiny = dict(method='arat', n_train=20, n_valid=10, width=2, steps=1, bs=10, robust_n=4, eval_n=10, grad_sim=0, quiet=True, epochs=1)
    learn = arat_train(out=tmp_path/'l2', norm='L2', **tiny)['learn']
    assert (learn.arat.norm, learn.arat.eps, learn.arat.step_size, learn.arat.random_start) == ('L2', 0.5, 0.125, True)
    rob = [m for m in learn.metrics if isinstance(m, RobustAccuracy)]
    assert [(m.norm, m.eps) for m in rob] == [('L2', 0.5)]
    cfg = json.loads((tmp_path/'l2'/'config.json').read_text())
    assert (cfg['norm'], cfg['eps'], cfg['step'], cfg['random_start']) == ('L2', 0.5, 0.125, 'uniform')
    rec = json.loads((tmp_path/'l2'/'results.json').read_text())
    assert rec['threat_model'] == dict(norm='L2', eps=0.5)
    assert '## Robustness (L2 ε = 0.5, 10 test images' in (tmp_path/'l2'/'model_card.md').read_text()
    assert pd.read_csv(tmp_path/'l2'/'eval.csv').norm.tolist() == ['L2']
    learn = arat_train(out=tmp_path/'inplace', random_start='inplace', **tiny)['learn']
    assert (learn.arat.norm, learn.arat.eps, learn.arat.random_start) == ('Linf', 8/255, 'inplace')
    assert json.loads((tmp_path/'inplace'/'config.json').read_text())['random_start'] == 'inplace'
    # arat-eval: the run's threat model by default, --norm / --eps to choose another
    ev = dict(n=10, aa='cheap', aa_iters=2, sanity=False, analysis=False, quiet=True, device='cpu')
    arat_eval(tmp_path/'l2', **ev)
    assert json.loads((tmp_path/'l2'/'report'/'results.json').read_text())['threat_model'] == dict(norm='L2', eps=0.5)
    arat_eval(tmp_path/'inplace', norm='L2', eps=0.25, **ev)
    assert json.loads((tmp_path/'inplace'/'report'/'results.json').read_text())['threat_model'] == dict(norm='L2', eps=0.25)
    arat_eval(tmp_path/'inplace', **ev)
    assert json.loads((tmp_path/'inplace'/'report'/'results.json').read_text())['threat_model'] == dict(norm='Linf', eps=8/255)
