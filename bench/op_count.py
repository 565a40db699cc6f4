"""What one training step asks of the device, arat against the authors' public code, counted side by side in one run.

A GPU step at the paper's batch size 128 is bound by kernel launches and host work, so the first question about a speed gap
is whether arat launches more work. This script counts, for one training step of each variant on the same random batch:
- the aten operators dispatched (on CUDA each is about one kernel launch), by `TorchDispatchMode`;
- convolutions, convolution backwards that compute weight gradients, and batch norms: the step's arithmetic;
- operators that read a tensor's value on the host (`_local_scalar_dense`, `is_nonzero`, `item`): a CUDA sync each.
  Reads of a tensor's values without an operator (`.tolist()` on the CPU) are not seen here; arat's attack makes one,
  `pgd`'s range check, on the first batch of each epoch only, so the counted step (an epoch's second) has none;
- the Python function calls, and the time spent in Python functions' own code, by `cProfile` (host work the device
  waits for when the step is launch-bound; the time is this machine's and includes cProfile's overhead).
The counts do not depend on the batch size or on the machine (the default, 4 images, keeps the run short on a CPU).

With `--profile` it times the steps instead, under `torch.profiler` (for a GPU: `--device cuda --bs 128`): per step the
wall time, the time the device spent in kernels, the share it sat idle, and the kernel launches and host syncs the CUDA
runtime saw, measured for both codes the same way: the profiler records each step alone (a schedule steps it at the
step's start and end), and the wall time runs between two syncs. Where arat's wall time exceeds the authors' with the
same kernel time, the gap is host work.

Variants: the authors' AR-AT and PGD-AT steps exactly as ../shared/anchors/time_official.py composes them; arat's PGD-AT
and AR-AT (two passes, one forward) as `arat_learner` builds them (PGD-10 in train mode, γ 30 without auto-balance, SGD),
inside `fit`, from the first callback's `before_batch` to the last one's `after_batch` (as `fast_bench.py` times them,
whose loaders it shares: fixed random batches with pad-crop-flip, fetched outside the step).

usage: python bench/op_count.py [--bs 4] [--official DIR] [--threads 2] [--profile --device cuda --bs 128 --steps 10]
"""
import argparse, os, sys, time, types, statistics, collections, cProfile, pstats, warnings
from pathlib import Path

def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--bs', type=int, default=None, help='batch size (default: 4 when counting, 128 with --profile; counts do not depend on it)')
    p.add_argument('--official', default=None, help="the authors' code (default: shared/anchors/ar-at-official or ../shared/...)")
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--profile', action='store_true', help='time the steps under torch.profiler instead of counting')
    p.add_argument('--device', default='cpu', help="--profile: 'cpu' or 'cuda'")
    p.add_argument('--steps', type=int, default=10, help='--profile: steps timed per variant (after 3 to warm up)')
    a = p.parse_args(argv)
    a.bs = a.bs or (128 if a.profile else 4)
    return a

a = parse_args() if __name__ == '__main__' else None
if a is not None: os.environ['OMP_NUM_THREADS'] = str(a.threads); os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
import torch, torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))   # arat from this checkout
import fast_bench as fb   # its loaders and its sync; its arguments are parsed only when it is the script
from fast_bench import sync
warnings.filterwarnings('ignore')

class Count(TorchDispatchMode):
    "Counts of the aten operators dispatched inside the block, and of the kinds below."
    def __init__(self): super().__init__(); self.c = collections.Counter()
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        n = func.overloadpacket.__name__; c = self.c; c['ops'] += 1
        if n == 'convolution': c['conv'] += 1
        if n == 'convolution_backward': c['conv_bwd'] += 1; c['conv_bwd_weight'] += bool(args[-1][1])
        if n in ('native_batch_norm', '_native_batch_norm_legit', 'cudnn_batch_norm'): c['bn'] += 1
        if n in ('_local_scalar_dense', 'is_nonzero', 'item'): c['host_reads'] += 1
        return func(*args, **(kwargs or {}))

def py_cost(pr):
    "Python calls, and the milliseconds spent in Python functions' own code (built-ins and torch's C++ excluded)."
    st = pstats.Stats(pr)
    return {'py_calls': st.total_calls, 'py_ms': round(1e3 * sum(v[2] for (f, _, _), v in st.stats.items() if f != '~'), 1)}

