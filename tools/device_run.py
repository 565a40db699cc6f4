#!/usr/bin/env python3
"""The paper's comparison in one GPU command (issue 23): install the carried wheels, unpack the carried CIFAR-10, smoke-check
every CUDA path, measure the speed, train PGD-AT and AR-AT (ResNet-18, all 50,000 images, the paper's recipe) for the same
E epochs, E chosen from the measured speed so that everything ends inside `--budget`, and evaluate both (clean and PGD-20
on every test image, standard AutoAttack on as many as fit). Everything goes to `--out` as it is made, so a run cut short
still leaves its figures, labelled as what they are.

    python3 tools/device_run.py --out "$OUT"                 # on the GPU machine (tools/DEVICE.md: the exact call)
    python tools/device_run.py --tiny --out /tmp/rehearsal   # the same code path on the CPU, in about a minute

Writes to --out: results/cifar10-resnet18-{at,arat}-<E>ep.json (or -<e>of<E>ep.json when training stopped early),
curves.csv and curves.png (clean and PGD-20 accuracy per epoch), device_run.json (smoke table, bench, plan, status) and
device_run.log (this output).
"""
import argparse, contextlib, importlib.util, json, math, os, platform, signal, socket, statistics, subprocess, sys, tarfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
T0 = time.time()
NEEDED = ('fastai', 'fastcore', 'fastprogress', 'fasttransform', 'plum', 'pyautoattack')   # what a bare GPU machine lacks
PAPER = dict(at=dict(clean=83.8, autoattack=42.4), arat=dict(clean=87.9, autoattack=49.2))   # ResNet-18, 100 epochs (README)

def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--out', default=os.environ.get('OUT') or 'device_out', help='output folder (default: $OUT)')
    p.add_argument('--tiny', action='store_true', help='CPU rehearsal: the embedded sample, width 8, 2 epochs, cheap AutoAttack')
    p.add_argument('--budget', type=float, help='seconds for the whole command, install included (default 530; tiny 240)')
    p.add_argument('--smoke-budget', type=float, help='seconds for the smoke checks (default 90)')
    p.add_argument('--bench-budget', type=float, help='seconds for the speed measurement (default 110)')
    p.add_argument('--compile-limit', type=float, help='seconds torch.compile of one step may take (default 60)')
    p.add_argument('--device', help='cuda or cpu (default: cuda if available; tiny: cpu)')
    p.add_argument('--wheels', default=str(ROOT/'.device'/'wheels'), help='wheels to install where fastai is missing')
    p.add_argument('--data', help="a cifar10.tgz in fastai's layout (default .device/cifar10.tgz; tiny: an archive of the embedded sample)")
    p.add_argument('--official', help='time_official.py (default .device/anchors/, then ../shared/anchors/)')
    p.add_argument('--work', default='/tmp/arat-device', help='scratch folder: installed packages, unpacked data')
    p.add_argument('--methods', default='at,arat')
    p.add_argument('--epochs', type=int, help='force E (default: chosen from the measured speed)')
    p.add_argument('--max-epochs', type=int, default=100)
    p.add_argument('--width', type=int); p.add_argument('--bs', type=int); p.add_argument('--lr', type=float, default=0.1)
    p.add_argument('--steps', type=int, help='PGD steps of the training attack (default 10, the paper)')
    p.add_argument('--n-train', type=int); p.add_argument('--n-valid', type=int)
    p.add_argument('--robust-n', type=int, help='test images of the per-epoch PGD-20 curve (default 500)')
    p.add_argument('--aa', help="AutoAttack version: standard (default) or cheap (tiny)")
    p.add_argument('--aa-min', type=int, help='AutoAttack images to aim for at least (default 500)')
    p.add_argument('--aa-iters', type=int, help="AutoAttack iterations (default: AutoAttack's; tiny 5)")
    p.add_argument('--train-compile', default='auto', choices=('auto', 'on', 'off'),
                   help='torch.compile the training: auto = when the smoke check passed and a compiled step was >= 1.2x faster')
    p.add_argument('--compile-imports', type=float, help="seconds allowed for the compile check's child process to import (default 20; tiny 5)")
    p.add_argument('--compile-backend', help='torch.compile backend (default inductor; tiny: aot_eager)')
    p.add_argument('--decode-workers', type=int, help='processes decoding the images for the device loader (default: CPU count, up to 16)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--reuse', help='an earlier device_run.json of this machine kind: take its smoke table and speed figures '
                                   'instead of measuring them again (a second call trains longer in the same device time)')
    p.add_argument('--eval-reserve', type=float, help='seconds kept after training for the evaluation (default: estimated from the speed)')
    p.add_argument('--compile-check', action='store_true', help=argparse.SUPPRESS)   # the smoke check's child process
    a = p.parse_args(argv)
    tiny = a.tiny
    if a.eval_reserve is not None and not a.eval_reserve >= 0: p.error(f'--eval-reserve must be >= 0 seconds, got {a.eval_reserve}')
    for k, full, small in [('budget', 530, 900), ('smoke_budget', 90, 40), ('bench_budget', 110, 20), ('compile_limit', 60, 5), ('compile_imports', 20, 5),
                           ('width', 64, 8), ('bs', 128, 16), ('steps', 10, 2), ('n_train', None, 192), ('n_valid', None, 64),
                           ('robust_n', 500, 32), ('aa', 'standard', 'cheap'), ('aa_min', 500, 32), ('aa_iters', None, 5),
                           ('compile_backend', 'inductor', 'aot_eager'), ('epochs', None, 2), ('device', None, 'cpu'),
                           ('decode_workers', min(os.cpu_count() or 1, 16), 2)]:
        if getattr(a, k) is None: setattr(a, k, small if tiny else full)
    return a

# ---------------------------------------------------------------- output: the log, atomic files, time limits
class Out:
    "The output folder: `say` prints and appends to device_run.log; `write` replaces a file atomically."
    def __init__(self, folder):
        self.dir = Path(folder); self.dir.mkdir(parents=True, exist_ok=True)
        self.log = open(self.dir/'device_run.log', 'a', buffering=1)
    def say(self, *a):
        s = ' '.join(map(str, a)); print(s, flush=True); self.log.write(s + '\n')
    def write(self, rel, data):
        f = self.dir/rel; f.parent.mkdir(parents=True, exist_ok=True)
        tmp = f.with_name(f.name + '.tmp'); tmp.write_bytes(data if isinstance(data, bytes) else data.encode()); os.replace(tmp, f)
        return f

class Timeout(Exception): pass

