"""Training-trajectory fingerprints: a hash of the weights after a few seeded CPU steps, per method.

Run before and after a refactor; identical hashes mean identical training (see the architecture issue).
The hashes only compare runs on one machine: the last bits of float32 training differ between CPUs (the kernels
oneDNN and PyTorch pick for each instruction set), so every hash differed between an AMD EPYC and an Intel Xeon with
AVX-512. Compare only hashes printed beside the same CPU and torch version (the first line).
    python tools/fingerprint.py            # print one line per method
    python tools/fingerprint.py --out F    # also write them as JSON to F
"""
import argparse, hashlib, json, os, sys
os.environ.setdefault('OMP_NUM_THREADS', '2')
import torch
from fastai.vision.all import set_seed
from arat.all import *

def machine():
    "The CPU model (from /proc/cpuinfo), whether it has AVX-512, and the torch version: what the hashes depend on."
    name, flags = 'unknown CPU', set()
    try:
        for line in open('/proc/cpuinfo'):
            k, _, v = line.partition(':')
            if k.strip() == 'model name' and name == 'unknown CPU': name = v.strip()
            if k.strip() == 'flags' and not flags: flags = set(v.split())
    except OSError: pass
    return f"{name}, {'avx512f' if 'avx512f' in flags else 'no avx512f'}, torch {torch.__version__}"

METHODS = ('arat', 'at', 'trades', 'mart', 'lbgat', 'asym-trades', 'arat-separate', 'arat-two-pass', 'arat-one-forward')

# AR-AT's two routes, forced: 'arat' itself is the default, single_forward='auto', which on this CPU run is two passes
# (the route before issue 12), so 'arat' and 'arat-two-pass' print the same hash; 'arat-one-forward' is the CUDA default's route
VARIANTS = {'arat-two-pass': ('arat', dict(single_forward=False)), 'arat-one-forward': ('arat', dict(single_forward=True))}

def fingerprint(method, steps=3, bs=16, seed=0):
    "sha256 of every tensor of the model's state_dict after `steps` training batches of `method` (CPU, seeded)."
    torch.set_num_threads(1)
    set_seed(seed, reproducible=True)
    dls = cifar10_sample_dls(bs=bs, n_train=bs*steps, n_valid=bs, seed=seed)
    model = cifar_resnet18(10, width=8)
    method, kw = VARIANTS.get(method, (method, {}))
    learn = arat_learner(dls, model, method=method, robust_n=0, **kw)
    with learn.no_bar(), learn.no_logging(): learn.fit(1)
    h = hashlib.sha256()
    for k, v in sorted(learn.model.state_dict().items()):
        h.update(k.encode()); h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--out'); p.add_argument('methods', nargs='*', default=METHODS)
    a = p.parse_args()
    res = {}
    print('machine:', machine(), flush=True)
    for m in a.methods:
        res[m] = fingerprint(m); print(m, res[m], flush=True)
    if a.out: open(a.out, 'w').write(json.dumps(dict(machine=machine(), **res), indent=1) + '\n')