class Spans:
    "`torch.profiler` recording only between `on()` and `off()` (one step each), and the wall time between syncs there."
    def __init__(self, dev): self.dev, self.traces, self.walls = dev, [], []
    def __enter__(self):
        acts = [torch.profiler.ProfilerActivity.CPU] + ([torch.profiler.ProfilerActivity.CUDA] if self.dev.type == 'cuda' else [])
        self.prof = torch.profiler.profile(activities=acts, schedule=torch.profiler.schedule(wait=1, warmup=0, active=1),
                                           on_trace_ready=lambda p: self.traces.append(p.key_averages()))
        self.prof.__enter__(); return self
    def on(self): sync(self.dev); self.prof.step(); self.t = time.perf_counter()
    def off(self): sync(self.dev); self.walls.append(time.perf_counter() - self.t); self.prof.step()
    def __exit__(self, *exc): self.prof.__exit__(*exc)
    def summary(self):
        "Per step: median wall ms, and means of kernel ms, idle share, launches, syncs (not `off`'s own) and memory copies."
        n, ev = len(self.traces), [e for t in self.traces for e in t]
        count = lambda *names: sum(e.count for e in ev if e.key in names) / n
        kern = sum(e.self_device_time_total for e in ev if e.device_type == torch.autograd.DeviceType.CUDA) / 1e3 / n \
            if self.dev.type == 'cuda' else float('nan')   # the kernels alone: their time is also on the ops that launched them
        wall = 1e3 * statistics.median(self.walls)
        return dict(wall_ms=round(wall, 2), kernel_ms=round(kern, 2), idle_pct=round(100 * (1 - kern / wall), 1),
                    launches=count('cudaLaunchKernel', 'cuLaunchKernel', 'cudaLaunchKernelExC', 'cuLaunchKernelEx'),
                    syncs=count('cudaStreamSynchronize', 'cudaDeviceSynchronize', 'cudaEventSynchronize') - (self.dev.type == 'cuda'),
                    memcpys=count('cudaMemcpyAsync', 'cudaMemcpy'))

