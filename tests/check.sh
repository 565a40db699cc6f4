#!/usr/bin/env bash
# The project's test command (README, .ci/run): notebooks and library in sync, the docs site, notebook tests, pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}" MKL_NUM_THREADS="${MKL_NUM_THREADS:-2}" OMP_WAIT_POLICY=PASSIVE
export MPLBACKEND=Agg PYTHONWARNINGS="${PYTHONWARNINGS:-ignore::DeprecationWarning}"
bin="$(dirname "$(command -v python)")"
[ -x .venv/bin/nbdev-export ] && bin=.venv/bin

echo "== 1/4 notebooks clean and exported (nbdev-clean, nbdev-export change nothing)"
"$bin/nbdev-clean"
"$bin/nbdev-export"
if [ -n "$(git status --porcelain -- nbs arat)" ]; then
  git status --porcelain -- nbs arat
  git --no-pager diff --stat -- nbs arat
  echo "FAIL: nbdev-clean/nbdev-export changed the files above: run them and commit the result" >&2
  exit 1
fi

echo "== 2/4 docs site: built from the notebooks (a broken link fails it), then checked in headless Chromium"
"$bin/python" tools/build_docs.py --force
if command -v chromium >/dev/null 2>&1 || [ -n "${CI:-}" ]; then
  "$bin/python" tests/docs_browser.py
else
  echo "SKIP the browser check: no chromium here (Debian: apt-get install chromium; .ci/run installs it)"
fi

echo "== 3/4 notebook tests (nbdev-test)"
"$bin/nbdev-test" --n-workers 2 --timing

echo "== 4/4 pytest"
"$bin/python" -m pytest tests -q
