"""Time one training step of plain training, PGD-AT and AR-AT, bare PyTorch vs fastai, on the same model and batch.

Variants (each on its own copy of the same seeded CIFAR ResNet-18, the same fixed batch of random [0,1] images):

  plain        bare loop: CE(f(x)) -> backward -> torch.optim.SGD step
  pgdat        bare loop: x' = pgd(steps, attack_mode='train'); CE(f(x')) -> backward -> step
  pgdat_fastai Learner(dls, model, cbs=ATCallback(...)), one batch per fit, timed inside fit
  arat         bare loop: pgd (taps off) -> f(x') main BNs (taps on) -> f_aux(x) aux BNs -> arat_loss -> backward -> step
  arat_fastai  Learner(dls, model, cbs=ARATCallback(...)), one batch per fit, timed inside fit

fastai timing: a callback with the lowest order stamps `before_batch` and one with the highest order stamps `after_batch`
(CUDA synchronised at both), so the span holds everything fastai does for a training batch (every callback event,
the attack, forward, loss, the finiteness check, backward, optimizer step, zero_grad, Recorder) but neither the
DataLoader fetch nor per-fit work (optimizer creation, hook installation, validation, which is skipped). The per-fit
overhead is printed separately. Repeats are interleaved (round-robin, order rotated each round) so machine noise hits
every variant alike. See bench/README.md.
"""
import argparse, os, sys, time

def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--widths', type=int, nargs='+', default=[16, 64], help='ResNet-18 base widths')
    p.add_argument('--bs', type=int, default=128, help='batch size')
    p.add_argument('--repeats', type=int, nargs='+', default=[5, 2],
                   help='measured rounds: one value for every width, or one per width')
    p.add_argument('--warmup', type=int, nargs='+', default=[1, 0],
                   help='unmeasured rounds before measuring: one value, or one per width')
    p.add_argument('--device', default='cpu', help="'cpu' or 'cuda'")
    p.add_argument('--threads', type=int, default=2, help='torch intra-op threads (and OMP_NUM_THREADS)')
    p.add_argument('--steps', type=int, default=10, help='PGD steps of the training attack')
    p.add_argument('--variants', nargs='+', default=['plain', 'pgdat', 'pgdat_fastai', 'arat', 'arat_fastai'],
                   help='which variants to time')
    p.add_argument('--opt', choices=['fastai', 'torch'], default='torch',
                   help="optimizer of the fastai variants: torch.optim.SGD via OptimWrapper, as arat_learner builds it, or fastai's own SGD")
    p.add_argument('--lr', type=float, default=0.01, help='learning rate (small: random labels)')
    p.add_argument('--seed', type=int, default=0)
    a = p.parse_args(argv)
    for k in ('repeats', 'warmup'):
        v = getattr(a, k)
        if len(v) == 1: v = v * len(a.widths)
        if len(v) < len(a.widths): p.error(f"--{k} takes one value or one per width ({len(a.widths)}), got {v}")
        setattr(a, k, v[:len(a.widths)])
    bad = set(a.variants) - {'plain', 'pgdat', 'pgdat_fastai', 'arat', 'arat_fastai'}
    if bad: p.error(f"unknown variants {sorted(bad)}")
    return a

args = parse_args() if __name__ == '__main__' else None
if args is not None:  # thread settings must precede the torch import
    os.environ['OMP_NUM_THREADS'] = str(args.threads)
    os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
    os.environ.setdefault('MKL_NUM_THREADS', str(args.threads))

import copy, platform, statistics, warnings
from functools import partial
import numpy as np, torch, torch.nn as nn, torch.nn.functional as F
warnings.filterwarnings('ignore', category=FutureWarning)
from fastai.learner import Learner
from fastai.callback.core import Callback, CancelValidException
from fastai.callback.progress import ProgressCallback
from fastai.data.core import DataLoaders
from fastai.data.load import DataLoader
from fastai.optimizer import SGD, OptimWrapper
from arat.models import cifar_resnet18
from arat.attacks import pgd
from arat.dualbn import convert_dual_bn, use_bn
from arat.features import FeatureTaps, default_taps, tap_dims
from arat.losses import attach_predictors, arat_loss
from arat.callbacks import ATCallback, ARATCallback

WD, MOM, GAMMA = 5e-4, 0.9, 30.

def sync(device):
    if device.type == 'cuda': torch.cuda.synchronize(device)