@contextlib.contextmanager
def time_limit(secs, what='it'):
    "Raise `Timeout` in the main thread after `secs` seconds (between Python bytecodes: GPU work queued so far finishes)."
    if secs is None: yield; return
    if secs <= 0.5: raise Timeout(f"no time left for {what}")
    msg, hit = f"{what} went over its {secs:.0f} s limit", []
    def _h(sig, frame): hit.append(1); raise Timeout(msg)
    old = signal.signal(signal.SIGALRM, _h); signal.setitimer(signal.ITIMER_REAL, secs, 1.)   # again each second, if code swallows it
    try: yield
    finally: signal.setitimer(signal.ITIMER_REAL, 0); signal.signal(signal.SIGALRM, old)
    if hit: raise Timeout(msg)   # it ran on after swallowing the alarm: still over its limit

def first_line(e):
    "One line naming the error (the time limit, where a library wrapped it)."
    c = e
    while c is not None and not isinstance(c, Timeout): c = c.__cause__ or c.__context__
    if c is not None: e = c
    lines = [l.strip() for l in str(e).splitlines() if l.strip() and not l.strip().startswith('Exception occured in')]
    return f"{type(e).__name__}: " + (lines[0][:300] if lines else '')

def left(a): return a.budget - (time.time() - T0)

# ---------------------------------------------------------------- stage 0: install what travels
def install(a, out):
    "Make fastai & co importable: already there (the CPU rehearsal), or installed from the carried wheels into --work."
    missing = [m for m in NEEDED if importlib.util.find_spec(m) is None]
    if missing:
        whl = sorted(Path(a.wheels).glob('*.whl'))
        if not whl: sys.exit(f"install: {', '.join(missing)} missing and no wheels in {a.wheels}; run tools/prepare_device.py "
                             "in the checkout and name .device in the run's carry list")
        site = Path(a.work)/'site'
        r = subprocess.run([sys.executable, '-m', 'pip', 'install', '-q', '--no-index', '--no-deps', '--no-compile', '--no-cache-dir',
                            '--disable-pip-version-check', '--upgrade', '--target', str(site), *map(str, whl)], capture_output=True, text=True)
        if r.returncode: sys.exit(f"install: pip failed (exit {r.returncode}): {(r.stderr or r.stdout).strip()[-800:]}")
        sys.path.insert(0, str(site)); importlib.invalidate_caches()
        os.environ['PYTHONPATH'] = os.pathsep.join([str(site), str(ROOT), os.environ.get('PYTHONPATH', '')]).rstrip(os.pathsep)
        out.say(f"install: {len(whl)} wheels into {site} ({time.time() - T0:.0f} s)")
    else: out.say(f"install: {', '.join(NEEDED)} already importable; nothing installed")
    if str(ROOT) not in sys.path: sys.path.insert(0, str(ROOT))
    return 'installed' if missing else 'present'

# ---------------------------------------------------------------- stage 1: the data
def tiny_archive(a):
    "An archive of the embedded CIFAR-10 sample in the real archive's layout (cifar10/train, cifar10/test)."
    from arat.data import sample_path
    f = Path(a.work)/'cifar10-sample.tgz'
    if not f.exists():
        f.parent.mkdir(parents=True, exist_ok=True)
        tmp = f.with_suffix('.tmp')
        with tarfile.open(tmp, 'w:gz') as t: t.add(sample_path(), arcname='cifar10')
        os.replace(tmp, f)
    return f

def unpack(archive, work):
    "The folder of the archive holding train/ and test/, extracted once under `work`."
    dest = Path(work)/('data-' + Path(archive).name.split('.')[0])
    done = dest/'.complete'
    if not done.exists():
        dest.mkdir(parents=True, exist_ok=True)
        with tarfile.open(archive) as t: t.extractall(dest, filter='data')
        done.write_text(str(Path(archive).stat().st_size))
    return next(p.parent for p in sorted(dest.rglob('train')) if p.is_dir() and (p.parent/'test').is_dir())

