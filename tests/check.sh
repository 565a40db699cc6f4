#!/usr/bin/env bash
# The project's test command (README, .ci/run): notebooks and library in sync, notebook tests, pytest.
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

echo "== 2/4 docs pipeline (nbdev-proc-nbs, the part of the docs build that needs no Quarto)"
"$bin/python" tools/proc_docs.py

echo "== 3/4 notebook tests (nbdev-test)"
"$bin/nbdev-test" --n-workers 2 --timing

echo "== 4/4 pytest"
"$bin/python" -m pytest tests -q
