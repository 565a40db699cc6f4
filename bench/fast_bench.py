"""AR-AT vs PGD-AT training throughput through `arat_learner`, side by side in one run: fp32 / bf16, channels_last off / on,
one forward vs two passes, several widths and batch sizes; the data path (fastai's per-image loader vs device-resident
batches); and the authors' public code, timed by ../shared/anchors/time_official.py in a subprocess on the same device.

Every training configuration gets a fresh seeded `cifar_resnet18(width=W)` and `arat_learner(..., robust_n=0)` (SGD 0.9,
wd 5e-4, PGD-10 in train mode, NonFiniteGuard on, as a real run) fed by a `DeviceImageDL` of random uint8 images with the
paper's pad-crop-flip. A step is timed from the first callback's `before_batch` to the last callback's `after_batch`
(CUDA synchronised at both), so it holds the attack, the forward(s), the loss, the backward and the optimizer step, but not
the batch fetch (timed on its own in the data section). Configurations run in interleaved rounds (order rotated each
round; the first round is warm-up) so machine noise hits all alike; printed figures are medians. See bench/README.md.

usage: python bench/fast_bench.py [--device cpu|cuda] [--widths 16 64] [--bs 128] ... (--help)
"""
import argparse, os, sys

def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--device', default='cpu', help="'cpu' or 'cuda'")
    p.add_argument('--widths', type=int, nargs='+', default=[16, 64], help='ResNet-18 base widths (64: the paper\'s)')
    p.add_argument('--bs', type=int, nargs='+', default=[128], help='batch sizes')
    p.add_argument('--methods', nargs='+', default=['at', 'arat1', 'arat2'],
                   help="at: PGD-AT; arat: AR-AT as arat_learner's default (single_forward='auto': one forward on CUDA, two passes "
                        "elsewhere); arat1: AR-AT, one forward (single_forward=True); arat2: AR-AT, two passes (single_forward=False)")
    p.add_argument('--precisions', nargs='+', default=['fp32', 'bf16'], help='fp32 and/or bf16 (autocast, attack included)')
    p.add_argument('--channels-last', nargs='+', default=['off', 'on'], help="off and/or on (fastai's ChannelsLast)")
    p.add_argument('--compile', action='store_true', help="also time AR-AT (fp32, the default route) with arat_learner(compile=...)")
    p.add_argument('--compile-backend', default='inductor', help="torch.compile backend of --compile (default: inductor)")
    p.add_argument('--full-widths', type=int, nargs='*', default=None,
                   help='widths that get the whole precision x channels_last grid (default: all); others: fp32, off only')
    p.add_argument('--width-bs', nargs='*', default=[], help="per-width batch sizes instead of --bs, e.g. 64=32 (CPU: the paper's width at a small batch)")
    p.add_argument('--rounds', type=int, default=3, help='interleaved rounds (the first is warm-up)')
    p.add_argument('--per', type=int, default=2, help='training steps per configuration per round')
    p.add_argument('--steps', type=int, default=10, help='PGD steps of the training attack')
    p.add_argument('--threads', type=int, default=2, help='torch intra-op threads (CPU)')
    p.add_argument('--official-bs', type=int, nargs='*', default=None, help="batch sizes for the authors' code (default: --bs; none: skip)")
    p.add_argument('--official-n', type=int, default=5, help="measured steps of the authors' code (after 3 warm-up)")
    p.add_argument('--official-script', default=None, help='time_official.py (default: shared/anchors or ../shared/anchors)')
    p.add_argument('--data', default='sample', help="data-path section: 'sample' (embedded CIFAR-10 sample), a cifar10.tgz / CIFAR "
                   "folder (fastai layout), or 'none'")
    p.add_argument('--data-bs', type=int, default=128, help='batch size of the data-path section')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--budget', type=float, default=None, help='seconds: start no round after this (at least one measured round runs)')
    p.add_argument('--trimmed', action='store_true', help="the GPU command's short grid (tools/device_run.py): one width, "
                   "at/arat1/arat2 x fp32/bf16 per batch size, channels_last on for at and arat1 at the first batch size only")
    return p.parse_args(argv)

args = parse_args() if __name__ == '__main__' else None
if args is not None and args.device == 'cpu':   # thread settings must precede the torch import
    os.environ['OMP_NUM_THREADS'] = str(args.threads); os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')

import copy, platform, re, statistics, subprocess, tarfile, tempfile, time, warnings
from pathlib import Path
import torch
warnings.filterwarnings('ignore')
from fastai.callback.core import Callback, CancelValidException
from fastai.callback.progress import ProgressCallback
from fastai.callback.channelslast import ChannelsLast
from fastai.data.core import DataLoaders
from fastai.data.transforms import IntToFloatTensor
from arat.all import *

