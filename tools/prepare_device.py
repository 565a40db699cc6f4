#!/usr/bin/env python3
"""Prepare what the GPU command of issue 23 carries (tools/DEVICE.md): in `.device/` (ignored by git), the wheels of the
packages a bare GPU machine lacks (for its Python 3.12, manylinux x86_64), a copy of ../shared/data/cifar10.tgz and of the
authors' timing script (../shared does not travel); then check the sizes and print the exact call to give the device tool.

    python tools/prepare_device.py                 # in the checkout the device tool sends (PyPI reachable)
    python tools/prepare_device.py --check-only    # sizes and the call only, nothing downloaded or copied

The wheels are the packages arat imports (fastai, pyautoattack) and everything they require, at the versions installed in
this environment (the ones the tests pass with), less what the GPU machine already has (`DEVICE_HAS`, from the device
notes' package list) and less spaCy (fastai's text models need it; fastai.vision and arat never import it).
"""
import argparse, base64, importlib.metadata as md, json, os, re, shutil, subprocess, sys, tempfile, zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MIB = 2**20
# Python packages of the GPU machine's image ('cuda', read 2026-11-17; the device notes' KINDS.md): carried only if missing there.
DEVICE_HAS = set("""absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch build certifi
charset-normalizer chex click cloudpickle cmake colorama contourpy coverage cuda-bindings cuda-core cuda-pathfinder cuda-toolkit
cupy-cuda13x cycler cython diffrax e3nn einops equinox etils execnet filelock flatbuffers flax fonttools formulaic frozenlist
fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx huggingface-hub humanize hypothesis idna imageio iniconfig interface-meta
jax jax-cuda13-pjrt jax-cuda13-plugin jaxlib jaxtyping jinja2 joblib kiwisolver lazy-loader lightning lightning-utilities
linear-operator lineax llvmlite lxml markdown markdown-it-py markupsafe matplotlib mdurl meson ml-dtypes mpi4py mpmath msgpack
multidict multipledispatch mypy-extensions nanobind narwhals networkx ninja numba numba-cuda numpy numpyro nvidia-cublas
nvidia-cuda-cupti nvidia-cuda-nvrtc nvidia-cuda-runtime nvidia-cudnn-cu13 nvidia-cufft nvidia-cufile nvidia-curand
nvidia-cusolver nvidia-cusparse nvidia-cusparselt-cu13 nvidia-ml-py nvidia-nccl-cu13 nvidia-nvjitlink nvidia-nvshmem-cu13
nvidia-nvtx onnx onnx-ir onnxruntime onnxscript opencv-python-headless optax opt-einsum opt-einsum-fx optimistix
orbax-checkpoint packaging pandas pathspec patsy peft pillow pip pluggy portalocker prometheus-client propcache protobuf psutil
pyarrow pybind11 py-cpuinfo pygments pyparsing pyproject-hooks pyre-extensions pytest pytest-benchmark pytest-cov pytest-mock
pytest-timeout pytest-xdist python-dateutil pytorch-lightning pyyaml regex requests rich sacrebleu safetensors
scikit-build-core scikit-image scikit-learn scipy seaborn sentencepiece sentence-transformers setuptools shellingham
simplejson six sortedcontainers statsmodels sympy tabulate tensorboard tensorboard-data-server tensorstore threadpoolctl
tifffile tiktoken timm tokenizers toolz torch torchaudio torchdiffeq torch-geometric torchmetrics torchvision tqdm
transformers treescope triton typer typing-extensions typing-inspect urllib3 uvloop wadler-lindig werkzeug wheel wrapt
xarray xxhash yarl zipp""".split())
ROOTS = ('fastai', 'pyautoattack')            # what arat imports that the machine lacks; their requirements follow
NOT_NEEDED = {'spacy'}                        # fastai's text dependency: not imported by fastai.vision or arat
SLIM = {'pyautoattack': ('pyautoattack/examples/',)}   # 44 MB of example model weights that AutoAttack's code never loads
PLATFORMS = ('manylinux_2_28_x86_64', 'manylinux_2_27_x86_64', 'manylinux_2_17_x86_64', 'manylinux2014_x86_64', 'manylinux1_x86_64')
COMMAND = 'PYTHONUNBUFFERED=1 python3 tools/device_run.py --out "$OUT"'
TIMEOUT_S = 560