def parallel_stack_split(workers):
    "Decode the items for `device_dls` in `workers` processes (arat's `_stack_split` does it in one): same tensors, in order."
    import torch, arat.data as D
    from fastai.vision.all import RandTransform
    orig = D._stack_split
    class Items(torch.utils.data.Dataset):
        def __init__(self, dl): self.dl = dl
        def __len__(self): return len(self.dl.dataset)
        def __getitem__(self, i): x, y = self.dl.do_item(i); return x.as_subclass(torch.Tensor), y.as_subclass(torch.Tensor)
    def collate(b): return torch.stack([o[0] for o in b]), torch.stack([o[1] for o in b])
    def stack(dl, device):
        if workers < 2 or len(dl.dataset) < 256 or any(isinstance(t, RandTransform) for t in getattr(dl.after_item, 'fs', [])):
            return orig(dl, device)
        ld = torch.utils.data.DataLoader(Items(dl), batch_size=max(64, len(dl.dataset) // (4 * workers)), num_workers=workers, collate_fn=collate)
        xs, ys = zip(*ld)
        x, y = torch.cat(xs), torch.cat(ys)
        if x.dtype != torch.uint8: return orig(dl, device)
        return x.to(device), y.to(device)
    D._stack_split = stack
    return orig

def load_data(a, dev, out):
    from arat.all import cifar10_dls, device_dls, rng_states
    archive = Path(a.data) if a.data else (tiny_archive(a) if a.tiny else ROOT/'.device'/'cifar10.tgz')
    if not archive.exists(): sys.exit(f"data: {archive} not found; run tools/prepare_device.py (it copies ../shared/data/cifar10.tgz into .device/)")
    t = time.time(); folder = unpack(archive, a.work); tu = time.time() - t
    t = time.time()
    dls = cifar10_dls(folder, bs=a.bs, seed=a.seed, n_train=a.n_train, n_valid=a.n_valid, device=dev)
    tf = time.time() - t; t = time.time()
    parallel_stack_split(a.decode_workers)
    dd, err = None, None
    try: dd = device_dls(dls, dev)
    except Exception as e: err = first_line(e)
    td = time.time() - t
    out.say(f"data: {archive.name} -> {folder} ({tu:.0f} s), {len(dls.train_ds)} train / {len(dls.valid_ds)} test images, "
            f"fastai loaders {tf:.0f} s, device loaders {td:.0f} s ({a.decode_workers} decode workers)" + (f"; device loaders FAILED: {err}" if err else ''))
    return dict(archive=str(archive.name), folder=str(folder), dls=dls, dd=dd, dd_error=err, state=rng_states(dd) if dd is not None else None,
                n_train=len(dls.train_ds), n_test=len(dls.valid_ds), seconds=dict(unpack=round(tu, 1), fastai=round(tf, 1), device=round(td, 1)))

# ---------------------------------------------------------------- stage 2: smoke checks
def smoke(a, dev, data, out):
    "Every CUDA path once, each in its own time limit; a failure disables its feature for the training."
    import copy, torch, torch.nn as nn, torch.nn.functional as F, torch.distributed as dist
    from fastai.callback.core import Callback, CancelFitException
    from fastai.callback.progress import ProgressCallback
    from fastai.data.core import DataLoaders
    from fastai.data.transforms import IntToFloatTensor
    from fastai.torch_core import set_seed
    from arat.all import (arat_learner, cifar_resnet18, DeviceImageDL, convert_dual_bn, convert_sync_bn, CPUSyncBatchNorm, sum_over_processes,
                          collective_device, run_autoattack, rng_states, set_rng_states)
    cuda = dev.type == 'cuda'
    dd = data['dd']; src = dd if dd is not None else data['dls']
    n = min(a.bs, 128)
    xv = src.valid.x[:n] if dd is not None else None
    if xv is None:
        xb, yb = src.valid.one_batch(); xu, yu = (xb * 255).round().to(torch.uint8), yb
    else: xu, yu = xv, dd.valid.y[:n]
    xu, yu = xu.as_subclass(torch.Tensor).to(dev), yu.as_subclass(torch.Tensor).to(dev)
    x, y = xu.float() / 255, yu
    fixed = DataLoaders(DeviceImageDL(xu, yu, bs=n), DeviceImageDL(xu, yu, bs=n, split_idx=1), device=dev)

    def model(seed=0):
        torch.manual_seed(seed); return cifar_resnet18(10, width=a.width).to(dev)

    class Grab(Callback):
        "Keep the loss, gradients and state after the first backward, then stop (as 06_callbacks' test)."
        order = 100
        def after_backward(self):
            m = self.learn.model
            self.loss = self.learn.loss.item()
            self.grads = {k: p.grad.detach().clone() for k, p in m.named_parameters() if p.grad is not None}
            self.state = {k: v.detach().clone() for k, v in m.state_dict().items()}
            raise CancelFitException()

    def step(method='arat', seed=0, cbs=(), **kw):
        g = Grab()
        learn = arat_learner(fixed, model(seed), method=method, robust_n=0, auto_balance=False, steps=2, **kw)
        learn.remove_cb(ProgressCallback); learn.logger = lambda *_: None
        set_seed(1)
        learn.fit(1, lr=0.05, cbs=[*cbs, g])
        return g, learn

    @contextlib.contextmanager
    def exact():
        "cuDNN deterministic, no TF32: the one-forward comparison then holds to fp32 rounding, as on the CPU."
        b = torch.backends; old = (b.cudnn.deterministic, b.cudnn.benchmark, b.cudnn.allow_tf32, b.cuda.matmul.allow_tf32)
        b.cudnn.deterministic, b.cudnn.benchmark, b.cudnn.allow_tf32, b.cuda.matmul.allow_tf32 = True, False, False, False
        try: yield
        finally: b.cudnn.deterministic, b.cudnn.benchmark, b.cudnn.allow_tf32, b.cuda.matmul.allow_tf32 = old

    def rel(u, v): return ((u.double() - v.double()).abs().max() / v.double().abs().max().clamp_min(1e-30)).item()

    def one_forward():
        # in float64 (as 06_callbacks' test): in float32 the two routes' sums differ in their last bits, which reached
        # 8e-6 of a gradient's max on a CPU against the 1e-5 tolerance, and a CPU's vector width changes those bits
        from arat.test_utils import Float64
        with exact():
            one, _ = step(single_forward=True, cbs=[Float64()]); two, _ = step(single_forward=False, cbs=[Float64()])
        gerr = max(rel(one.grads[k], two.grads[k]) for k in two.grads)
        serr = max(rel(one.state[k], two.state[k]) for k in two.state if two.state[k].is_floating_point())
        lerr = abs(one.loss - two.loss) / abs(two.loss)
        ok = set(one.grads) == set(two.grads) and lerr <= 1e-5 and gerr <= 1e-5 and serr <= 1e-5
        return ok, dict(loss_rel=lerr, grad_rel_max=gerr, state_rel_max=serr, tolerance=1e-5)

    def amp(dtype):
        def f():
            dt = dict(bf16=torch.bfloat16, fp16=torch.float16)[dtype]
            m = model().train()
            xg = x.clone().requires_grad_(True)
            g32, = torch.autograd.grad(F.cross_entropy(m(xg), y), xg)
            xg = x.clone().requires_grad_(True)
            with torch.autocast(dev.type, dtype=dt): lo = F.cross_entropy(m(xg).float(), y)
            glp, = torch.autograd.grad(lo, xg)
            nz = g32 != 0
            agree = (torch.sign(glp) == torch.sign(g32))[nz].float().mean().item()
            # the first-order loss increase of a sign step along the low-precision gradient, as a share of fp32's own
            gain = ((torch.sign(glp) * g32).sum() / g32.abs().sum()).item()
            g, _ = step(precision=dtype)
            ok = gain >= 0.9 and math.isfinite(g.loss)   # fp16's first scaled gradients may overflow: GradScaler then skips the step
            return ok, dict(sign_agreement=round(agree, 4), sign_step_gain=round(gain, 4), threshold=0.9,
                            zero_grad_frac=round(1 - nz.float().mean().item(), 4), train_step_loss=round(g.loss, 4))
        return f

    def channels_last():
        if not cuda: return False, dict(note='CPU: DeviceChannelsLast leaves the model as it is (a GPU speed-up)')
        a0, _ = step(single_forward=True); a1, l1 = step(single_forward=True, channels_last=True)
        lrel = abs(a0.loss - a1.loss) / abs(a0.loss)
        nhwc = l1.model.conv1.weight.is_contiguous(memory_format=torch.channels_last)
        return lrel <= 1e-2 and nhwc, dict(loss_rel=lrel, tolerance=1e-2, weights_channels_last=nhwc)

    def device_loader():
        if dd is None: return False, dict(error=data['dd_error'])
        dls = data['dls']
        st_f, st_d = rng_states(dls), rng_states(dd)
        try:
            idx = torch.randperm(len(dls.train_ds), generator=torch.Generator().manual_seed(0))[:256].tolist()
            items = torch.stack([dls.train.do_item(i)[0].as_subclass(torch.Tensor) for i in idx]).to(dev)
            same_items = torch.equal(items, dd.train.x[idx])
            bf, bd = next(iter(dls.train)), next(iter(dd.train))
            same_train = torch.equal(bf[0], bd[0]) and torch.equal(bf[1], bd[1])
            vf, vd = next(iter(dls.valid)), next(iter(dd.valid))
            same_valid = torch.equal(vf[0], vd[0]) and torch.equal(vf[1], vd[1])
            def rate(dl, k):
                if cuda: torch.cuda.synchronize()
                t, m = time.time(), 0
                for i, (b, _) in enumerate(dl):
                    m += len(b)
                    if i + 1 >= k: break
                if cuda: torch.cuda.synchronize()
                return m / (time.time() - t)
            r_f, r_d = rate(dls.train, 10), rate(dd.train, 50)
        finally: set_rng_states(st_f, dls); set_rng_states(st_d, dd)
        return same_items and same_train and same_valid, dict(items_equal=same_items, first_train_batch_equal=same_train,
                                                              first_valid_batch_equal=same_valid, fastai_img_s=round(r_f), device_img_s=round(r_d))

    def sync_bn():
        with socket.socket() as s: s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]
        backend = 'nccl' if cuda else 'gloo'
        dist.init_process_group(backend, init_method=f'tcp://127.0.0.1:{port}', rank=0, world_size=1)
        try:
            m = model(); convert_dual_bn(m); m.train()
            sm = nn.SyncBatchNorm.convert_sync_batchnorm(copy.deepcopy(m)) if cuda else convert_sync_bn(copy.deepcopy(m))
            kind = next((type(b).__name__ for b in sm.modules() if isinstance(b, (nn.SyncBatchNorm, CPUSyncBatchNorm))), 'none')
            outs = []
            for net in (m, sm):
                lo = F.cross_entropy(net(x), y); lo.backward()
                outs.append((lo.item(), {k: p.grad.clone() for k, p in net.named_parameters() if p.grad is not None},
                             {k: v.clone() for k, v in net.state_dict().items()}))
            (l0, g0, s0), (l1, g1, s1) = outs
            gerr = max(rel(g1[k], g0[k]) for k in g0); serr = max(rel(s1[k], s0[k]) for k in s0 if s0[k].is_floating_point())
            sums = sum_over_processes(3.0, 4.0)
            t = torch.ones(4, device=collective_device()); dist.all_reduce(t)
            fig = dict(backend=backend, bn=kind, loss_rel=abs(l1 - l0) / abs(l0), grad_rel_max=gerr, state_rel_max=serr,
                       sum_over_processes=list(sums), all_reduce_ok=bool(t.eq(1).all()))
            ok = kind != 'none' and fig['loss_rel'] <= 1e-5 and gerr <= 1e-5 and serr <= 1e-5 and list(sums) == [3.0, 4.0] and fig['all_reduce_ok']
            if cuda:   # one process takes torch's plain-BN path; its synchronised kernel directly, with a world of 1
                try:
                    from torch.nn.modules._functions import SyncBatchNorm as SBN
                    bn = nn.BatchNorm2d(8).to(dev).train(); z = torch.randn(16, 8, 4, 4, device=dev, requires_grad=True)
                    rm, rv = bn.running_mean.clone(), bn.running_var.clone()
                    o1 = SBN.apply(z, bn.weight, bn.bias, rm, rv, bn.eps, 0.1, dist.group.WORLD, 1)
                    o0 = F.batch_norm(z, bn.running_mean.clone(), bn.running_var.clone(), bn.weight, bn.bias, True, 0.1, bn.eps)
                    fig['sync_kernel_rel'] = rel(o1, o0); ok = ok and fig['sync_kernel_rel'] <= 1e-4
                except Exception as e: fig['sync_kernel'] = f"not run: {first_line(e)}"
            return ok, fig
        finally: dist.destroy_process_group()

    def autoattack():
        m = model().eval(); k = min(64, len(x))
        xa = run_autoattack(m, x[:k], y[:k], version='cheap', n_iter=a.aa_iters or 20)
        with torch.no_grad(): c, r = (m(x[:k]).argmax(1) == y[:k]).float().mean().item(), (m(xa).argmax(1) == y[:k]).float().mean().item()
        dist_ = (xa - x[:k]).abs().max().item()
        ok = dist_ <= 8/255 + 1e-6 and xa.min() >= 0 and xa.max() <= 1 and r <= c
        return ok, dict(images=k, clean=c, robust=r, linf=round(dist_ * 255, 3))

    def compiled():
        "In a child process (killed at the limit: a compiler can swallow the alarm), with batches of random images."
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        lim = min(a.compile_limit + a.compile_imports, end - time.time())   # + the child's imports, which its figures leave out
        cmd = [sys.executable, str(Path(__file__).resolve()), '--compile-check', '--device', dev.type, '--width', str(a.width),
               '--bs', str(n), '--steps', str(a.steps), '--compile-backend', a.compile_backend, '--work', a.work, '--out', str(Path(a.work)/'compile-check')]
        try: r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=lim)
        except subprocess.TimeoutExpired: raise Timeout(f"torch.compile ({a.compile_backend}) did not finish within {lim:.0f} s (imports included); killed")
        got = [l for l in r.stdout.splitlines() if l.startswith('COMPILE_CHECK ')]
        if r.returncode or not got: raise RuntimeError(f"the compile check failed (exit {r.returncode}): {(r.stderr or r.stdout).strip().splitlines()[-1:]}")
        ok, fig = json.loads(got[-1].split(' ', 1)[1])
        if fig['first_step_s'] > a.compile_limit: ok, fig['note'] = False, f"first step over the {a.compile_limit:.0f} s limit"
        return ok, fig

    checks = [('one forward = two passes (AR-AT step)', 'single_forward', 30, one_forward),
              ('bf16 attack: input-gradient signs vs fp32', 'bf16', 20, amp('bf16')),
              ('fp16 attack: input-gradient signs vs fp32', 'fp16', 20, amp('fp16')),
              ('channels_last step vs contiguous', 'channels_last', 20, channels_last),
              ('device_dls vs the fastai loader', 'device_data', 30, device_loader),
              ('SyncBN and all_reduce, one process', 'sync_bn', 30, sync_bn),
              ('AutoAttack (cheap) on 64 images', 'autoattack', 30, autoattack),
              ('torch.compile of an AR-AT step', 'compile', a.compile_limit + a.compile_imports + 5, compiled)]
    end, rows = time.time() + a.smoke_budget, []
    for name, feat, lim, fn in checks:
        t = time.time(); figures, err = {}, None
        try:
            with time_limit(min(lim, end - time.time()), name): ok, figures = fn()
        except Exception as e: ok, err = False, first_line(e)
        if feat == 'compile':
            try: torch._dynamo.reset()   # whatever a cut compilation left behind
            except Exception: pass
        rows.append(dict(check=name, feature=feat, passed=bool(ok), seconds=round(time.time() - t, 1),
                         figures={k: (round(v, 7) if isinstance(v, float) else v) for k, v in figures.items()}, error=err))
        out.say(f"  {'PASS' if ok else 'FAIL'}  {name:<44} {rows[-1]['seconds']:6.1f} s  "
                + (err or ', '.join(f"{k}={v}" for k, v in rows[-1]['figures'].items())))
        if cuda: torch.cuda.empty_cache()
    return rows

