"""What one training step asks of the device, arat against the authors' public code, counted side by side in one run.

A GPU step at the paper's batch size 128 is bound by kernel launches and host work, so the first question about a speed gap
is whether arat launches more work. This script counts, for one training step of each variant on the same random batch:
- the aten operators dispatched (on CUDA each is about one kernel launch), by `TorchDispatchMode`;
- convolutions, convolution backwards that compute weight gradients, and batch norms: the step's arithmetic;
- operators that read a tensor's value on the host (`_local_scalar_dense`, `is_nonzero`, `item`): a CUDA sync each.
  Reads of a tensor's values without an operator (`.tolist()` on the CPU) are not seen here: the arat step has one,
  the pixel-range check of `pgd`, which `rg -n tolist arat/attacks.py` shows;
- the Python function calls, and the time spent in Python functions' own code, by `cProfile` (host work the device
  waits for when the step is launch-bound; the time is this machine's and includes cProfile's overhead).
The counts do not depend on the batch size or on the machine (the default, 4 images, keeps the run short on a CPU).

With `--profile` it times the steps instead, under `torch.profiler` (for a GPU: `--device cuda --bs 128`): per step the
wall time, the time the device spent in kernels, the share it sat idle, and the kernel launches and host syncs the CUDA
runtime saw. Where arat's wall time exceeds the authors' with the same kernel time, the gap is host work.

Variants: the authors' AR-AT and PGD-AT steps exactly as ../shared/anchors/time_official.py composes them; arat's PGD-AT
and AR-AT (two passes, one forward) as `arat_learner` builds them (PGD-10 in train mode, γ 30 without auto-balance, SGD),
inside `fit`, from the first callback's `before_batch` to the last one's `after_batch`.

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

def sync(dev):
    if dev.type == 'cuda': torch.cuda.synchronize(dev)

def _kernel_us(e):
    return getattr(e, 'self_device_time_total', None) or getattr(e, 'self_cuda_time_total', 0) or 0

def profiled(run, n, dev):
    "Wall ms, kernel ms, idle share, kernel launches, host syncs and memory copies per step of `run(n)` (`n` steps) under `torch.profiler`."
    acts = [torch.profiler.ProfilerActivity.CPU] + ([torch.profiler.ProfilerActivity.CUDA] if dev.type == 'cuda' else [])
    with torch.profiler.profile(activities=acts) as prof:
        sync(dev); t = time.perf_counter(); run(n); sync(dev); wall = (time.perf_counter() - t) / n
    ev = prof.key_averages()
    count = lambda *names: sum(e.count for e in ev if e.key in names)
    kern = sum(_kernel_us(e) for e in ev) / 1e3 / n if dev.type == 'cuda' else float('nan')
    return dict(wall_ms=round(1e3 * wall, 2), kernel_ms=round(kern, 2), idle_pct=round(100 * (1 - kern / (1e3 * wall)), 1),
                launches=count('cudaLaunchKernel', 'cuLaunchKernel', 'cudaLaunchKernelExC', 'cuLaunchKernelEx') / n,
                syncs=max(0, count('cudaStreamSynchronize', 'cudaDeviceSynchronize', 'cudaEventSynchronize') - 2) / n,   # not the timer's 2
                memcpys=count('cudaMemcpyAsync', 'cudaMemcpy') / n)

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
    "`{variant: (Learner, marks)}` of arat's steps on `n_batches` fixed random batches (shuffled each epoch, pad-crop-flip); `marks`: see `_marks`."
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from fastai.callback.progress import ProgressCallback
    from fastai.data.core import DataLoaders
    from fastai.data.transforms import IntToFloatTensor
    from arat.all import DeviceImageDL, PadCropFlip, arat_learner, cifar_resnet18
    g = torch.Generator().manual_seed(0)
    x, y = torch.randint(0, 256, (bs * n_batches, 3, 32, 32), generator=g, dtype=torch.uint8), torch.randint(0, 10, (bs * n_batches,), generator=g)
    res = {}
    for name, method, kw in ARAT_VARIANTS:
        torch.manual_seed(0)
        dls = DataLoaders(DeviceImageDL(x.to(dev), y.to(dev), bs=bs, shuffle=True, drop_last=True, after_batch=[IntToFloatTensor(), PadCropFlip(seed=0)]),
                          DeviceImageDL(x[:bs].to(dev), y[:bs].to(dev), bs=bs, split_idx=1), device=dev)
        marks = _marks()
        learn = arat_learner(dls, cifar_resnet18(10).to(dev), method=method, lr=0.01, robust_n=0, auto_balance=False, steps=10,
                             attack_mode='train', cbs=marks, **kw)
        learn.remove_cb(ProgressCallback); learn.logger = lambda *_: None
        res[name] = learn, marks[0]
    return res

def _marks():
    "Callbacks that call `start.on()` at the first `before_batch` and `start.off()` at the last `after_batch` of each training batch, and skip validation."
    from fastai.callback.core import Callback, CancelValidException
    class Start(Callback):
        order, run_valid = -1000, False
        def __init__(self): self.on, self.off = None, None
        def before_batch(self): self.on and self.on()
        def before_validate(self): raise CancelValidException()
    class End(Callback):
        order, run_valid = 1000, False
        def __init__(self, s): self.s = s
        def after_batch(self): self.s.off and self.s.off()
    s = Start(); return [s, End(s)]

def count_all(a, root):
    "Operator counts and Python cost of one step of every variant."
    res = {}
    for name, step in (official_steps(root, a.bs, torch.device('cpu')).items() if root else ()):
        step(); pr = cProfile.Profile()
        with Count() as c: step()
        pr.enable(); step(); pr.disable()   # apart: under `Count` every operator makes Python calls too
        res[name] = c.c | py_cost(pr)
    for name, (learn, s) in arat_learners(a.bs, torch.device('cpu'), 1).items():
        out = {}
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
    "Wall and kernel time, launches and syncs per step of every variant, under torch.profiler."
    dev, res = torch.device(a.device), {}
    for name, step in (official_steps(root, a.bs, dev).items() if root else ()):
        for _ in range(3): step()
        res[name] = profiled(lambda n: [step() for _ in range(n)], a.steps, dev)
    for name, (learn, _) in arat_learners(a.bs, dev, a.steps).items():
        learn.fit(1)   # warm-up (cuDNN, allocator)
        res[name] = profiled(lambda n: learn.fit(1), a.steps, dev)   # one epoch = `steps` batches; includes the fit's own set-up
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
