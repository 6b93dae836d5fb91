"""Distribution strategies give one device's losses, metrics and weights (tests/distribution_worker.py).

Each case runs in a fresh process, because devices are fixed when TensorFlow or JAX starts:
two logical CPU devices for `tf.distribute.MirroredStrategy`, and
`--xla_force_host_platform_device_count=2` for the Keras distribution API on JAX.
"""

import importlib.util
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from keras_kd.backend import BACKEND, IS_TF_KERAS, is_tensorflow_backed

WORKER = os.path.join(os.path.dirname(__file__), "distribution_worker.py")


def _run(mode, env=None):
    result = subprocess.run(
        [sys.executable, WORKER, mode], capture_output=True, text=True, timeout=600, env={**os.environ, **(env or {})}
    )
    return _result(result)


def _result(result):
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    assert result.returncode == 0 and lines, result.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT ") :])


def _assert_same_as_one_device(result):
    one, many = result["one"], result["many"]
    assert result["replicas"] == 2
    for key, value in one["evaluate"].items():
        assert many["evaluate"][key] == pytest.approx(value, rel=1e-5, abs=1e-6), key
    for key, values in one["fit"].items():
        assert many["fit"][key] == pytest.approx(values, rel=1e-5, abs=1e-6), key
    for a, b in zip(one["student"], many["student"]):
        np.testing.assert_allclose(np.array(b), np.array(a), atol=1e-5)
    # The run trained: the weights moved away from the start.
    assert one["fit"]["loss"][-1] < one["evaluate"]["loss"]


tensorflow_only = pytest.mark.skipif(not is_tensorflow_backed(), reason="tf.distribute: TensorFlow backend or tf_keras")


@tensorflow_only
def test_mirrored_strategy_equals_one_device():
    _assert_same_as_one_device(_run("mirrored"))


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _two_workers():
    """Run the worker twice on 127.0.0.1, as a cluster of two; return both processes' outputs."""
    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    processes = [
        subprocess.Popen(
            [sys.executable, WORKER, "multi_worker"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={
                **os.environ,
                "TF_CONFIG": json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}),
            },
        )
        for index in range(2)
    ]
    outputs = [p.communicate(timeout=600) for p in processes]
    return [subprocess.CompletedProcess(p.args, p.returncode, *out) for p, out in zip(processes, outputs)]


@pytest.mark.skipif(not IS_TF_KERAS, reason="Keras 3 cannot train under MultiWorkerMirroredStrategy (next test)")
def test_multi_worker_mirrored_strategy_with_two_processes_equals_one_device():
    for result in _two_workers():
        _assert_same_as_one_device(_result(result))


@tensorflow_only
@pytest.mark.skipif(IS_TF_KERAS, reason="tf_keras trains under MultiWorkerMirroredStrategy (previous test)")
def test_keras3_refuses_multi_worker_strategy_before_training():
    for result in _two_workers():
        assert "REFUSED Keras 3 cannot train under tf.distribute.MultiWorkerMirroredStrategy" in result.stdout, (
            result.stderr[-2000:]
        )


jax_missing = importlib.util.find_spec("jax") is None


@pytest.mark.skipif(BACKEND != "jax" or jax_missing, reason="the Keras distribution API: the JAX run of the suite")
@pytest.mark.parametrize("mode", ["data_parallel", "model_parallel"])
def test_keras_distribution_api_on_jax_equals_one_device(mode):
    result = _run(mode, env={"TF_USE_LEGACY_KERAS": "0"})
    _assert_same_as_one_device(result)
    if mode == "model_parallel":
        assert "model" in result["many"]["teacher_sharding"]  # the teacher's kernel is split over devices