def compile_check(a, dev):
    "Time eager and compiled AR-AT steps of the same seeded model on random batches; print the outcome as one JSON line."
    import torch
    import fastai.callback.core as C
    from fastai.callback.progress import ProgressCallback
    from fastai.data.core import DataLoaders
    from fastai.torch_core import set_seed
    from arat.all import arat_learner, cifar_resnet18, DeviceImageDL
    cuda = dev.type == 'cuda'
    class Times(C.Callback):
        order, run_valid = 1000, False
        def before_fit(self): self.ts = []
        def before_batch(self):
            if cuda: torch.cuda.synchronize()
            self.t = time.time()
        def after_batch(self):
            if cuda: torch.cuda.synchronize()
            self.ts.append(time.time() - self.t)
        def before_validate(self): raise C.CancelValidException()
    g = torch.Generator().manual_seed(0)
    xu = torch.randint(0, 256, (4 * a.bs, 3, 32, 32), generator=g, dtype=torch.uint8).to(dev)
    yu = torch.randint(0, 10, (4 * a.bs,), generator=g).to(dev)
    dls = DataLoaders(DeviceImageDL(xu, yu, bs=a.bs), DeviceImageDL(xu[:a.bs], yu[:a.bs], bs=a.bs, split_idx=1), device=dev)
    res = {}
    for comp in (False, a.compile_backend):
        tm = Times()
        torch.manual_seed(0)
        learn = arat_learner(dls, cifar_resnet18(10, width=a.width).to(dev), method='arat', robust_n=0, auto_balance=False,
                             steps=a.steps, compile=comp, cbs=tm)
        learn.remove_cb(ProgressCallback); learn.logger = lambda *_: None
        set_seed(1); learn.fit(1, lr=0.05)
        res[bool(comp)] = (tm.ts, [float(v) for v in learn.recorder.losses])
    (te, le), (tc, lc) = res[False], res[True]
    lrel = abs(lc[0] - le[0]) / abs(le[0])
    eager, compiled = statistics.median(te[1:]), statistics.median(tc[1:])
    fig = dict(backend=a.compile_backend, first_step_s=round(tc[0], 1), eager_ms=round(eager * 1e3, 1), compiled_ms=round(compiled * 1e3, 1),
               speedup=round(eager / compiled, 3), loss_rel=lrel, tolerance=2e-2)
    print('COMPILE_CHECK ' + json.dumps([lrel <= 2e-2, fig]), flush=True)

