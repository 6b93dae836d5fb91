#!/usr/bin/env bash
# Install keras-kd with its test extras and run the suite on every engine and Keras 3 backend:
# Keras 3 on TensorFlow, JAX and PyTorch, and tf_keras (TF_USE_LEGACY_KERAS=1).
# KERAS_KD_BACKENDS="tensorflow tf_keras" limits the runs (default: all four). Each engine's suite runs
# in KERAS_KD_WORKERS processes (pytest-xdist; default 2, one per core here; 0 runs it in this process).
set -euo pipefail
cd "$(dirname "$0")"
python3 -m pip install -q -e ".[test,jax,torch]"
python3 -m pip install -q --no-deps --require-hashes -r requirements-text.txt
export TF_CPP_MIN_LOG_LEVEL=2
workers=${KERAS_KD_WORKERS:-2}
# Tests that share a module's costly fixture carry an xdist_group mark: `loadgroup` keeps each group
# in one worker (the fixture is built once) and spreads every other test one by one.
parallel=(-n "$workers")
if [ "$workers" != 0 ]; then
  parallel+=(--dist loadgroup)
  # One worker a core: each computes on one thread rather than all of them fighting for both cores.
  export TF_NUM_INTRAOP_THREADS=1 OMP_NUM_THREADS=1
fi
for backend in ${KERAS_KD_BACKENDS:-tensorflow tf_keras jax torch}; do
  start=$SECONDS
  if [ "$backend" = "tf_keras" ]; then
    echo "== engine: tf_keras (TF_USE_LEGACY_KERAS=1) =="
    TF_USE_LEGACY_KERAS=1 python3 -m pytest -q "${parallel[@]}" "$@"
  else
    echo "== engine: Keras 3 ($backend backend) =="
    env -u TF_USE_LEGACY_KERAS KERAS_BACKEND="$backend" python3 -m pytest -q "${parallel[@]}" "$@"
  fi
  echo "== engine $backend: $((SECONDS - start)) s =="
done
