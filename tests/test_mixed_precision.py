"""Mixed precision: the Distiller trains under `mixed_float16` and `mixed_bfloat16` on every backend.

Models compute in 16 bits; keras-kd's losses are computed in float32 (`as_float32`), and the
optimizer is a loss-scaling one under `mixed_float16`, as Keras makes it for any model.
"""

import numpy as np
import pytest

import keras_kd
from keras_kd.backend import keras, to_numpy
from tests.conftest import NUM_CLASSES, NUM_FEATURES


def dtype_name(tensor):
    """'float16', 'bfloat16', 'float32' from a TensorFlow, JAX or PyTorch tensor."""
    return str(getattr(tensor.dtype, "name", tensor.dtype)).split(".")[-1]


def mlp(hidden):
    return keras.Sequential(
        [keras.Input((NUM_FEATURES,)), keras.layers.Dense(hidden, activation="relu"), keras.layers.Dense(NUM_CLASSES)]
    )


def distil(data):
    x, y = data
    keras.utils.set_random_seed(0)
    teacher, student = mlp(32), mlp(8)
    distiller = keras_kd.Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer=keras.optimizers.SGD(0.1), metrics=["accuracy"], alpha=0.5, temperature=2.0)
    before = [np.array(w, dtype="float32") for w in student.get_weights()]
    history = distiller.fit(x, y, epochs=3, batch_size=32, verbose=0).history
    return distiller, before, history


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_distils_with_float32_losses(data, policy):
    x, y = data
    _, _, float32_history = distil(data)
    keras.mixed_precision.set_global_policy(policy)
    try:
        distiller, before, history = distil(data)
        outputs = distiller.student(x[:8])
        loss = distiller.compute_loss(x=x[:8], y=y[:8], y_pred=outputs)
        outputs_32 = distiller.student(x[:32])
        distiller.student_loss_tracker.reset_state()
        distiller.compute_loss(x=x[:32], y=y[:32], y_pred=outputs_32, training=False)
        student_loss = float(to_numpy(distiller.student_loss_tracker.result()))
        logits = to_numpy(outputs_32).astype("float64")  # 16-bit values, exactly
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert dtype_name(outputs) == policy.split("_")[1]  # the model computes in 16 bits
    assert dtype_name(loss) == "float32"  # the loss does not
    # The label loss of those 16-bit logits, computed in float32: as exact as float32 allows (a
    # 16-bit cross-entropy would be off by about 1e-3 relative).
    log_probs = (
        logits
        - np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1, keepdims=True))
        - logits.max(1, keepdims=True)
    )
    expected = -log_probs[np.arange(32), y[:32]].mean()
    assert student_loss == pytest.approx(expected, rel=2e-6)
    if policy == "mixed_float16":
        assert "LossScaleOptimizer" in type(distiller.optimizer).__name__
    assert all(np.isfinite(history["loss"]))
    after = [np.array(w, dtype="float32") for w in distiller.student.get_weights()]
    assert any(np.abs(a - b).max() > 1e-4 for a, b in zip(after, before))  # it trained
    # 16-bit arithmetic, the same run otherwise: the losses follow the float32 run's closely.
    np.testing.assert_allclose(history["loss"], float32_history["loss"], rtol=0.05)