# ---------------------------------------------------------------- stage 3: speed
def bench(a, dev, feats, out):
    "The trimmed grid of bench/fast_bench.py and the authors' code (time_official.py) on the same device."
    spec = importlib.util.spec_from_file_location('fast_bench', ROOT/'bench'/'fast_bench.py')
    fb = importlib.util.module_from_spec(spec); spec.loader.exec_module(fb)
    precs = ['fp32'] + [p for p in ('bf16', 'fp16') if feats.get(p)][:1]
    script = a.official or next((str(p) for p in (ROOT/'.device'/'anchors'/'time_official.py', ROOT.parent/'shared'/'anchors'/'time_official.py',
                                                 ROOT/'shared'/'anchors'/'time_official.py') if p.exists()), 'not-found/time_official.py')
    bss = [a.bs] if a.tiny else [a.bs, 4 * a.bs]
    obs = ([2] if a.official else []) if a.tiny else bss   # tiny: the authors' code only when --official is given (it is width 64)
    argv = ['--trimmed', '--device', dev.type, '--widths', str(a.width), '--bs', *map(str, bss), '--methods', 'at', 'arat1', 'arat2',
            '--precisions', *precs, '--channels-last', *(['off', 'on'] if feats.get('channels_last') else ['off']),
            '--rounds', '2' if a.tiny else '3', '--per', '1' if a.tiny else '3', '--steps', str(a.steps),
            '--threads', str(int(os.environ.get('OMP_NUM_THREADS', '2'))), '--official-bs', *map(str, obs),
            '--official-n', '1' if a.tiny else '10', '--official-script', script, '--data', 'none', '--seed', str(a.seed)]
    fa = fb.parse_args(argv)
    t0 = time.time()
    fa.budget = max(5., a.bench_budget * 0.6)
    import torch
    torch.backends.cudnn.benchmark = dev.type == 'cuda'   # as the training will run
    try: res = fb.run_rounds(fb.grid(fa, dev), fa, log=out.say)
    finally: torch.backends.cudnn.benchmark = False
    rows = fb.rows(res); del res   # the bench's models and optimizers go
    if dev.type == 'cuda': torch.cuda.empty_cache()
    off = {} if obs else {'-': 'skipped: tiny mode without --official'}
    for bs in obs:
        o, msg = fb.official(fa, dev, bs, timeout=max(5., a.bench_budget - (time.time() - t0)))
        off[bs] = o if o is not None else msg
    for r in rows:
        o = off.get(r['bs'])
        if isinstance(o, dict) and r['width'] == 64:
            r['arat_over_official_throughput'] = round(o['AR-AT' if r['method'] != 'at' else 'PGD-AT'] / r['ms_step'], 3)
    out.say(f"  {'method':<7}{'bs':>5}{'prec':>6}{'ch_last':>8}{'ms/step':>9}{'img/s':>8}{'peak MiB':>9}{'AR-AT/PGD-AT':>13}{'/official':>10}")
    for r in rows:
        out.say(f"  {r['method']:<7}{r['bs']:>5}{r['precision']:>6}{r['channels_last']:>8}{r['ms_step']:9.1f}{r['img_s']:8.0f}"
                f"{str(r['peak_mib'] or '-'):>9}{str(r['arat_over_at'] or ''):>13}{str(r.get('arat_over_official_throughput', '')):>10}")
    for bs, o in off.items(): out.say(f"  official bs {bs}: " + (', '.join(f"{k} {v:.1f} ms/step" for k, v in o.items()) if isinstance(o, dict) else o))
    return dict(rows=rows, official={str(k): v for k, v in off.items()}, official_width=64, seconds=round(time.time() - t0, 1),
                steps=a.steps, note='ms/step: median over interleaved rounds (first discarded) of arat_learner training steps on random device batches')