N_TRAIN, EPOCHS = 50_000, 100   # CIFAR-10 training set, the paper's epochs

def sync(dev):
    if dev.type == 'cuda': torch.cuda.synchronize(dev)

class Tic(Callback):
    order, run_valid = -1000, False
    def __init__(self, dev): self.dev = dev
    def before_batch(self): sync(self.dev); self.t0 = time.perf_counter()
    def before_validate(self): raise CancelValidException()

class Toc(Callback):
    order, run_valid = 1000, False
    def __init__(self, tic, dev): self.tic, self.dev, self.spans = tic, dev, []
    def after_batch(self): sync(self.dev); self.spans.append(time.perf_counter() - self.tic.t0)

def fake_dls(bs, n_batches, dev, seed):
    "A `DeviceImageDL` of random uint8 CIFAR-sized images with pad-crop-flip, and a tiny validation loader."
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (bs * n_batches, 3, 32, 32), generator=g, dtype=torch.uint8).to(dev)
    y = torch.randint(0, 10, (bs * n_batches,), generator=g).to(dev)
    trn = DeviceImageDL(x, y, bs=bs, shuffle=True, drop_last=True, after_batch=[IntToFloatTensor(), PadCropFlip(seed=seed)])
    val = DeviceImageDL(x[:bs], y[:bs], bs=bs, split_idx=1)
    return DataLoaders(trn, val, device=dev)

class Config:
    "One training configuration: a learner that runs `per` steps per `fit(1)`; its step spans."
    def __init__(self, method, width, bs, prec, cl, a, dev, compiled=False):
        self.key = (method, width, bs, prec, cl, compiled)
        self.dev, self.mem, self.by_round = dev, None, {}
        torch.manual_seed(a.seed)
        model = cifar_resnet18(10, width=width).to(dev)
        kw = dict(steps=a.steps, attack_mode='train')
        if method in ('arat1', 'arat2'): kw['single_forward'] = method == 'arat1'
        self.tic = Tic(dev); self.toc = Toc(self.tic, dev)
        cbs = [self.tic, self.toc] + ([ChannelsLast()] if cl == 'on' else [])
        self.learn = arat_learner(fake_dls(bs, a.per, dev, a.seed), model, method='at' if method == 'at' else 'arat', lr=0.01,
                                  robust_n=0, auto_balance=False, precision=None if prec == 'fp32' else prec, cbs=cbs,
                                  compile=a.compile_backend if compiled else False, **kw)
        self.learn.remove_cb(ProgressCallback); self.learn.logger = lambda *_: None
        self.route = ''   # AR-AT's route, known after the first fit ('auto' resolves in before_fit)
    def run(self, measure):
        if self.dev.type == 'cuda': torch.cuda.reset_peak_memory_stats(self.dev)
        n = len(self.toc.spans)
        self.learn.fit(1)
        if self.key[0] != 'at':   # asked of the callback: `_single` is reset when the fit ends
            self.route = 'one forward' if self.learn.arat.uses_single_forward() else 'two passes'
        if self.dev.type == 'cuda': self.mem = max(self.mem or 0, torch.cuda.max_memory_allocated(self.dev) / 2**20)
        if not measure: del self.toc.spans[n:]
        else: self.by_round[len(self.by_round)] = statistics.median(self.toc.spans[n:])
    @property
    def spans(self): return self.toc.spans
    @property
    def med(self): return statistics.median(self.spans)

def paired(c, ref):
    "Median and range over the measured rounds of `c`'s step time / `ref`'s in the same round (noise common to a round cancels)."
    rs = [c.by_round[k] / ref.by_round[k] for k in c.by_round if k in ref.by_round]
    return f"paired {statistics.median(rs):.3f} [{min(rs):.3f}-{max(rs):.3f}] over {len(rs)} rounds" if rs else ''

def official(a, dev, bs, timeout=None):
    "The authors' AR-AT and PGD-AT step times (ms) from time_official.py, or the reason they are missing."
    cands = [a.official_script] if a.official_script else ['shared/anchors/time_official.py', '../shared/anchors/time_official.py']
    script = next((Path(c) for c in cands if c and Path(c).exists()), None)
    if script is None: return None, f"time_official.py not found (looked for {', '.join(map(str, cands))})"
    cmd = [sys.executable, str(script), '--device', dev.type, '--bs', str(bs), '--n', str(a.official_n), '--threads', str(a.threads)]
    try: r = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, 'OMP_NUM_THREADS': str(a.threads)}, timeout=timeout)
    except subprocess.TimeoutExpired: return None, f"time_official.py did not finish in {timeout:.0f} s (bs {bs})"
    res = {m: float(v) for m, v in re.findall(r"official (AR-AT|PGD-AT): median ([\d.]+) ms/step", r.stdout)}
    if len(res) != 2: return None, f"time_official.py failed (exit {r.returncode}): {(r.stderr or r.stdout).strip().splitlines()[-1:]}"
    return res, r.stdout.strip()

