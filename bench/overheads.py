"""Where the extra time of AR-AT (vs PGD-AT) and of fastai (vs a bare loop) goes: time the pieces, interleaved.

  pgd_plain       PGD-10 (train-mode BNs) on the plain model                        (PGD-AT's attack)
  pgd_dual        the same PGD on the dual-BN model with FeatureTaps hooks (disabled) (AR-AT's attack)
  pgd_dual_nohook the same on the dual-BN model without hooks
  clean_pass      AR-AT's extra work: f_aux(x) with taps + predictors + arat_loss, forward and backward
  sync            `bool(torch.isfinite(loss))` right after the forward of a full AR-AT step (vs none): extra s/step
  opt_fastai      fastai SGD step (mom 0.9, L2 wd, as arat_learner) over the AR-AT model's parameters
  opt_torch       torch.optim.SGD step over the same parameters

Usage: python bench/overheads.py --device cuda --widths 16 64 --repeats 30
"""
import argparse, os, sys, time
p = argparse.ArgumentParser()
p.add_argument('--widths', type=int, nargs='+', default=[16])
p.add_argument('--bs', type=int, default=128)
p.add_argument('--repeats', type=int, default=10)
p.add_argument('--warmup', type=int, default=2)
p.add_argument('--device', default='cpu')
p.add_argument('--threads', type=int, default=2)
p.add_argument('--steps', type=int, default=10)
a = p.parse_args()
os.environ['OMP_NUM_THREADS'] = str(a.threads); os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')

import copy, statistics, warnings
import numpy as np, torch, torch.nn.functional as F
warnings.filterwarnings('ignore', category=FutureWarning)
from fastai.optimizer import SGD
from arat.models import cifar_resnet18
from arat.attacks import pgd
from arat.dualbn import convert_dual_bn, use_bn
from arat.features import FeatureTaps, default_taps, tap_dims
from arat.losses import attach_predictors, arat_loss

def main():
    torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == 'cuda' else (lambda: None)
    for w in a.widths:
        torch.manual_seed(0)
        base = cifar_resnet18(width=w)
        x = torch.rand(a.bs, 3, 32, 32, device=dev); y = torch.randint(0, 10, (a.bs,), device=dev)
        plain = copy.deepcopy(base).to(dev).train()
        dual = convert_dual_bn(copy.deepcopy(base)).to(dev).train()
        spec = default_taps(dual); attach_predictors(dual, tap_dims(dual, spec))
        dual_nh = copy.deepcopy(dual)
        taps = FeatureTaps(dual, spec); taps.enabled = False
        params = list(dual.parameters())
        fopt = SGD(params, lr=1e-3, mom=0.9, wd=5e-4, decouple_wd=False)
        topt = torch.optim.SGD(params, lr=1e-3, momentum=0.9, weight_decay=5e-4)

        def arat_step(check):
            xa = pgd(dual, x, y, steps=a.steps, attack_mode='train')
            taps.enabled = True; oa = dual(xa); za = taps.take()
            with use_bn(dual, 'aux'): oc = dual(x)
            zc = taps.take(); taps.enabled = False
            loss, _ = arat_loss(oa, oc, y, za, zc, dual.arat_predictors, 1., 1., 30.)
            if check: bool(torch.isfinite(loss))
            topt.zero_grad(); loss.backward(); topt.step()

        def clean_pass():
            with torch.no_grad(): oa = dual(x)   # stand-in adversarial logits/taps (no graph: isolates the clean pass)
            taps.enabled = True
            with torch.no_grad(): dual(x)
            za = [z.detach().requires_grad_() for z in taps.take()]
            with use_bn(dual, 'aux'): oc = dual(x)
            zc = taps.take(); taps.enabled = False
            loss, _ = arat_loss(oa, oc, y, za, zc, dual.arat_predictors, 1., 1., 30.)
            loss.backward()

        def fill_grads():
            for p_ in params: p_.grad = torch.ones_like(p_) * 1e-3
        def opt_f(): fopt.step()
        def opt_t(): topt.step()

        pieces = dict(pgd_plain=lambda: pgd(plain, x, y, steps=a.steps, attack_mode='train'),
                      pgd_dual=lambda: pgd(dual, x, y, steps=a.steps, attack_mode='train'),
                      pgd_dual_nohook=lambda: pgd(dual_nh, x, y, steps=a.steps, attack_mode='train'),
                      clean_pass=clean_pass,
                      arat_nosync=lambda: arat_step(False), arat_sync=lambda: arat_step(True),
                      opt_fastai=opt_f, opt_torch=opt_t)
        times = {k: [] for k in pieces}
        names = list(pieces)
        for r in range(a.warmup + a.repeats):
            k = r % len(names)
            for n in names[k:] + names[:k]:
                if n.startswith('opt'): fill_grads()
                sync(); t = time.perf_counter(); pieces[n](); sync(); dt = time.perf_counter() - t
                if r >= a.warmup: times[n].append(dt)
        med = {k: statistics.median(v) for k, v in times.items()}
        print(f"\n== overheads, width {w}, batch {a.bs}, PGD-{a.steps}, {dev}, {a.repeats} rounds ==")
        for k, v in times.items():
            print(f"{k:<16}{med[k]*1e3:10.2f} ms  IQR [{np.percentile(v,25)*1e3:.2f}, {np.percentile(v,75)*1e3:.2f}]")
        print(f"dual-BN + hooks cost in the attack: pgd_dual - pgd_plain = {(med['pgd_dual']-med['pgd_plain'])*1e3:.2f} ms "
              f"(hooks alone: {(med['pgd_dual']-med['pgd_dual_nohook'])*1e3:.2f} ms)")
        print(f"isfinite sync: arat_sync - arat_nosync = {(med['arat_sync']-med['arat_nosync'])*1e3:.2f} ms")
        print(f"fastai SGD - torch SGD = {(med['opt_fastai']-med['opt_torch'])*1e3:.2f} ms")
        taps.remove()

if __name__ == '__main__': main()