# ---------------------------------------------------------------- stage 4: the plan
def plan(a, feats, bench_res, data, out):
    "Fastest settings that passed, the estimated epoch time of each method, and E."
    rows = {(r['method'], r['bs'], r['precision'], r['channels_last']): r['ms_step'] / 1e3 for r in bench_res['rows']} if bench_res else {}
    bs = a.bs
    def t(m, pr, cl): return rows.get((m, bs, pr, cl))
    def faster(u, v, by=0.97): return u is not None and v is not None and u < by * v
    prec = 'fp32'
    for p in ('bf16', 'fp16'):
        if feats.get(p) and faster(t('arat1', p, 'off'), t('arat1', 'fp32', 'off')) and faster(t('at', p, 'off'), t('at', 'fp32', 'off')): prec = p; break
    single = bool(feats.get('single_forward')) and not faster(t('arat2', prec, 'off'), t('arat1', prec, 'off'), 1.0)
    ar = 'arat1' if single else 'arat2'
    cl = 'on' if feats.get('channels_last') and faster(t('at', prec, 'on'), t('at', prec, 'off')) and \
        (not single or faster(t('arat1', prec, 'on'), t('arat1', prec, 'off'))) else 'off'
    step = {'at': t('at', prec, cl), 'arat': t(ar, prec, cl) or (t(ar, prec, 'off') and t(ar, prec, 'off') * (t('at', prec, cl) or 1) / (t('at', prec, 'off') or 1))}
    for m in step:
        if step[m] is None: step[m] = 1.0   # no measurement: a conservative guess of 1 s a step
    spe, methods = data['n_train'] // bs, a.methods.split(',')
    fwd = step['at'] / (bs * (a.steps + 1) * 3)   # one image's forward, from a PGD-AT step (attack + training pass, fwd+bwd ~ 3 fwd)
    val = (data['n_test'] + 1000) * fwd + min(a.robust_n, data['n_test']) * 21 * 3 * fwd + 1.0
    loader = 0. if feats.get('device_data') else data['n_train'] / ((feats.get('loader_figures') or {}).get('fastai_img_s') or 2000)
    epoch = {m: spe * step[m] + val + loader for m in step if m in methods}
    # torch.compile pays only if its saving over the run outweighs compiling each method's graphs (the training step's, and
    # those of validation, AutoBalance and the robust metric: about 3 times the first step's compile time, per method)
    comp = feats.get('compile_figures') or {}
    sp, first = comp.get('speedup') or 0, comp.get('first_step_s') or 1e9
    saving = max(0, left(a) - 200) / 1.15 * (1 - 1 / sp) if sp > 1 else 0
    compile_cost = 3 * first * len(epoch)
    use_compile = a.train_compile == 'on' or (a.train_compile == 'auto' and bool(feats.get('compile')) and sp >= 1.2 and saving > compile_cost)
    if use_compile: epoch = {m: spe * step[m] / max(sp, 1) + val + loader for m in epoch}
    eval_pgd = data['n_test'] * 21 * 3 * fwd
    # AutoAttack's forward-backward passes per image: standard ~ APGD-CE 100 + (APGD-T 9x100 + FAB-T ~2x9x100) on the robust half
    # + Square 5000 forwards (~1/3 each) on it; cheap: APGD-CE and APGD-T, n_iter each
    passes = 2300 if a.aa == 'standard' else 10 * (a.aa_iters or 100)
    aa_est = max(20. if a.aa == 'standard' else 2., a.aa_min * passes * 3 * fwd)
    reserve = len(epoch) * (eval_pgd + aa_est) + 15 + (compile_cost if use_compile else 0)
    if a.eval_reserve is not None: reserve = a.eval_reserve
    train_budget = left(a) - reserve
    E_auto = max(1, min(a.max_epochs, int(train_budget / (1.15 * sum(epoch.values()))))) if train_budget > 0 else 1
    E = a.epochs or E_auto
    p = dict(precision=prec, single_forward=single, channels_last=cl == 'on', compile=a.compile_backend if use_compile else False,
             device_data=bool(feats.get('device_data')), bs=bs, step_s=step, epoch_s_est=epoch, eval_reserve_s=round(reserve, 1),
             train_budget_s=round(train_budget, 1), E_auto=E_auto, E=E, forced=a.epochs is not None)
    out.say(f"E = {E} epochs per method ({'forced by --epochs; ' if a.epochs else ''}chosen from the measured speed: "
            f"{', '.join(f'{m} ~{s:.1f} s/epoch' for m, s in epoch.items())}, {train_budget:.0f} s for training, "
            f"{reserve:.0f} s kept for the evaluation; E would be {E_auto})")
    out.say(f"settings: {prec}, {'one forward' if single else 'two passes'}, channels_last {cl}, compile {p['compile']}, "
            f"{'device-resident batches' if p['device_data'] else 'the fastai loader'}, bs {bs}, lr {a.lr}, PGD-{a.steps}, "
            f"width {a.width}, schedule fit_paper (lr/10 at 75 % and 90 % of E)")
    return p

# ---------------------------------------------------------------- stage 5: training
def train(a, dev, method, p, data, deadline, out, curve_rows, on_epoch):
    import torch
    from fastai.callback.core import Callback, CancelFitException
    from fastai.callback.progress import ProgressCallback
    from fastai.torch_core import set_seed
    from arat.all import arat_learner, cifar_resnet18, set_rng_states
    loaders = data['dd'] if p['device_data'] and data['dd'] is not None else data['dls']
    if loaders is data['dd']: set_rng_states(data['state'], loaders)   # both methods see the same batches and augmentations
    set_seed(a.seed)
    model = cifar_resnet18(10, width=a.width).to(dev)

    class Guard(Callback):
        "Stop before an epoch that would not end by `deadline`, or at any batch past it; log each epoch."
        order = -900
        def __init__(self): self.stopped, self.times = None, []
        def before_epoch(self):
            est = self.times[-1] if self.times else p['epoch_s_est'][method]   # the latest epoch (the first may hold compilation)
            if time.time() + 0.9 * est > deadline:
                self.stopped = f"stopped before epoch {self.epoch + 1} of {self.n_epoch}: the time budget would run out"; raise CancelFitException()
            self.t = time.time()
        def before_batch(self):
            if self.training and time.time() > deadline:
                self.stopped = f"stopped during epoch {self.epoch + 1} of {self.n_epoch}: time budget spent"; raise CancelFitException()
        def after_epoch(self): self.times.append(time.time() - self.t)

    class Curve(Callback):
        order = 60   # after the Recorder: this epoch's values are in recorder.values[-1]
        def after_epoch(self):
            r = self.learn.recorder
            v = dict(zip(r.metric_names[1:-1], r.values[-1]))
            row = dict(method=method, epoch=self.epoch + 1, lr=self.opt.hypers[0]['lr'], train_loss=v.get('train_loss'),
                       clean_acc=v.get('clean_acc'), pgd20_acc=v.get('robust_acc'), seconds=round(time.time() - guard.t, 1))
            curve_rows.append(row)
            out.say(f"  {method} epoch {row['epoch']}/{self.n_epoch}: loss {row['train_loss']:.4f}, clean {100 * row['clean_acc']:.2f} %, "
                    f"PGD-20 {100 * row['pgd20_acc']:.2f} % (first {a.robust_n} test images), lr {row['lr']:.4g}, {row['seconds']:.1f} s")
            on_epoch()

    guard = Guard()
    kw = dict(steps=a.steps) | (dict(single_forward=p['single_forward']) if method == 'arat' else {})
    learn = arat_learner(loaders, model, method=method, lr=a.lr, robust_n=a.robust_n, precision=None if p['precision'] == 'fp32' else p['precision'],
                         channels_last=p['channels_last'], compile=p['compile'] or False, cbs=[guard, Curve()], **kw)
    learn.remove_cb(ProgressCallback); learn.logger = lambda *_: None
    t0, status = time.time(), None
    torch.backends.cudnn.benchmark = dev.type == 'cuda'   # fixed shapes: let cuDNN pick its fastest kernels (off again for evaluation)
    try: learn.fit_paper(p['E'])
    except FloatingPointError as e: status = f"diverged: {first_line(e)}"
    finally: torch.backends.cudnn.benchmark = False
    secs = time.time() - t0
    done = sum(r['method'] == method for r in curve_rows)
    return learn, dict(epochs_trained=done, complete=done == p['E'] and status is None and guard.stopped is None,
                       stopped=status or guard.stopped, train_seconds=round(secs, 1),
                       seconds_per_epoch=round(statistics.mean(guard.times), 2) if guard.times else None)