# ---------------------------------------------------------------- bare PyTorch steps
class PlainStep:
    "CE on the clean batch, one SGD step."
    def __init__(self, model, x, y, a):
        self.m, self.x, self.y = model.train(), x, y
        self.opt = torch.optim.SGD(model.parameters(), lr=a.lr, momentum=MOM, weight_decay=WD)
    def __call__(self):
        loss = F.cross_entropy(self.m(self.x), self.y)
        self.opt.zero_grad(set_to_none=True); loss.backward(); self.opt.step()

class PGDATStep(PlainStep):
    "PGD (train-mode BNs, as the public AR-AT code) then CE on x', one SGD step."
    def __init__(self, model, x, y, a): super().__init__(model, x, y, a); self.steps = a.steps
    def __call__(self):
        xa = pgd(self.m, self.x, self.y, steps=self.steps, attack_mode='train')
        loss = F.cross_entropy(self.m(xa), self.y)
        self.opt.zero_grad(set_to_none=True); loss.backward(); self.opt.step()

class ARATStep:
    "The AR-AT step of `ARATCallback` written as a bare loop: dual BN, FeatureTaps, predictors, arat_loss, torch SGD."
    def __init__(self, model, x, y, a):
        m = convert_dual_bn(model).train()
        spec = default_taps(m)
        attach_predictors(m, tap_dims(m, spec))
        self.taps = FeatureTaps(m, spec, attach=False)
        self.m, self.x, self.y, self.steps = m, x, y, a.steps
        self.opt = torch.optim.SGD(m.parameters(), lr=a.lr, momentum=MOM, weight_decay=WD)
    def __call__(self):
        m, x, y, taps = self.m, self.x, self.y, self.taps
        xa = pgd(m, x, y, steps=self.steps, attack_mode='train')       # main BNs, no hooks
        taps.attach()
        out_adv = m(xa); z_adv = taps.take()
        with use_bn(m, 'aux'): out_clean = m(x)
        z_clean = taps.take(); taps.remove()
        loss, _ = arat_loss(out_adv, out_clean, y, z_adv, z_clean, m.arat_predictors, 1., 1., GAMMA, True)
        self.opt.zero_grad(set_to_none=True); loss.backward(); self.opt.step()

# ---------------------------------------------------------------- fastai steps
class _Tic(Callback):
    "Stamp the start of each training batch (runs before every other callback)."
    order, run_valid = -1000, False
    def __init__(self, device): self.device = device
    def before_batch(self): sync(self.device); self.t0 = time.perf_counter()

class _Toc(Callback):
    "Stamp the end of each training batch (after every other callback); keep the spans."
    order, run_valid = 1000, False
    def __init__(self, tic, device): self.tic, self.device, self.spans = tic, device, []
    def after_batch(self): sync(self.device); self.spans.append(time.perf_counter() - self.tic.t0)

class _SkipValid(Callback):
    order = -1000
    def before_validate(self): raise CancelValidException()

class FastaiStep:
    "One `learn.fit(1)` over a one-batch epoch; returns the time of the batch measured inside fit."
    def __init__(self, model, x, y, a, method_cb, device):
        items = [(xi, yi) for xi, yi in zip(x.cpu(), y.cpu())]
        dls = DataLoaders(DataLoader(items, bs=len(items), shuffle=False, device=device),
                          DataLoader(items[:8], bs=8, device=device), device=device)
        opt_func = (partial(SGD, mom=MOM, wd=WD, decouple_wd=False) if a.opt == 'fastai'
                    else partial(OptimWrapper, opt=torch.optim.SGD, momentum=MOM, weight_decay=WD))
        self.tic = _Tic(device); self.toc = _Toc(self.tic, device)
        self.learn = Learner(dls, model, loss_func=nn.CrossEntropyLoss(), opt_func=opt_func, lr=a.lr, wd=WD,
                             wd_bn_bias=True, cbs=[method_cb, self.tic, self.toc, _SkipValid()])
        self.learn.remove_cb(ProgressCallback)
        self.learn.logger = lambda *_: None
        self.device, self.fit_times = device, []
    def __call__(self):
        n = len(self.toc.spans)
        sync(self.device); t = time.perf_counter()
        self.learn.fit(1)
        sync(self.device); self.fit_times.append(time.perf_counter() - t)
        assert len(self.toc.spans) == n + 1, 'expected exactly one training batch per fit'
        return self.toc.spans[-1]