def cifar_dls(a, dev):
    "fastai DataLoaders of the data-path section."
    if a.data == 'sample': return cifar10_sample_dls(bs=a.data_bs, seed=a.seed, device=dev), 'embedded CIFAR-10 sample'
    p = Path(a.data)
    if p.suffix == '.tgz':
        d = Path(tempfile.mkdtemp(prefix='cifar-'))
        with tarfile.open(p) as t: t.extractall(d, filter='data')
        p = next(q.parent for q in d.rglob('train') if q.is_dir())
    return cifar10_dls(p, bs=a.data_bs, seed=a.seed, device=dev), str(a.data)

def loader_rate(dl, dev, max_batches=None):
    "Images per second of iterating `dl` (batches on `dev`, synchronised), over one epoch or `max_batches`."
    sync(dev); t, n = time.perf_counter(), 0
    for i, (xb, _) in enumerate(dl):
        n += len(xb)
        if max_batches and i + 1 >= max_batches: break
    sync(dev); return n / (time.perf_counter() - t)

def trimmed_keys(a):
    "The short grid of `--trimmed`: (method, width, bs, precision, channels_last) for the first width."
    w, keys = a.widths[0], []
    for i, bs in enumerate(a.bs):
        keys += [(m, w, bs, pr, 'off') for m in a.methods for pr in a.precisions]
        if i == 0 and 'on' in a.channels_last: keys += [(m, w, bs, pr, 'on') for m in a.methods if m != 'arat2' for pr in a.precisions]
    return keys

def grid(a, dev):
    "The configurations of the run (the full grid, or `--trimmed`'s)."
    if a.trimmed: return [Config(*k, a, dev) for k in trimmed_keys(a)]
    full = set(a.widths if a.full_widths is None else a.full_widths)
    wbs = {int(k): [int(v)] for k, v in (o.split('=') for o in a.width_bs)}
    cfgs = [Config(m, w, bs, pr, cl, a, dev) for w in a.widths for bs in wbs.get(w, a.bs) for m in a.methods
            for pr in (a.precisions if w in full else ['fp32']) for cl in (a.channels_last if w in full else ['off'])]
    if a.compile:
        for w in a.widths:
            try: cfgs.append(Config('arat', w, wbs.get(w, a.bs)[0], 'fp32', 'off', a, dev, compiled=True))
            except Exception as e: print(f"torch.compile: {type(e).__name__}: {str(e).splitlines()[0][:200]}")
    return cfgs

