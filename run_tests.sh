#!/usr/bin/env bash
# Install keras-kd with its test extras and run the suite on both Keras engines.
set -euo pipefail
cd "$(dirname "$0")"
python3 -m pip install -q -e ".[test]"
python3 -m pip install -q --no-deps --require-hashes -r requirements-text.txt
export TF_CPP_MIN_LOG_LEVEL=2
echo "== engine: Keras 3 (TensorFlow backend) =="
env -u TF_USE_LEGACY_KERAS python3 -m pytest -q "$@"
echo "== engine: tf_keras (TF_USE_LEGACY_KERAS=1) =="
TF_USE_LEGACY_KERAS=1 python3 -m pytest -q "$@"
