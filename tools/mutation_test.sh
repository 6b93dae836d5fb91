#!/usr/bin/env bash
# Mutation testing of the code whose mistakes are silent: the losses, the transfer-set masking,
# the teacher caches' alignment and the data checks (the files and tests are listed under
# [tool.mutmut] in pyproject.toml). Each mutant is a small change to the code (a sign, an operator,
# a constant, a dropped argument); a good suite fails on it. Not part of CI: about an hour on two
# cores. mutmut keeps its results in ./mutants/, so a second run retests only what changed.
#
#   pip install -e ".[mutation]"
#   tools/mutation_test.sh            # run, then write tools/mutation/score.json and survivors.md
#   tools/mutation_test.sh --report   # only rewrite the two files from ./mutants/
set -euo pipefail
cd "$(dirname "$0")/.."

# One engine, PyTorch: the fastest of the four on these tests here; one compute thread per worker.
export KERAS_BACKEND=torch OMP_NUM_THREADS=1 PYTHONHASHSEED=0
if [[ "${1:-}" != "--report" ]]; then
  mutmut run --max-children "${MUTMUT_WORKERS:-2}" || true  # survivors make mutmut exit non-zero
fi
python tools/mutation_report.py
