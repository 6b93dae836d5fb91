"""Shared fixtures: tiny data and models, built with the active engine."""

import os
import shutil
import tempfile
import zlib

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from keras_kd.backend import BACKEND, ENGINE, keras  # noqa: E402

if BACKEND == "torch":
    # The tests compare model outputs with NumPy (np.asarray(student(x))); a PyTorch output
    # carries gradients and refuses that. Detach first, as keras.ops.convert_to_numpy does.
    import torch

    _tensor_array = torch.Tensor.__array__

    def _detached_array(self, *args, **kwargs):
        return _tensor_array(self.detach().cpu(), *args, **kwargs)

    torch.Tensor.__array__ = _detached_array

NUM_FEATURES = 8
NUM_CLASSES = 3


# Whole jobs (the CLI in subprocesses, own-data folders, search, atomic writes under kill): the
# code under them is engine-independent Python, tested on every engine below them, and the CLI
# itself runs on every engine in tests/test_acceptance.py; so each job module runs on the engine
# its users run it with, to keep the four-engine suite under 30 minutes: the command line on
# Keras 3's default TensorFlow backend, the language-model example on JAX (its README's
# `KERAS_BACKEND=jax`). tf_keras keeps the jobs whose code differs there (test_compress_cli:
# TF-MOT; test_resume: its own checkpoint callback). KERAS_KD_ALL_ENGINES=1 runs every job on
# every engine.
JOB_ENGINES = {
    "test_cli": {"tensorflow"},
    "test_tune": {"tensorflow"},
    "test_user_data": {"tensorflow"},
    "test_atomic": {"tensorflow"},
    "test_sweep": {"tensorflow"},
    "test_language_model_example": {"jax"},
}


_JAX_CACHE = pytest.StashKey[str]()


def pytest_configure(config):
    """On JAX, one compilation cache for the whole run: its workers and the scripts that the tests
    run in subprocesses compile the same tiny models again and again, and XLA's compile is most of
    their time. It lives in a temporary folder, so no run reads another run's programs."""
    if BACKEND != "jax" or "JAX_COMPILATION_CACHE_DIR" in os.environ:
        return
    import jax

    # A size limit turns on JAX's file lock (the `filelock` package of the test extras), so two
    # workers never read an entry half written; without it, each worker compiles for itself.
    try:
        import filelock  # noqa: F401
    except ImportError:
        return
    folder = tempfile.mkdtemp(prefix="keras-kd-jax-compilations-")
    config.stash[_JAX_CACHE] = folder
    settings = {"compilation_cache_dir": folder, "compilation_cache_max_size": 2**31}
    for name, value in settings.items():
        os.environ[f"JAX_{name.upper()}"] = str(value)  # for the workers and subprocesses started later
        jax.config.update(f"jax_{name}", value)


def pytest_unconfigure(config):
    if _JAX_CACHE in config.stash:
        shutil.rmtree(config.stash[_JAX_CACHE], ignore_errors=True)


def pytest_collection_modifyitems(config, items):
    from keras_kd.backend import IS_TF_KERAS

    engine = "tf_keras" if IS_TF_KERAS else BACKEND
    if os.environ.get("KERAS_KD_ALL_ENGINES") == "1":
        return
    for item in items:
        engines = JOB_ENGINES.get(item.module.__name__.rsplit(".", 1)[-1])
        if engines is not None and engine not in engines:
            reason = f"job-level test: runs on the {' and '.join(sorted(engines))} engine (KERAS_KD_ALL_ENGINES=1: all)"
            item.add_marker(pytest.mark.skip(reason=reason))


def pytest_report_header(config):
    from keras_kd.backend import ENGINE_DESCRIPTION

    return f"keras-kd engine: {ENGINE_DESCRIPTION}"


@pytest.fixture(autouse=True)
def _seed(request):
    keras.utils.set_random_seed(1234)
    # A module's shared generator (`RNG = np.random.default_rng(...)`) gives each test the same draws
    # whichever tests ran before it in that process (pytest-xdist spreads them over workers).
    if isinstance(getattr(request.module, "RNG", None), np.random.Generator):
        request.module.RNG = np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, NUM_FEATURES)).astype("float32")
    y = (x[:, 0] > 0).astype("int64") + (x[:, 1] > 0.5).astype("int64")
    return x, y


def make_mlp(hidden=16, classes=NUM_CLASSES, name=None, dropout=0.0, batch_norm=False, final_activation=None):
    layers = [keras.Input((NUM_FEATURES,)), keras.layers.Dense(hidden, activation="relu")]
    if batch_norm:
        layers.append(keras.layers.BatchNormalization())
    if dropout:
        layers.append(keras.layers.Dropout(dropout))
    layers.append(keras.layers.Dense(classes, activation=final_activation))
    return keras.Sequential(layers, name=name)


@pytest.fixture
def teacher(data):
    x, y = data
    model = make_mlp(32, name="teacher", dropout=0.5, batch_norm=True)
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=3, verbose=0)
    return model


@pytest.fixture
def student():
    return make_mlp(4, name="student")


def weights_of(model):
    return [np.array(w) for w in model.get_weights()]


def engine():
    return ENGINE