def norm(n): return re.sub(r'[-_.]+', '-', n).lower()

def requirements(name):
    "The names `name` requires (no extras), as installed here."
    from packaging.requirements import Requirement
    out = []
    for r in md.distribution(name).requires or []:
        req = Requirement(r)
        if req.marker is None or req.marker.evaluate({'extra': '', 'python_version': '3.12'}): out.append(req.name)
    return out

def needed():
    "`{name: version}` of the roots and their requirements, less what the GPU machine has and spaCy."
    pins, todo = {}, list(ROOTS)
    while todo:
        n = norm(todo.pop())
        if n in pins or n in DEVICE_HAS or n in NOT_NEEDED: continue
        try: pins[n] = md.version(n)
        except md.PackageNotFoundError: sys.exit(f"prepare_device: {n} is not installed here; install the project (pip install -e .) first")
        todo += requirements(n)
    return dict(sorted(pins.items()))

def wheel_name(f): return norm(Path(f).name.split('-')[0])

def slim(whl, prefixes):
    "Rewrite the wheel `whl` without the files under `prefixes` (and their RECORD lines); True if it changed."
    with zipfile.ZipFile(whl) as z: names = z.namelist()
    drop = [n for n in names if n.startswith(prefixes)]
    if not drop: return False
    tmp = whl.with_suffix('.tmp')
    with zipfile.ZipFile(whl) as zin, zipfile.ZipFile(tmp, 'w', zipfile.ZIP_DEFLATED) as zout:
        for i in zin.infolist():
            if i.filename in drop: continue
            data = zin.read(i)
            if i.filename.endswith('.dist-info/RECORD'):
                data = ''.join(l + '\n' for l in data.decode().splitlines() if l.split(',')[0] not in drop).encode()
            zout.writestr(i, data)
    os.replace(tmp, whl)
    return True

def download(pins, dest):
    "The wheels of `pins` for Python 3.12 manylinux x86_64 in `dest` (reused if there); stale ones removed, big extras slimmed."
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, '-m', 'pip', 'download', '--disable-pip-version-check', '--no-deps', '--only-binary=:all:',
           '--python-version', '3.12', '--implementation', 'cp', *[x for p in PLATFORMS for x in ('--platform', p)],
           '-d', str(dest), *[f"{n}=={v}" for n, v in pins.items()]]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode: sys.exit(f"prepare_device: pip download failed (exit {r.returncode}):\n{(r.stderr or r.stdout).strip()[-1500:]}")
    for f in sorted(dest.glob('*.whl')):
        n = wheel_name(f)
        if n not in pins or f.name.split('-')[1] != pins[n]:
            f.unlink(); print(f"  removed {f.name} (not needed at these versions)")
        elif n in SLIM and slim(f, SLIM[n]): print(f"  {f.name}: repacked without {', '.join(SLIM[n])}")
    missing = [n for n in pins if not any(wheel_name(f) == n for f in dest.glob('*.whl'))]
    if missing: sys.exit(f"prepare_device: no wheel for {', '.join(missing)} in {dest}")

def copy_file(src, dst):
    "Copy `src` to `dst` atomically, unless an identical copy is there."
    from arat.runs import file_sha256   # here, so that the size checks run without importing torch
    if dst.exists() and dst.stat().st_size == src.stat().st_size and file_sha256(dst) == file_sha256(src): return False
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + '.tmp'); shutil.copyfile(src, tmp); os.replace(tmp, dst)
    return True

def copy_shared(shared, dest):
    "../shared's CIFAR-10 archive and the authors' timing script (with the code it runs) into `dest`."
    src = shared/'data'/'cifar10.tgz'
    if not src.exists(): sys.exit(f"prepare_device: {src} not found; pass --shared, the folder holding data/cifar10.tgz and anchors/")
    print(f"  cifar10.tgz: {'copied' if copy_file(src, dest/'cifar10.tgz') else 'already there'}")
    anchors = shared/'anchors'
    files = [anchors/'time_official.py'] + [f for f in sorted((anchors/'ar-at-official').rglob('*')) if f.is_file() and f.suffix in ('.py', '.txt', '')]
    n = sum(copy_file(f, dest/'anchors'/f.relative_to(anchors)) for f in files)
    print(f"  anchors: time_official.py and ar-at-official/ ({len(files)} files, {n} copied)")