# ---------------------------------------------------------------- driver
def make_variant(name, base, x, y, a, device):
    m = copy.deepcopy(base).to(device)
    if name == 'plain': return PlainStep(m, x, y, a)
    if name == 'pgdat': return PGDATStep(m, x, y, a)
    if name == 'arat': return ARATStep(m, x, y, a)
    if name == 'pgdat_fastai': return FastaiStep(m, x, y, a, ATCallback(steps=a.steps, attack_mode='train'), device)
    if name == 'arat_fastai':
        return FastaiStep(m, x, y, a, ARATCallback(steps=a.steps, attack_mode='train', gamma=GAMMA, alpha=1., beta=1.), device)
    raise ValueError(name)

def timed(step, device):
    sync(device); t = time.perf_counter()
    inner = step()
    sync(device); outer = time.perf_counter() - t
    return inner if inner is not None else outer

def q(v, p): return float(np.percentile(v, p))
def fmt(v): return f"{statistics.median(v):9.4f} s  IQR [{q(v,25):.4f}, {q(v,75):.4f}]"

RATIOS = [('arat', 'pgdat', 'AR-AT / PGD-AT (bare)', 1.15), ('arat_fastai', 'pgdat_fastai', 'AR-AT / PGD-AT (fastai)', 1.15),
          ('arat_fastai', 'arat', 'fastai / bare (AR-AT)', 1.05), ('pgdat_fastai', 'pgdat', 'fastai / bare (PGD-AT)', 1.05),
          ('pgdat', 'plain', 'PGD-AT / plain (bare)', None), ('arat', 'plain', 'AR-AT / plain (bare)', None)]

def bench_width(width, repeats, warmup, a, device):
    torch.manual_seed(a.seed)
    base = cifar_resnet18(width=width)
    g = torch.Generator().manual_seed(a.seed)
    x = torch.rand(a.bs, 3, 32, 32, generator=g).to(device)
    y = torch.randint(0, 10, (a.bs,), generator=g).to(device)
    steps = {v: make_variant(v, base, x, y, a, device) for v in a.variants}
    times = {v: [] for v in a.variants}
    t_start = time.perf_counter()
    order = list(a.variants)
    for r in range(warmup + repeats):
        k = r % len(order)
        for v in order[k:] + order[:k]:          # rotate so no variant always runs first or after the same one
            t = timed(steps[v], device)
            if r >= warmup: times[v].append(t)
        print(f"  [width {width}] round {r+1}/{warmup+repeats}{' (warm-up)' if r < warmup else ''} done, "
              f"{time.perf_counter()-t_start:.0f} s elapsed", file=sys.stderr, flush=True)
    wall = time.perf_counter() - t_start
    n_params = sum(p.numel() for p in base.parameters())
    print(f"\n== CIFAR ResNet-18 width {width} ({n_params/1e6:.2f} M params), batch {a.bs}, PGD-{a.steps}, "
          f"device {device}, {repeats} rounds (+{warmup} warm-up), {wall:.0f} s ==")
    print(f"{'variant':<14}{'median':>11}        IQR")
    for v in a.variants: print(f"{v:<14}{fmt(times[v])}")
    for v in a.variants:
        if v.endswith('_fastai'):
            ov = [f - s for f, s in zip(steps[v].fit_times[warmup:], times[v])]
            print(f"  ({v}: per-fit overhead outside the batch, not in the ratios: median {statistics.median(ov):.4f} s)")
    print(f"{'ratio':<26}{'of medians':>11}{'paired median [IQR]':>30}   target")
    res = {}
    for num, den, label, target in RATIOS:
        if num not in times or den not in times: continue
        rm = statistics.median(times[num]) / statistics.median(times[den])
        pr = [n / d for n, d in zip(times[num], times[den])]
        ok = '' if target is None else f"<= {target:.2f} {'ok' if rm <= target else 'MISSED'}"
        print(f"{label:<26}{rm:11.3f}{statistics.median(pr):14.3f} [{q(pr,25):.3f}, {q(pr,75):.3f}]   {ok}")
        res[label] = rm
    for s in steps.values():
        if isinstance(s, ARATStep): s.taps.remove()
    return times, res

def main(a):
    torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    if device.type == 'cuda' and not torch.cuda.is_available(): sys.exit('--device cuda: no CUDA device available')
    dev = torch.cuda.get_device_name(device) if device.type == 'cuda' else f"{platform.processor() or platform.machine()}, {a.threads} threads"
    print(f"step_bench: torch {torch.__version__}, {dev}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, "
          f"fastai optimizer: {a.opt}")
    t0 = time.perf_counter()
    for w, r, wu in zip(a.widths, a.repeats, a.warmup): bench_width(w, r, wu, a, device)
    print(f"\ntotal wall time {time.perf_counter()-t0:.0f} s")

if __name__ == '__main__': main(args)