def run_rounds(cfgs, a, log=print):
    "Interleaved rounds (the first is warm-up; none starts after `a.budget` seconds once one was measured): `{key: Config}` with spans."
    t0 = time.perf_counter()
    for r in range(a.rounds):
        if a.budget is not None and r > 1 and time.perf_counter() - t0 > a.budget:
            log(f"  budget of {a.budget:.0f} s spent: {r - 1} measured round(s)"); break
        k = r % max(len(cfgs), 1)
        for c in cfgs[k:] + cfgs[:k]:
            try: c.run(measure=r > 0)
            except Exception as e: log(f"{c.key}: {type(e).__name__}: {str(e).splitlines()[0][:300]}"); cfgs.remove(c)
        print(f"  round {r + 1}/{a.rounds} done, {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    return {c.key: c for c in cfgs if c.spans}

def rows(res):
    "One dict per configuration: its key, route, median ms/step, img/s, CUDA peak MiB, AR-AT/PGD-AT (same settings)."
    out = []
    for key, c in res.items():
        m, w, bs, pr, cl, comp = key
        at = res.get(('at', w, bs, pr, cl, comp))
        out.append(dict(method=m, width=w, bs=bs, precision=pr, channels_last=cl, compiled=comp, route=c.route,
                        ms_step=round(c.med * 1e3, 2), img_s=round(bs / c.med, 1), peak_mib=None if c.mem is None else round(c.mem),
                        steps_measured=len(c.spans), arat_over_at=None if at is None or m == 'at' else round(c.med / at.med, 3)))
    return out

def main(a):
    dev = torch.device(a.device)
    if dev.type == 'cuda' and not torch.cuda.is_available(): sys.exit('--device cuda: no CUDA device available')
    if dev.type == 'cpu': torch.set_num_threads(a.threads)
    name = torch.cuda.get_device_name(dev) if dev.type == 'cuda' else f"{platform.machine()} CPU, {a.threads} threads"
    print(f"fast_bench: torch {torch.__version__}, {name}, PGD-{a.steps} (train mode), {a.rounds - 1} measured rounds x {a.per} steps")
    wbs = {int(k): [int(v)] for k, v in (o.split('=') for o in a.width_bs)}
    t0 = time.perf_counter()
    res = run_rounds(grid(a, dev), a)

    print(f"\n{'method':<15}{'width':>6}{'bs':>5}{'prec':>6}{'ch_last':>8}{'ms/step':>10}{'img/s':>9}{'peak MiB':>9}"
          f"{'AR-AT/PGD-AT':>13}{'100 ep (h)':>11}")
    for key, c in res.items():
        m, w, bs, pr, cl, comp = key
        at = res.get(('at', w, bs, pr, cl, comp)) or res.get(('at', w, bs, pr, cl, False))
        ratio = f"{c.med / at.med:13.3f}" if at is not None and m != 'at' else f"{'':>13}"
        hours = EPOCHS * N_TRAIN / bs * c.med / 3600
        print(f"{m + ('+compile' if comp else ''):<15}{w:>6}{bs:>5}{pr:>6}{cl:>8}{c.med * 1e3:10.1f}{bs / c.med:9.0f}"
              f"{(f'{c.mem:9.0f}' if c.mem else '        -')}{ratio}{hours:11.2f}")
    print("\none forward / two passes (AR-AT):")
    for (m, w, bs, pr, cl, comp), c in res.items():
        two = res.get(('arat2', w, bs, pr, cl, comp))
        if m == 'arat1' and two is not None: print(f"  width {w}, bs {bs}, {pr}, channels_last {cl}: {c.med / two.med:.3f}; {paired(c, two)}")
    print("AR-AT / PGD-AT, paired by round:")
    for (m, w, bs, pr, cl, comp), c in res.items():
        at = res.get(('at', w, bs, pr, cl, comp))
        if m != 'at' and at is not None: print(f"  {m}, width {w}, bs {bs}, {pr}, channels_last {cl}: {paired(c, at)}")
    routes = {c.route for (m, *_), c in res.items() if m == 'arat'}
    print(f"AR-AT's default route (single_forward='auto') on {dev.type}: {', '.join(routes) or 'not timed (--methods arat)'}; "
          f"arat1 = one forward, arat2 = two passes")
    print("\nbf16 / fp32 and channels_last on / off:")
    for (m, w, bs, pr, cl, comp), c in res.items():
        if pr == 'bf16' and ('fp32' in a.precisions) and (o := res.get((m, w, bs, 'fp32', cl, comp))):
            print(f"  {m}, width {w}, bs {bs}, channels_last {cl}: bf16/fp32 {c.med / o.med:.3f}")
        if cl == 'on' and (o := res.get((m, w, bs, pr, 'off', comp))):
            print(f"  {m}, width {w}, bs {bs}, {pr}: channels_last on/off {c.med / o.med:.3f}")

    obs = wbs.get(64, a.bs) if a.official_bs is None else a.official_bs
    if obs and 64 in a.widths:
        print("\nthe authors' code (ResNet-18 width 64, split BN, fp32, plain PyTorch loop) vs arat (width 64, fastai):")
        for bs in obs:
            off, out = official(a, dev, bs)
            if off is None: print(f"  bs {bs}: {out}"); continue
            print('  ' + out.replace('\n', '\n  '))
            for m, om in (('arat', 'AR-AT'), ('arat1', 'AR-AT'), ('arat2', 'AR-AT'), ('at', 'PGD-AT')):
                for pr in a.precisions:
                    c = res.get((m, 64, bs, pr, 'off', False))
                    if c is not None: print(f"  arat {m} {pr} / official {om} throughput: {off[om] / (c.med * 1e3):.2f}x")

    if a.data != 'none':
        dls, what = cifar_dls(a, dev)
        pil = loader_rate(dls.train, dev)
        t = time.perf_counter(); dd = device_dls(dls, dev); sync(dev); build = time.perf_counter() - t
        devr = loader_rate(dd.train, dev)
        print(f"\ndata path ({what}, {len(dls.train_ds)} training images, bs {a.data_bs}, pad-crop-flip):")
        print(f"  fastai per-image loader: {pil:9.0f} img/s")
        print(f"  device-resident batches: {devr:9.0f} img/s (built in {build:.1f} s)")
        for key, c in res.items():
            m, w, bs, pr, cl, comp = key
            if m.startswith('arat') and pr == a.precisions[0] and cl == 'off' and not comp:
                tr = bs / c.med
                print(f"  AR-AT width {w} bs {bs} trains {tr:.0f} img/s: fastai loader {pil / tr:.1f}x, device batches {devr / tr:.1f}x training")
    print(f"\ntotal wall time {time.perf_counter() - t0:.0f} s")

if __name__ == '__main__': main(args)
