"""The paper's experiment (issue 13): PGD-AT against AR-AT (ResNet-18, CIFAR-10), trained in resumable chunks and
evaluated with AutoAttack, recorded as `results/cifar10-<arch>-<method>-<epochs>ep.json`.

Each call does as much as fits in `--budget` seconds and exits; call it again (e.g. one call per 10-minute GPU
command) until it prints "all done". Every step is the real command line (`arat-train --resume`, `arat-eval`), so a
killed call loses at most the epoch in flight.

    python tools/paper_run.py --work /tmp/paper --budget 540                  # on the GPU machine, repeatedly
    python tools/paper_run.py --work /tmp/p --epochs 2 --n-train 200 --n-valid 100 --width 8 \\
        --aa-n 20 --aa cheap --device cpu --results /tmp/p/results           # the CPU rehearsal (a few minutes)
"""
import argparse, hashlib, json, os, subprocess, sys, tarfile, time
from pathlib import Path

root = Path(__file__).resolve().parent.parent
bin_ = Path(sys.executable).parent

def sha256(f):
    h = hashlib.sha256()
    with open(f, 'rb') as fh:
        for b in iter(lambda: fh.read(1 << 20), b''): h.update(b)
    return h.hexdigest()

def extract(archive, work):
    "The archive's `cifar10/` folder under `work/data` (extracted once)."
    dest = work/'data'
    if not (dest/'cifar10'/'.complete').exists():
        dest.mkdir(parents=True, exist_ok=True)
        with tarfile.open(archive) as t: t.extractall(dest, filter='data')
        (dest/'cifar10'/'.complete').write_text(sha256(archive))
    return dest/'cifar10'

def run(cmd, log):
    "Run one CLI step, appending its output to `log`; its exit code."
    print('$', ' '.join(map(str, cmd)), flush=True)
    with open(log, 'a') as fh: return subprocess.run(list(map(str, cmd)), stdout=fh, stderr=subprocess.STDOUT).returncode

def saved_epochs(out):
    "Epochs the run in `out` has saved (0 if none)."
    try:
        import torch
        return int(torch.load(out/'resume.pth', map_location='cpu', weights_only=False)['epoch'])
    except Exception: return 0

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--archive', default=str(root.parent/'shared'/'data'/'cifar10.tgz'))
    p.add_argument('--work', required=True, help='folder for the data, runs and logs (keep it out of git)')
    p.add_argument('--methods', default='at,arat'); p.add_argument('--arch', default='resnet18')
    p.add_argument('--epochs', type=int, default=100); p.add_argument('--chunk', type=int, default=5)
    p.add_argument('--budget', type=float, default=540, help='seconds this call may use')
    p.add_argument('--width', type=int); p.add_argument('--n-train', type=int); p.add_argument('--n-valid', type=int)
    p.add_argument('--eval-n', type=int, help='clean/PGD-20 images (default: all)')
    p.add_argument('--aa-n', type=int, default=1000); p.add_argument('--aa', default='standard')
    p.add_argument('--device', default=None); p.add_argument('--precision', default=None)
    p.add_argument('--results', default=str(root/'results'))
    a = p.parse_args()
    t0, work = time.time(), Path(a.work).resolve()
    data = extract(Path(a.archive), work)
    left = lambda: a.budget - (time.time() - t0)
    common = ['--dataset', 'cifar10', '--path', data, '--arch', a.arch, '--epochs', a.epochs, '--quiet']
    for k in ('width', 'n_train', 'n_valid', 'eval_n', 'device', 'precision'):
        if getattr(a, k) is not None: common += [f"--{k.replace('_', '-')}", getattr(a, k)]
    done = []
    for m in a.methods.split(','):
        out, log = work/'runs'/m, work/f'{m}.log'
        secs = {}   # measured seconds per epoch of this method, to plan the next chunk
        while not (out/'results.json').exists():
            have = saved_epochs(out)
            per = secs.get('epoch')
            n = a.chunk if per is None else max(0, min(a.chunk, int(left() // (per * 1.2))))
            if n == 0 or left() < 30: print(f"budget spent: {m} at epoch {have} of {a.epochs}; call again"); return 3
            stop = have + n
            cmd = [bin_/'arat-train', '--method', m, *common, '--out', out]
            if (out/'config.json').exists(): cmd.append('--resume')
            if stop < a.epochs: cmd += ['--stop-after', stop]
            t = time.time()
            if run(cmd, log): print(f"{m}: arat-train failed, see {log}"); return 1
            got = saved_epochs(out) - have
            if got: secs['epoch'] = (time.time() - t) / got
        rep = out/'report'/'results.json'
        if not rep.exists():
            if left() < 60: print(f"budget spent before the evaluation of {m}; call again"); return 3
            ev = [bin_/'arat-eval', out, '--n', a.aa_n, '--aa', a.aa, '--quiet', '--no-analysis']
            if a.device: ev += ['--device', a.device]
            if run(ev, log): print(f"{m}: arat-eval failed, see {log}"); return 1
        done.append(record(m, out, rep, a, data))
    print('all done:', ', '.join(map(str, done)))
    return 0

def record(m, out, rep, a, data):
    "Write results/cifar10-<arch>-<method>-<epochs>ep.json: the training and evaluation records and the data's sha256."
    train, ev = json.loads((out/'results.json').read_text()), json.loads(rep.read_text())
    rec = dict(experiment='paper (issue 13)', method=m, arch=a.arch, epochs=a.epochs,
               data=dict(archive=Path(a.archive).name, sha256=(data/'.complete').read_text().strip()),
               training=train, evaluation=ev)
    dest = Path(a.results); dest.mkdir(parents=True, exist_ok=True)
    f = dest/f"cifar10-{a.arch}-{m}-{a.epochs}ep.json"
    tmp = f.with_suffix('.tmp'); tmp.write_text(json.dumps(rec, indent=1) + '\n'); os.replace(tmp, f)
    return f

if __name__ == '__main__': sys.exit(main())
