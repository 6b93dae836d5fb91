#!/usr/bin/env bash
# Release checks, run by .ci/run after the test suite, in the same virtual environment:
# house style (ruff), the Bazel tests, the documentation site in a browser, the wheel in a new
# virtual environment. Each step prints its wall time. Bazel and Chromium come from Debian
# (.ci/run installs them when it runs as root); without them their steps are skipped with a note.
set -euo pipefail
cd "$(dirname "$0")/.."

# Every step runs even when an earlier one failed (a lint error should not hide a broken wheel);
# the script fails at the end, naming the steps that failed.
failed=()
timed() {
  local name="$1"
  shift
  echo "== $name =="
  local start=$SECONDS status=0
  "$@" || status=$?
  echo "== $name: $((SECONDS - start)) s, exit $status =="
  if [ "$status" != 0 ]; then failed+=("$name"); fi
}


timed "install the release tools (.[dev])" python3 -m pip install -q -e ".[dev]"
timed "ruff check" ruff check .
timed "ruff format --check ." ruff format --check .

if command -v bazel >/dev/null; then
  bazel_tests() {
    # BUILD is generated from the imports. Others add modules and tests without regenerating
    # it, so a stale BUILD is regenerated for this run with a loud note rather than failing CI.
    if ! python3 tools/bazel/generate_build.py --check; then
      echo "note: BUILD is out of date with the sources; regenerated for this run. Commit the output of"
      echo "      python tools/bazel/generate_build.py"
      python3 tools/bazel/generate_build.py
    fi
    # The venv's python3 is first on PATH: the toolchain finds it (tools/bazel/python_interpreter.bzl).
    local status=0
    bazel test //... || status=$?
    bazel shutdown
    return $status
  }
  timed "bazel test //... (fast tests; slow ones tagged)" bazel_tests
else
  echo "note: bazel not installed (Debian's bazel-bootstrap); the Bazel step is skipped"
fi

if ! command -v chromium >/dev/null; then
  echo "note: chromium not installed; the page checks of the docs site will be skipped"
fi
timed "docs site: mkdocs build --strict, every page in headless Chromium" \
  env KERAS_KD_RELEASE_CHECKS=1 python3 -m pytest -q -p no:cacheprovider tests/test_docs_site.py
timed "examples and benchmarks at tiny sizes" env KERAS_KD_RELEASE_CHECKS=1 python3 -m pytest -q -p no:cacheprovider tests/test_examples.py
timed "wheel and sdist: python -m build, the wheel installed into a new venv" \
  env KERAS_KD_RELEASE_CHECKS=1 python3 -m pytest -q -p no:cacheprovider tests/test_packaging.py

if [ ${#failed[@]} -gt 0 ]; then
  printf 'release checks failed: %s\n' "${failed[@]}"
  exit 1
fi
echo "release checks passed"
