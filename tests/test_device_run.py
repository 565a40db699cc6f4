"The GPU command of issue 23 rehearsed on the CPU (tools/device_run.py --tiny: the same code path), and prepare_device.py's size check."
import json, os, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent
ENV = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS='2', MKL_NUM_THREADS='1', OMP_WAIT_POLICY='PASSIVE', MPLBACKEND='Agg',
           PYTHONWARNINGS='ignore', PYTHONUNBUFFERED='1')
CHECKS = ['one forward = two passes (AR-AT step)', 'bf16 attack: input-gradient signs vs fp32', 'fp16 attack: input-gradient signs vs fp32',
          'channels_last step vs contiguous', 'device_dls vs the fastai loader', 'SyncBN and all_reduce, one process',
          'AutoAttack (cheap) on 64 images', 'torch.compile of an AR-AT step']

@pytest.fixture(scope='module')
def rehearsal(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('device')
    r = subprocess.run([sys.executable, str(ROOT/'tools'/'device_run.py'), '--tiny', '--out', str(tmp/'out'), '--work', str(tmp/'work')],
                       capture_output=True, text=True, env=ENV, timeout=600, cwd=tmp)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return tmp/'out', r.stdout

def test_output_order(rehearsal):
    out, log = rehearsal
    lines = log.splitlines()
    first = lambda p: next(i for i, l in enumerate(lines) if l.startswith(p))
    assert first('E = 2 epochs per method (forced by --epochs') < first('training at:') < first('training arat:')
    assert first('smoke checks') < first('speed') < first('E = 2 epochs')
    for c in CHECKS: assert any(c in l and ('PASS' in l or 'FAIL' in l) for l in lines), c
    assert (out/'device_run.log').read_text().splitlines()[:3] == lines[:3]   # the log file holds the printed output

def test_results(rehearsal):
    out, _ = rehearsal
    assert sorted(f.name for f in (out/'results').iterdir()) == ['cifar10-resnet18-arat-2ep.json', 'cifar10-resnet18-at-2ep.json']
    for m in ('at', 'arat'):
        r = json.loads((out/'results'/f'cifar10-resnet18-{m}-2ep.json').read_text())
        assert (r['method'], r['arch'], r['width'], r['epochs'], r['tiny']) == (m, 'resnet18', 8, 2, True)
        t, acc = r['training'], r['accuracy']
        assert (t['epochs_trained'], t['complete'], t['stopped']) == (2, True, None) and t['seconds_per_epoch'] > 0
        assert acc['n'] == 64 and acc['n_autoattack'] >= 32 and acc['aa_version'] == 'cheap'
        for k in ('clean', 'pgd20', 'autoattack', 'clean_on_aa_images', 'pgd20_on_aa_images', 'worst_on_aa_images'): assert 0 <= acc[k] <= 1, k
        assert acc['worst_on_aa_images'] <= min(acc['autoattack'], acc['clean_on_aa_images'], acc['pgd20_on_aa_images'])
        assert acc['autoattack'] <= acc['clean_on_aa_images']
        assert [s['check'] for s in r['smoke']] == CHECKS and all(isinstance(s['passed'], bool) for s in r['smoke'])
        assert r['settings']['precision'] in ('fp32', 'bf16', 'fp16') and r['settings']['bs'] == 16
        assert r['recipe']['gamma'] == (30 if m == 'arat' else None) and r['paper_100_epochs'] and "not the paper's 100" in r['note']
        assert {'python', 'torch', 'cpus'} <= set(r['hardware']) and r['data']['n_train'] == 192 and r['data']['n_test'] == 64
        assert {b['method'] for b in r['bench']['rows']} == {'at', 'arat1', 'arat2'}
        assert all(b['ms_step'] > 0 and b['img_s'] > 0 for b in r['bench']['rows'])
        assert {b['route'] for b in r['bench']['rows'] if b['method'] == 'arat1'} == {'one forward'}   # single_forward=True, read after the fit
        assert {b['route'] for b in r['bench']['rows'] if b['method'] == 'arat2'} == {'two passes'}

def test_smoke_on_cpu(rehearsal):
    "The checks that must pass on any CPU pass; channels_last and compile are GPU features (and inductor is too slow here)."
    out, _ = rehearsal
    s = json.loads((out/'device_run.json').read_text())
    assert s['status'] == 'done' and s['install'] == 'present'
    ok = {r['feature']: r['passed'] for r in s['smoke']}
    assert ok['single_forward'] and ok['device_data'] and ok['sync_bn'] and ok['autoattack']
    assert next(r for r in s['smoke'] if r['feature'] == 'sync_bn')['figures']['bn'] == 'CPUSyncBatchNorm'
    assert not ok['channels_last'] and s['plan']['channels_last'] is False
    one = next(r for r in s['smoke'] if r['feature'] == 'single_forward')['figures']
    assert one['grad_rel_max'] <= 1e-5 and one['loss_rel'] <= 1e-5
    assert s['plan']['E'] == 2 and s['plan']['forced'] and s['plan']['E_auto'] >= 1

def test_curves(rehearsal):
    import pandas as pd
    out, _ = rehearsal
    c = pd.read_csv(out/'curves.csv')
    assert list(c.columns) == ['method', 'epoch', 'lr', 'train_loss', 'clean_acc', 'pgd20_acc', 'seconds']
    assert c[['method', 'epoch']].values.tolist() == [['at', 1], ['at', 2], ['arat', 1], ['arat', 2]]
    assert c.clean_acc.between(0, 1).all() and c.pgd20_acc.between(0, 1).all()
    assert (out/'curves.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    files = [f for f in out.rglob('*') if f.is_file()]
    assert len(files) <= 8 and all(len(f.relative_to(out).parts) <= 3 and f.stat().st_size < 16 * 2**20 for f in files)   # what $OUT returns

def _prepare(dest, *args):
    return subprocess.run([sys.executable, str(ROOT/'tools'/'prepare_device.py'), '--check-only', '--dest', str(dest), *args],
                          capture_output=True, text=True, env=ENV, timeout=120)

def test_prepare_size_check(tmp_path):
    dest = tmp_path/'carried'; dest.mkdir()
    with open(dest/'big.bin', 'wb') as f: f.truncate(61 * 2**20)   # sparse: costs nothing on disk
    r = _prepare(dest)
    assert r.returncode == 1 and 'over the 60 MiB the device call may carry' in r.stderr and 'big.bin 61.0 MiB' in r.stderr
    assert 'Traceback' not in r.stderr
    (dest/'big.bin').unlink()
    with open(dest/'small.bin', 'wb') as f: f.truncate(2**20)
    r = _prepare(dest, '--tree-limit-mib', '0.5')   # the working tree alone is over half a MiB
    assert r.returncode == 1 and 'a device call sends' in r.stderr
    r = _prepare(dest)
    assert r.returncode == 0, r.stderr
    call = json.loads(r.stdout[r.stdout.index('{'):])
    assert call['timeout_s'] <= 560 and len(call['command']) <= 2000 and 'tools/device_run.py' in call['command'] and len(call['carry']) <= 8

def _device_run():
    import importlib.util
    spec = importlib.util.spec_from_file_location('device_run', ROOT/'tools'/'device_run.py')
    m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)
    return m

def test_time_guard(tmp_path):
    "Training that would overrun stops, says where, and the results file says how many epochs of E it had."
    import time, torch
    dr = _device_run()
    a = dr.parse_args(['--tiny', '--out', str(tmp_path/'out'), '--work', str(tmp_path/'work')])
    out = dr.Out(a.out)
    data = dr.load_data(a, torch.device('cpu'), out)
    p = dict(E=2, epoch_s_est={'at': 0.01}, device_data=True, precision='fp32', single_forward=False, channels_last=False, compile=False)
    rows = []
    _, tr = dr.train(a, torch.device('cpu'), 'at', p, data, time.time() - 1, out, rows, lambda: None)
    assert (tr['epochs_trained'], tr['complete'], rows) == (0, False, [])
    assert tr['stopped'] == 'stopped before epoch 1 of 2: the time budget would run out'
    _, tr = dr.train(a, torch.device('cpu'), 'at', p, data, time.time() + 0.5, out, rows, lambda: None)   # shorter than one epoch
    assert tr['epochs_trained'] < 2 and not tr['complete'] and tr['stopped'].startswith('stopped')
    assert dr.result_name('at', 2, tr) == f"cifar10-resnet18-at-{tr['epochs_trained']}of2ep.json"
    assert dr.result_name('arat', 7, dict(complete=True, epochs_trained=7)) == 'cifar10-resnet18-arat-7ep.json'

def test_reuse(rehearsal, tmp_path):
    "A second call takes the first call's smoke table and speed figures (--reuse) and spends its time on training."
    out, _ = rehearsal
    run = lambda *args: subprocess.run([sys.executable, str(ROOT/'tools'/'device_run.py'), '--tiny', '--out', str(tmp_path/'out'),
                                        '--work', str(tmp_path/'work'), *args], capture_output=True, text=True, env=ENV, timeout=600, cwd=tmp_path)
    r = run('--reuse', str(out/'device_run.json'), '--eval-reserve', '5', '--epochs', '1', '--methods', 'at')
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    first, second = (json.loads((d/'device_run.json').read_text()) for d in (out, tmp_path/'out'))
    assert second['smoke'] == first['smoke'] and second['bench'] == first['bench'] and second['reused_from']['file'].endswith('device_run.json')
    assert 'smoke checks: reused from' in r.stdout and second['plan']['eval_reserve_s'] == 5 and second['plan']['E'] == 1
    assert sorted(f.name for f in (tmp_path/'out'/'results').iterdir()) == ['cifar10-resnet18-at-1ep.json']
    (tmp_path/'bad.json').write_text('{"smoke": []}')
    rowless = dict(first, smoke=[{k: v for k, v in r.items() if k != 'figures'} for r in first['smoke']])
    (tmp_path/'rowless.json').write_text(json.dumps(rowless))
    for bad in (tmp_path/'bad.json', tmp_path/'missing.json', tmp_path/'rowless.json'):
        r = run('--reuse', str(bad))
        assert r.returncode == 1 and f'--reuse {bad}: not a finished device_run.json' in r.stderr and 'Traceback' not in r.stderr
        assert 'data:' not in r.stdout   # refused before the data is unpacked
    r = run('--eval-reserve', '-5')
    assert r.returncode == 2 and '--eval-reserve must be >= 0 seconds, got -5.0' in r.stderr and 'Traceback' not in r.stderr