# ---------------------------------------------------------------- stage 6: evaluation
def deployable(learn):
    from arat.all import deployable_model
    m = deployable_model(learn.model).eval()
    for mod in m.modules():
        if getattr(mod, '_compiled_call_impl', None) is not None: mod._compiled_call_impl = None   # evaluate eagerly
    return m

def evaluate(model, xv, yv, bs):
    from arat.all import evaluate_robustness
    t = time.time()
    df, corr = evaluate_robustness(model, (xv, yv), attacks=('clean', 'pgd20'), bs=bs, progress=False, return_correct=True)
    return dict(clean=float(df.iloc[0]['clean']), pgd20=float(df.iloc[0]['pgd20']), n=int(df.iloc[0]['n']),
                seconds=round(time.time() - t, 1)), corr

# ---------------------------------------------------------------- the whole command
def result_name(method, E, training):
    "The results file of `method`: `-<E>ep` when it trained its E epochs, `-<e>of<E>ep` when it stopped after e."
    if training['complete']: return f"cifar10-resnet18-{method}-{E}ep.json"
    return f"cifar10-resnet18-{method}-{training['epochs_trained']}of{E}ep.json"

def hardware(dev):
    import torch
    h = dict(python=platform.python_version(), torch=torch.__version__, cpus=os.cpu_count(), machine=platform.machine())
    if dev.type == 'cuda':
        pr = torch.cuda.get_device_properties(dev)
        h.update(gpu=pr.name, gpu_mem_gib=round(pr.total_memory / 2**30, 1), sms=pr.multi_processor_count,
                 cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version())
    else: h.update(gpu=None, threads=torch.get_num_threads())
    return h

