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


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_tf_ops_added_for_the_top_k_tail_and_uld_match_numpy_on_every_axis(axis):
    """tf_keras has no keras.ops: `take_along_axis`, `sort` and `pad` of `keras_kd.backend.tf_ops`
    stand in for them and must give NumPy's values on any axis."""
    import numpy as np

    from keras_kd.backend import tf_ops

    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 4, 5))
    indices = rng.integers(0, x.shape[axis], size=tuple(2 if a == axis % 3 else n for a, n in enumerate(x.shape)))
    np.testing.assert_array_equal(tf_ops.take_along_axis(x, indices, axis=axis), np.take_along_axis(x, indices, axis))
    np.testing.assert_array_equal(tf_ops.sort(x, axis=axis), np.sort(x, axis=axis))
    widths = [[0, 0], [1, 2], [0, 3]]
    np.testing.assert_array_equal(tf_ops.pad(x, widths), np.pad(x, widths))
