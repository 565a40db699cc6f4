#!/usr/bin/env python
"""Build `arat/sample/cifar10_sample.tgz`, the CIFAR-10 sample embedded in the package, from a folder in fastai's
CIFAR layout (`train/<class>/*.png`, `test/<class>/*.png`). The archive is deterministic: sorted names, mtime 0,
uid/gid 0, fixed modes and a gzip header without name or time, so rebuilding it gives identical bytes.

Usage: python tools/make_sample.py SRC [--dest DEST]
  SRC   a folder in fastai's CIFAR layout (the shipped sample was built from `cifar10-mini`, 932 + 932 CIFAR-10 images)
  DEST  the archive to write; default arat/sample/cifar10_sample.tgz"""
import argparse, gzip, hashlib, io, tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOP = 'cifar10_sample'  # the folder the archive unpacks to

def _info(name, size=0, is_dir=False):
    ti = tarfile.TarInfo(name)
    ti.size, ti.mtime, ti.uid, ti.gid, ti.uname, ti.gname = size, 0, 0, 0, '', ''
    ti.type, ti.mode = (tarfile.DIRTYPE, 0o755) if is_dir else (tarfile.REGTYPE, 0o644)
    return ti

def make_sample(src, dest):
    "Write a deterministic .tgz of the PNGs under `src/train` and `src/test` to `dest`; return its bytes."
    src, dest = Path(src), Path(dest)
    for split in ('train', 'test'):
        if not (src/split).is_dir(): raise FileNotFoundError(f"make_sample: {src/split} is missing; pass a folder in fastai's CIFAR layout")
    files = sorted(p.relative_to(src).as_posix() for p in src.rglob('*.png') if p.parts[-3] in ('train', 'test'))
    dirs = sorted({str(Path(f).parent) for f in files} | {'train', 'test'})
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode='w', format=tarfile.USTAR_FORMAT) as tar:
        tar.addfile(_info(TOP, is_dir=True))
        for n in sorted(dirs + files):
            if n in dirs: tar.addfile(_info(f'{TOP}/{n}', is_dir=True))
            else:
                data = (src/n).read_bytes()
                tar.addfile(_info(f'{TOP}/{n}', len(data)), io.BytesIO(data))
    out = io.BytesIO()
    with gzip.GzipFile(filename='', mode='wb', fileobj=out, mtime=0, compresslevel=9) as gz: gz.write(raw.getvalue())
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(out.getvalue())
    return out.getvalue(), len(files)

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('src', type=Path, help="folder in fastai's CIFAR layout: train/<class>/*.png and test/<class>/*.png")
    ap.add_argument('--dest', type=Path, default=ROOT/'arat'/'sample'/'cifar10_sample.tgz', help="archive to write (default: %(default)s)")
    args = ap.parse_args()
    try: data, n = make_sample(args.src, args.dest)
    except FileNotFoundError as e: ap.exit(2, f"{e}\n")
    dest = args.dest
    print(f"{dest}: {n} images, {len(data):,} bytes, sha256 {hashlib.sha256(data).hexdigest()[:16]}")