def main(argv=None):
    a = parse_args(argv)
    if a.compile_check:
        import warnings; warnings.filterwarnings('ignore')
        if str(ROOT) not in sys.path: sys.path.insert(0, str(ROOT))
        import torch
        if a.device == 'cpu': torch.set_num_threads(int(os.environ.get('OMP_NUM_THREADS', '2')))
        return compile_check(a, torch.device(a.device))
    out = Out(a.out)
    Path(a.work).mkdir(parents=True, exist_ok=True)
    out.say(f"device_run ({'tiny CPU rehearsal' if a.tiny else 'GPU command'}): budget {a.budget:.0f} s, out {out.dir}; "
            f"E (epochs per method) is chosen after the speed measurement and printed before training")
    summary = dict(issue=23, tiny=a.tiny, status='started', args={k: v for k, v in vars(a).items()})
    def save(): out.write('device_run.json', json.dumps(summary, indent=1, default=str) + '\n')
    summary['install'] = install(a, out)
    import warnings; warnings.filterwarnings('ignore')
    import torch
    dev = torch.device(a.device or ('cuda' if torch.cuda.is_available() else 'cpu'))
    if dev.type == 'cuda' and not torch.cuda.is_available(): sys.exit("--device cuda: no CUDA device here")
    if dev.type == 'cpu': torch.set_num_threads(int(os.environ.get('OMP_NUM_THREADS', '2')))
    summary['hardware'] = hardware(dev); save()
    out.say(f"hardware: {summary['hardware']}")
    prev = None
    if a.reuse:   # checked before the data is unpacked: a bad file costs no device time
        try:
            prev = json.loads(Path(a.reuse).read_text()); assert prev['hardware']['gpu'] == summary['hardware']['gpu'], 'another GPU'
            assert all({'check', 'feature', 'passed', 'figures'} <= set(r) for r in prev['smoke']), 'a smoke row without its fields'
            assert {'compile', 'device_data'} <= {r['feature'] for r in prev['smoke']} and prev['bench']['rows'], 'no compile, loader or speed figures'
        except Exception as e: sys.exit(f"--reuse {a.reuse}: not a finished device_run.json of this machine kind ({first_line(e)}); measure again without --reuse")
        summary['reused_from'] = dict(file=a.reuse, hardware=prev['hardware'], args=prev.get('args'))
    data = load_data(a, dev, out)
    summary['data'] = {k: v for k, v in data.items() if k not in ('dls', 'dd', 'state')}; save()

    if prev:
        out.say(f"smoke checks: reused from {a.reuse} (an earlier call on a {prev['hardware']['gpu']})"); t = time.time()
        rows = prev['smoke']
        for r in rows: out.say(f"  {'PASS' if r['passed'] else 'FAIL'}  {r['check']}")
    else:
        out.say(f"smoke checks (<= {a.smoke_budget:.0f} s):"); t = time.time()
        rows = smoke(a, dev, data, out)
    feats = {r['feature']: r['passed'] for r in rows}
    feats['compile_figures'] = next(r['figures'] for r in rows if r['feature'] == 'compile')
    feats['loader_figures'] = next(r['figures'] for r in rows if r['feature'] == 'device_data')
    summary['smoke'] = rows; summary['smoke_seconds'] = round(time.time() - t, 1); save()

    out.say(f"speed (<= {a.bench_budget:.0f} s, width {a.width}):")
    if prev: bres = prev['bench']; out.say(f"  reused from {a.reuse}")
    else:
        try: bres = bench(a, dev, feats, out)
        except Exception as e: bres = None; out.say(f"  bench failed: {first_line(e)}")
    summary['bench'] = bres; save()

    p = plan(a, feats, bres, data, out)
    summary['plan'] = p; save()
    methods = a.methods.split(',')
    E = p['E']
    curve_rows, results, learners, written = [], {}, {}, {}
    xv, yv = None, None
    from arat.all import eval_tensors
    xv, yv = eval_tensors(data['dd'] if data['dd'] is not None else data['dls'])
    eval_bs = 64 if a.tiny else 500

    def curves():
        import pandas as pd
        df = pd.DataFrame(curve_rows)
        out.write('curves.csv', df.to_csv(index=False))
        if len(df):
            import matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot as plt, matplotlib.ticker
            fig, axs = plt.subplots(1, 2, figsize=(10, 3.6))
            for m, g in df.groupby('method', sort=False):
                axs[0].plot(g.epoch, 100 * g.clean_acc, marker='o', label=m); axs[1].plot(g.epoch, 100 * g.pgd20_acc, marker='o', label=m)
            for ax, ttl in zip(axs, ('clean accuracy (%)', f'PGD-20 accuracy (%), first {a.robust_n} test images')):
                ax.set_xlabel('epoch'); ax.set_title(ttl); ax.legend(); ax.grid(alpha=0.3)
                ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
            fig.suptitle(f"CIFAR-10, ResNet-18 width {a.width}, {E} epochs (the paper: 100)"); fig.tight_layout()
            f = out.dir/'curves.png'; fig.savefig(f.with_suffix('.tmp.png'), dpi=100); os.replace(f.with_suffix('.tmp.png'), f); plt.close(fig)

    def record(m):
        r = results[m]
        name = result_name(m, E, r['training'])
        for old in written.get(m, set()) - {name}: (out.dir/'results'/old).unlink(missing_ok=True)   # this run's earlier label only
        written.setdefault(m, set()).add(name)
        rec = dict(experiment='issue 23: PGD-AT vs AR-AT in one GPU command', method=m, arch='resnet18', width=a.width,
                   dataset='cifar10', epochs=E, **r, settings={k: p[k] for k in ('precision', 'single_forward', 'channels_last', 'compile', 'device_data', 'bs')},
                   recipe=dict(lr=a.lr, schedule='fit_paper: lr/10 at 75 % and 90 % of the epochs', optimizer='SGD 0.9, wd 5e-4',
                               attack=f'PGD-{a.steps}, eps 8/255, step 2/255, train mode', gamma=30 if m == 'arat' else None,
                               auto_balance=m == 'arat'),
                   data=summary['data'], paper_100_epochs=PAPER.get(m), note=(None if E >= 100 else f"{E} epochs, not the paper's 100"),
                   smoke=summary['smoke'], bench=summary['bench'], hardware=summary['hardware'], tiny=a.tiny)
        out.write(f"results/{name}", json.dumps(rec, indent=1, default=str) + '\n')

    train_end = T0 + a.budget - p['eval_reserve_s']
    for i, m in enumerate(methods):
        share = (train_end - time.time()) * p['epoch_s_est'][m] / sum(p['epoch_s_est'][k] for k in methods[i:])
        deadline = time.time() + max(share, 0)
        out.say(f"training {m}: {E} epochs (deadline in {deadline - time.time():.0f} s)")
        learn, tr = train(a, dev, m, p, data, deadline, out, curve_rows, curves)
        dep = deployable(learn)
        ev, corr = evaluate(dep, xv, yv, eval_bs)
        results[m] = dict(training=tr, accuracy=dict(clean=ev['clean'], pgd20=ev['pgd20'], n=ev['n'], autoattack=None, n_autoattack=0,
                                                     aa_version=a.aa, eval_seconds=ev['seconds']))
        learners[m] = (dep, corr)
        out.say(f"  {m}: {tr['epochs_trained']} of {E} epochs ({tr['seconds_per_epoch']} s/epoch){'; ' + tr['stopped'] if tr['stopped'] else ''}; "
                f"clean {100 * ev['clean']:.2f} %, PGD-20 {100 * ev['pgd20']:.2f} % on {ev['n']} test images ({ev['seconds']} s)")
        record(m); curves()
        summary['status'] = f"trained {', '.join(results)}"; save()
        del learn
        if dev.type == 'cuda': torch.cuda.empty_cache()

    # AutoAttack: chunks for every model in turn; n counts the chunks every model finished
    from arat.all import evaluate_robustness
    done, chunk, per_img, aa = 0, a.aa_min, None, {m: [] for m in learners}
    note = None
    while done < len(xv):
        size = min(chunk, len(xv) - done)
        room = left(a) - 10
        need = None if per_img is None else per_img * size * len(learners)
        if need is not None and need > room: note = f"stopped at {done} images: the next {size} would need ~{need:.0f} s, {room:.0f} s left"; break
        t, got = time.time(), {}
        try:
            for j, (m, (model, _)) in enumerate(learners.items()):
                lim = (left(a) - 10) / (len(learners) - j)
                with time_limit(lim, f"AutoAttack on {m}"):
                    _, c = evaluate_robustness(model, (xv[done:done + size], yv[done:done + size]), attacks=('autoattack',), bs=size,
                                               aa_version=a.aa, aa_kwargs=dict(n_iter=a.aa_iters) if a.aa_iters else None,
                                               progress=False, return_correct=True)
                got[m] = c['autoattack']
        except Exception as e: note = f"stopped at {done} images: {first_line(e)}"; break
        for m in got: aa[m].append(got[m])
        per_img = (time.time() - t) / (size * len(learners)); done += size; chunk *= 2
        out.say(f"  AutoAttack ({a.aa}): {done} images done ({time.time() - t:.0f} s for the last {size})")
        for m in learners:
            ca = torch.cat(aa[m]); _, corr = learners[m]
            acc = results[m]['accuracy']
            acc.update(autoattack=ca.float().mean().item(), n_autoattack=done, clean_on_aa_images=corr['clean'][:done].float().mean().item(),
                       pgd20_on_aa_images=corr['pgd20'][:done].float().mean().item(),
                       worst_on_aa_images=(ca & corr['clean'][:done] & corr['pgd20'][:done]).float().mean().item(), aa_note=note)
            record(m)
    for m in learners:
        results[m]['accuracy']['aa_note'] = note if results[m]['accuracy']['n_autoattack'] < len(xv) else None
        if results[m]['accuracy']['n_autoattack'] < a.aa_min: results[m]['accuracy']['aa_note'] = f"fewer than {a.aa_min} images: {note}"
        record(m)
    out.say(f"\nE = {E} epochs (the paper: 100). {'method':<6}{'clean':>8}{'PGD-20':>8}{'AA':>8}{'n AA':>6}{'s/epoch':>9}")
    for m, r in results.items():
        acc = r['accuracy']
        aa_txt = '       -' if acc['autoattack'] is None else f"{100 * acc['autoattack']:8.2f}"
        out.say(f"  {m:<6}{100 * acc['clean']:8.2f}{100 * acc['pgd20']:8.2f}{aa_txt}"
                f"{acc['n_autoattack']:6d}{str(r['training']['seconds_per_epoch']):>9}  {r['training']['stopped'] or ''}")
    summary['results'] = results; summary['status'] = 'done'; summary['seconds'] = round(time.time() - T0, 1); save()
    out.say(f"device_run: done in {time.time() - T0:.0f} s; files in {out.dir}: "
            + ', '.join(sorted(str(f.relative_to(out.dir)) for f in out.dir.rglob('*') if f.is_file())))
    return 0

if __name__ == '__main__': sys.exit(main())
