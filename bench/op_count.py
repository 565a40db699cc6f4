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

Variants: the authors' AR-AT and PGD-AT steps exactly as ../shared/anchors/time_official.py composes them; arat's PGD-AT
and AR-AT (two passes, one forward) as `arat_learner` builds them (PGD-10 in train mode, γ 30 without auto-balance, SGD),
one batch inside `fit`, counted from the first callback's `before_batch` to the last one's `after_batch`.

usage: python bench/op_count.py [--bs 4] [--official DIR] [--threads 2]
"""
import argparse, os, sys, types, collections, cProfile, pstats, warnings
from pathlib import Path

p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
p.add_argument('--bs', type=int, default=4, help='batch size (the counts do not depend on it)')
p.add_argument('--official', default=None, help='the authors\' code (default: shared/anchors/ar-at-official or ../shared/...)')
p.add_argument('--threads', type=int, default=2)
a = p.parse_args()
os.environ['OMP_NUM_THREADS'] = str(a.threads); os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
import torch, torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode
warnings.filterwarnings('ignore'); torch.set_num_threads(a.threads)

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

def counted(step):
    "Operator counts and Python calls of a call of `step` (after one call to warm up), from two calls."
    step(); pr = cProfile.Profile()
    with Count() as c: step()
    pr.enable(); step(); pr.disable()   # apart: under `Count` every operator makes Python calls too
    return c.c | py_cost(pr)

def official_steps(root):
    "The authors' AR-AT and PGD-AT steps, composed as time_official.py does."
    sys.path.insert(0, str(root))
    from models.load_model import load_model
    from loss import AlignLoss
    from attacks import PGD_linf
    torch.manual_seed(0)
    layers = "layer4.0.bn1,layer4.0.bn2,layer4.1.bn1,layer4.1.bn2".split(',')
    args = types.SimpleNamespace(bn_names=['clean', 'adv'])
    net = load_model(args, 'cifar_resnet18_split_bn', 10, extract_layers=layers)
    x, y = torch.rand(a.bs, 3, 32, 32), torch.randint(0, 10, (a.bs,))
    net.train(); net.model.set_bn_name('adv')
    with torch.no_grad(): _, feats = net(x, get_feat=True, bn_name='adv')
    net.model.reset_bn_name()
    align = {k: AlignLoss(args, is_use_predictor_x=True, feat_dim=v.shape[1], hidden_dim=v.shape[1] // 4) for k, v in feats.items()}
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
    res = {'official AR-AT': counted(arat_step), 'official PGD-AT': counted(at_step)}
    sys.path.remove(str(root))
    for m in [k for k in sys.modules if k.split('.')[0] in ('models', 'loss', 'attacks', 'utils')]: del sys.modules[m]   # before arat's imports
    return res

def arat_counts():
    "arat's PGD-AT and AR-AT steps, one batch inside `fit` each."
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from fastai.callback.core import Callback, CancelValidException
    from fastai.callback.progress import ProgressCallback
    from fastai.data.core import DataLoaders
    from fastai.data.transforms import IntToFloatTensor
    from arat.all import DeviceImageDL, PadCropFlip, arat_learner, cifar_resnet18
    class Start(Callback):
        order, run_valid = -1000, False
        def __init__(self): self.res, self.ops = {}, True   # `ops`: count the operators, else profile the Python calls
        def before_batch(self):
            if self.ops: self.mode = Count().__enter__()
            else: self.prof = cProfile.Profile(); self.prof.enable()
        def before_validate(self): raise CancelValidException()
    class End(Callback):
        order, run_valid = 1000, False
        def __init__(self, s): self.s = s
        def after_batch(self):
            s = self.s
            if s.ops: s.mode.__exit__(None, None, None); s.res |= s.mode.c
            else: s.prof.disable(); s.res |= py_cost(s.prof)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randint(0, 256, (a.bs, 3, 32, 32), generator=g, dtype=torch.uint8), torch.randint(0, 10, (a.bs,), generator=g)
    res = {}
    for name, method, kw in [('arat PGD-AT', 'at', {}), ('arat AR-AT, two passes', 'arat', dict(single_forward=False)),
                             ('arat AR-AT, one forward', 'arat', dict(single_forward=True))]:
        torch.manual_seed(0); s = Start()
        dls = DataLoaders(DeviceImageDL(x, y, bs=a.bs, shuffle=True, after_batch=[IntToFloatTensor(), PadCropFlip(seed=0)]),
                          DeviceImageDL(x, y, bs=a.bs, split_idx=1), device='cpu')
        learn = arat_learner(dls, cifar_resnet18(10), method=method, lr=0.01, robust_n=0, auto_balance=False, steps=10,
                             attack_mode='train', cbs=[s, End(s)], **kw)
        learn.remove_cb(ProgressCallback); learn.logger = lambda *_: None
        learn.fit(1); learn.fit(1); s.ops = False; learn.fit(1)   # the second fit's batch: operators; the third's: Python calls
        res[name] = s.res
    return res

root = next((Path(c) for c in [a.official, 'shared/anchors/ar-at-official', '../shared/anchors/ar-at-official'] if c and Path(c).is_dir()), None)
res = official_steps(root) if root else {}
if not root: print("the authors' code was not found (pass --official DIR); arat's counts only")
res |= arat_counts()
cols = ['ops', 'conv', 'conv_bwd', 'conv_bwd_weight', 'bn', 'host_reads', 'py_calls', 'py_ms']
print(f"one training step, batch {a.bs}, ResNet-18 (width 64), PGD-10; torch {torch.__version__}\n")
print(f"| variant | {' | '.join(cols)} |\n|---|{'---|' * len(cols)}")
for k, c in res.items(): print(f"| {k} | {' | '.join(str(c.get(col, 0)) for col in cols)} |")
for mine, theirs in [('arat PGD-AT', 'official PGD-AT'), ('arat AR-AT, two passes', 'official AR-AT'), ('arat AR-AT, one forward', 'official AR-AT')]:
    if theirs in res: print(f"{mine} / {theirs}: ops {res[mine]['ops'] / res[theirs]['ops']:.2f}, Python calls {res[mine]['py_calls'] / res[theirs]['py_calls']:.2f}")
