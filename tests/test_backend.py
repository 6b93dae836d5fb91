"""The engine follows TF_USE_LEGACY_KERAS, and keras-kd never sets that variable itself."""

import os
import subprocess
import sys

import pytest

SCRIPT = "import os, keras_kd\nprint(keras_kd.ENGINE, os.environ.get('TF_USE_LEGACY_KERAS'))\n"


@pytest.mark.parametrize("value, engine", [(None, "keras3"), ("1", "tf_keras"), ("true", "tf_keras"), ("0", "keras3")])
def test_engine_follows_the_environment(value, engine):
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    if value is not None:
        env["TF_USE_LEGACY_KERAS"] = value
    env["PYTHONPATH"] = os.getcwd()
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == [engine, str(value)]