def tree_bytes(root):
    "Bytes of what a device call sends besides the carried folders: tracked and untracked, not ignored, files (and shared/ inside)."
    r = subprocess.run(['git', '-C', str(root), 'ls-files', '-z', '--cached', '--others', '--exclude-standard'], capture_output=True)
    if r.returncode: sys.exit(f"prepare_device: {root} is not a git checkout (git ls-files failed); run it in the project's checkout")
    files = {root/n for n in r.stdout.decode().split('\0') if n}
    if (root/'shared').is_dir(): files |= {f for f in (root/'shared').rglob('*') if f.is_file()}
    return sum(f.stat().st_size for f in files if f.is_file() and not f.is_symlink())

def folder_bytes(d): return sum(f.stat().st_size for f in Path(d).rglob('*') if f.is_file()) if Path(d).exists() else 0

def check_sizes(root, dest, limit_mib, tree_limit_mib):
    "Exit with a message when the carried folder or the whole travelling tree is over its limit; else the figures."
    carried, tree = folder_bytes(dest), tree_bytes(root)
    print(f"sizes: carried {dest.name}/ {carried / MIB:.1f} MiB (limit {limit_mib:g}); working tree {tree / MIB:.1f} MiB; "
          f"together {(carried + tree) / MIB:.1f} MiB (limit {tree_limit_mib:g})")
    big = sorted(((f.stat().st_size, f) for f in dest.rglob('*') if f.is_file()), reverse=True)[:3] if dest.exists() else []
    if carried > limit_mib * MIB:
        sys.exit(f"prepare_device: {dest} holds {carried / MIB:.1f} MiB, over the {limit_mib:g} MiB the device call may carry "
                 f"(largest: {', '.join(f'{p.name} {s / MIB:.1f} MiB' for s, p in big)}); remove what the command does not need")
    if carried + tree > tree_limit_mib * MIB:
        sys.exit(f"prepare_device: the working tree ({tree / MIB:.1f} MiB) and {dest.name}/ ({carried / MIB:.1f} MiB) come to "
                 f"{(carried + tree) / MIB:.1f} MiB, over the {tree_limit_mib:g} MiB a device call sends; remove untracked files")
    return dict(carried_mib=round(carried / MIB, 2), tree_mib=round(tree / MIB, 2))

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--dest', default=str(ROOT/'.device'), help='the carried folder (default .device, ignored by git)')
    p.add_argument('--shared', default=str(ROOT.parent/'shared'), help="the shared folder (default ../shared)")
    p.add_argument('--check-only', action='store_true', help='only check the sizes and print the call')
    p.add_argument('--limit-mib', type=float, default=60, help='limit of the carried folder')
    p.add_argument('--tree-limit-mib', type=float, default=64, help='limit of everything a device call sends')
    a = p.parse_args(argv)
    dest = Path(a.dest).resolve()
    if not a.check_only:
        pins = needed()
        print(f"wheels for Python 3.12, manylinux x86_64 ({len(pins)}): {', '.join(f'{n}=={v}' for n, v in pins.items())}")
        download(pins, dest/'wheels')
        copy_shared(Path(a.shared), dest)
    sizes = check_sizes(ROOT, dest, a.limit_mib, a.tree_limit_mib)
    try: rel = dest.relative_to(ROOT).as_posix()
    except ValueError: rel = None
    if rel is None: print(f"note: {dest} is outside the checkout {ROOT}: a device call carries only folders inside it")
    call = dict(command=COMMAND, carry=[rel or dest.name], timeout_s=TIMEOUT_S)
    print("the device call (tool `run`; tools/DEVICE.md):")
    print(json.dumps(call, indent=1))
    return sizes

if __name__ == '__main__': main()