def official_steps(root, bs, dev):
    "The authors' AR-AT and PGD-AT steps, composed as time_official.py does, on a fixed random batch."
    sys.path.insert(0, str(root))
    from models.load_model import load_model
    from loss import AlignLoss
    from attacks import PGD_linf
    torch.manual_seed(0)
    layers = "layer4.0.bn1,layer4.0.bn2,layer4.1.bn1,layer4.1.bn2".split(',')
    args = types.SimpleNamespace(bn_names=['clean', 'adv'])
    net = load_model(args, 'cifar_resnet18_split_bn', 10, extract_layers=layers).to(dev)
    x, y = torch.rand(bs, 3, 32, 32, device=dev), torch.randint(0, 10, (bs,), device=dev)
    net.train(); net.model.set_bn_name('adv')
    with torch.no_grad(): _, feats = net(x, get_feat=True, bn_name='adv')
    net.model.reset_bn_name()
    align = {k: AlignLoss(args, is_use_predictor_x=True, feat_dim=v.shape[1], hidden_dim=v.shape[1] // 4).to(dev) for k, v in feats.items()}
    opt = torch.optim.SGD(list(net.parameters()) + [q for m in align.values() for q in m.parameters()], 0.1, momentum=0.9, weight_decay=5e-4)
    attack = PGD_linf(8/255, 10, 2/255)
    def adv(bx): net.model.set_bn_name('adv'); xa = attack(net, bx, y); net.model.reset_bn_name(); return xa
    def arat_step():
        bx = x.clone(); xa = adv(bx)
        lc, fc = net(bx, get_feat=True, bn_name='clean'); la, fa = net(xa, get_feat=True, bn_name='adv')
        loss = 0.5 * F.cross_entropy(la, y) + 0.5 * F.cross_entropy(lc, y)
        for k in layers: loss = loss + align[k](fa[k], fc[k]) * 30 / len(layers)
        opt.zero_grad(); loss.backward(); opt.step()
    def at_step():
        xa = adv(x.clone()); loss = F.cross_entropy(net(xa, bn_name='adv'), y)
        opt.zero_grad(); loss.backward(); opt.step()
    sys.path.remove(str(root))
    for m in [k for k in sys.modules if k.split('.')[0] in ('models', 'loss', 'attacks', 'utils')]: del sys.modules[m]   # before arat's imports
    return {'official AR-AT': arat_step, 'official PGD-AT': at_step}

ARAT_VARIANTS = [('arat PGD-AT', 'at', {}), ('arat AR-AT, two passes', 'arat', dict(single_forward=False)),
                 ('arat AR-AT, one forward', 'arat', dict(single_forward=True))]

def arat_learners(bs, dev, n_batches):
    "`{variant: (Learner, marks)}` of arat's steps on `fast_bench`'s loaders of `n_batches` batches; `marks`: see `_marks`."
    from fastai.callback.progress import ProgressCallback
    from arat.all import arat_learner, cifar_resnet18
    res = {}
    for name, method, kw in ARAT_VARIANTS:
        torch.manual_seed(0); marks = _marks()
        learn = arat_learner(fb.fake_dls(bs, n_batches, dev, 0), cifar_resnet18(10).to(dev), method=method, lr=0.01, robust_n=0,
                             auto_balance=False, steps=10, attack_mode='train', cbs=marks, **kw)
        learn.remove_cb(ProgressCallback); learn.logger = lambda *_: None
        res[name] = learn, marks[0]
    return res

def _marks():
    "`[start, end]`: `start.on()` at a training batch's first `before_batch`, `start.off()` at its last `after_batch` (batch `start.at` only, if set); no validation."
    from fastai.callback.core import Callback, CancelValidException
    class Start(Callback):
        order, run_valid = -1000, False
        def __init__(self): self.on = self.off = self.at = None
        def _now(self): return self.at is None or self.learn.iter == self.at
        def before_batch(self): self.on and self._now() and self.on()
        def before_validate(self): raise CancelValidException()
    class End(Callback):
        order, run_valid = 1000, False
        def __init__(self, s): self.s = s
        def after_batch(self): self.s.off and self.s._now() and self.s.off()
    s = Start(); return [s, End(s)]

def count_all(a, root):
    "Operator counts and Python cost of one step of every variant."
    res = {}
    for name, step in (official_steps(root, a.bs, torch.device('cpu')).items() if root else ()):
        step(); pr = cProfile.Profile()
        with Count() as c: step()
        pr.enable(); step(); pr.disable()   # apart: under `Count` every operator makes Python calls too
        res[name] = c.c | py_cost(pr)
    for name, (learn, s) in arat_learners(a.bs, torch.device('cpu'), 2).items():
        out, s.at = {}, 1   # an epoch's second batch: a steady step (the first reads the data's ranges)
        learn.fit(1)                                                   # warm-up
        mode = Count()
        s.on, s.off = mode.__enter__, lambda: mode.__exit__(None, None, None)
        learn.fit(1); out |= mode.c
        pr = cProfile.Profile(); s.on, s.off = pr.enable, pr.disable
        learn.fit(1); out |= py_cost(pr)
        res[name] = out
    cols = ['ops', 'conv', 'conv_bwd', 'conv_bwd_weight', 'bn', 'host_reads', 'py_calls', 'py_ms']
    return res, cols

def profile_all(a, root):
    "Wall and kernel time, launches and syncs per step of every variant, under torch.profiler, one step at a time."
    dev, res = torch.device(a.device), {}
    for name, step in (official_steps(root, a.bs, dev).items() if root else ()):
        for _ in range(3): step()
        with Spans(dev) as sp:
            for _ in range(a.steps): sp.on(); step(); sp.off()
        res[name] = sp.summary()
    for name, (learn, s) in arat_learners(a.bs, dev, a.steps + 1).items():
        learn.fit(1)   # warm-up (cuDNN, allocator)
        with Spans(dev) as sp:
            s.on, s.off, s.at = sp.on, sp.off, None
            learn.fit(1)
        sp.walls, sp.traces = sp.walls[1:], sp.traces[1:]   # not the epoch's first step, which reads the data's ranges
        res[name] = sp.summary()
    return res, ['wall_ms', 'kernel_ms', 'idle_pct', 'launches', 'syncs', 'memcpys']

def main(a):
    torch.set_num_threads(a.threads)
    root = next((Path(c) for c in [a.official, 'shared/anchors/ar-at-official', '../shared/anchors/ar-at-official'] if c and Path(c).is_dir()), None)
    if not root: print("the authors' code was not found (pass --official DIR); arat's figures only")
    res, cols = (profile_all if a.profile else count_all)(a, root)
    what = f"{a.steps} profiled steps on {a.device}" if a.profile else 'one training step, counted'
    print(f"{what}, batch {a.bs}, ResNet-18 (width 64), PGD-10; torch {torch.__version__}\n")
    print(f"| variant | {' | '.join(cols)} |\n|---|{'---|' * len(cols)}")
    for k, c in res.items(): print(f"| {k} | {' | '.join(str(c.get(col, 0)) for col in cols)} |")
    key = 'wall_ms' if a.profile else 'ops'
    for mine, theirs in [('arat PGD-AT', 'official PGD-AT'), ('arat AR-AT, two passes', 'official AR-AT'), ('arat AR-AT, one forward', 'official AR-AT')]:
        if theirs in res:
            extra = f", Python calls {res[mine]['py_calls'] / res[theirs]['py_calls']:.2f}" if not a.profile else \
                    (f", kernel time {res[mine]['kernel_ms'] / res[theirs]['kernel_ms']:.2f}" if a.device == 'cuda' else '')
            print(f"{mine} / {theirs}: {key} {res[mine][key] / res[theirs][key]:.2f}{extra}")
    return res

if __name__ == '__main__': main(a)
