"""What `fit`, `evaluate` and `predict` of the Distiller do to the weights and what they report."""

import numpy as np
import pytest
import tensorflow as tf

import keras_kd
from keras_kd.backend import IS_TF_KERAS, keras
from tests import reference
from tests.conftest import make_mlp, weights_of


def compiled(student, teacher, **kwargs):
    distiller = keras_kd.Distiller(student=student, teacher=teacher)
    settings = dict(optimizer=keras.optimizers.Adam(0.01), metrics=["accuracy"], alpha=0.3, temperature=4.0)
    settings.update(kwargs)
    distiller.compile(**settings)
    return distiller


def test_keras_example_call_runs_unchanged(data, teacher, student):
    x, y = data
    distiller = keras_kd.Distiller(student=student, teacher=teacher)
    distiller.compile(
        optimizer=keras.optimizers.Adam(),
        metrics=[keras.metrics.SparseCategoricalAccuracy()],
        student_loss_fn=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        distillation_loss_fn=keras.losses.KLDivergence(),
        alpha=0.1,
        temperature=10,
    )
    history = distiller.fit(x, y, epochs=2, verbose=0)
    assert {"loss", "student_loss", "distillation_loss", "sparse_categorical_accuracy"} <= set(history.history)
    results = distiller.evaluate(x, y, verbose=0, return_dict=True)
    assert {"loss", "student_loss", "distillation_loss", "sparse_categorical_accuracy"} <= set(results)
    assert distiller.predict(x, verbose=0).shape == (len(x), 3)


def test_teacher_frozen_student_trained(data, teacher, student):
    x, y = data
    teacher_before, student_before = weights_of(teacher), weights_of(student)
    compiled(student, teacher).fit(x, y, epochs=2, batch_size=16, verbose=0)
    for before, after in zip(teacher_before, weights_of(teacher)):
        np.testing.assert_array_equal(before, after)  # bit-identical, batch-norm statistics included
    changed = [not np.array_equal(b, a) for b, a in zip(student_before, weights_of(student))]
    assert all(changed)


def test_only_student_variables_are_trainable(teacher, student):
    distiller = compiled(student, teacher)
    trainable = {id(v) for v in distiller.trainable_variables}
    assert trainable == {id(v) for v in student.trainable_variables}


def test_teacher_runs_in_inference_mode(data, teacher, student):
    # The teacher has dropout 0.5: in training mode two evaluations would differ.
    x, y = data
    distiller = compiled(student, teacher)
    first = distiller.compute_loss(x=x, y=y, y_pred=student(x), training=True)
    second = distiller.compute_loss(x=x, y=y, y_pred=student(x), training=True)
    assert float(first) == float(second)
    want = reference.hinton_kd(teacher(x, training=False), student(x), 4.0).mean()
    distiller.distillation_loss_tracker.reset_state()
    distiller.compute_loss(x=x, y=y, y_pred=student(x))
    assert float(distiller.distillation_loss_tracker.result()) == pytest.approx(want, rel=1e-4)


@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
def test_evaluate_reports_the_loss_computed_by_hand(data, teacher, student, alpha):
    x, y = data
    distiller = compiled(student, teacher, alpha=alpha, temperature=2.5)
    results = distiller.evaluate(x, y, batch_size=len(x), verbose=0, return_dict=True)
    student_logits, teacher_logits = np.asarray(student(x)), np.asarray(teacher(x, training=False))
    student_loss = reference.crossentropy(y, student_logits).mean()
    distillation_loss = reference.hinton_kd(teacher_logits, student_logits, 2.5).mean()
    if alpha > 0:
        assert results["student_loss"] == pytest.approx(student_loss, rel=1e-4)
    assert results["distillation_loss"] == pytest.approx(distillation_loss, rel=1e-4)
    total = alpha * (student_loss if alpha > 0 else 0.0) + (1 - alpha) * distillation_loss
    assert results["loss"] == pytest.approx(total, rel=1e-4)
    accuracy = np.mean(np.argmax(student_logits, -1) == y)
    assert results["accuracy"] == pytest.approx(accuracy, abs=1e-6)


def test_sample_weight_reaches_both_losses(data, teacher, student):
    x, y = data
    weights = np.where(np.arange(len(x)) % 2 == 0, 1.0, 0.0).astype("float32")
    distiller = compiled(student, teacher, alpha=0.5, temperature=3.0)
    results = distiller.evaluate(x, y, sample_weight=weights, batch_size=len(x), verbose=0, return_dict=True)
    s, t = np.asarray(student(x)), np.asarray(teacher(x, training=False))
    assert results["student_loss"] == pytest.approx(np.sum(reference.crossentropy(y, s) * weights) / len(x), rel=1e-4)
    assert results["distillation_loss"] == pytest.approx(
        np.sum(reference.hinton_kd(t, s, 3.0) * weights) / len(x), rel=1e-4
    )


def test_alpha_one_is_training_on_labels_alone(data, teacher):
    x, y = data
    kd_student, plain_student = make_mlp(4), make_mlp(4)
    plain_student.set_weights(kd_student.get_weights())
    compiled(kd_student, teacher, alpha=1.0, optimizer=keras.optimizers.SGD(0.1)).fit(
        x, y, epochs=2, batch_size=16, shuffle=False, verbose=0
    )
    plain_student.compile(
        optimizer=keras.optimizers.SGD(0.1), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    plain_student.fit(x, y, epochs=2, batch_size=16, shuffle=False, verbose=0)
    for a, b in zip(weights_of(kd_student), weights_of(plain_student)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_alpha_zero_moves_student_towards_teacher(data, teacher, student):
    x, _ = data
    distiller = compiled(student, teacher, alpha=0.0, temperature=2.0)
    before = reference.hinton_kd(teacher(x, training=False), student(x), 2.0).mean()
    distiller.fit(x, None, epochs=30, batch_size=32, verbose=0)  # no labels needed at alpha=0
    after = reference.hinton_kd(teacher(x, training=False), student(x), 2.0).mean()
    assert after < 0.5 * before


def test_sparse_and_one_hot_labels_give_the_same_losses(data, teacher, student):
    x, y = data
    distiller = compiled(student, teacher, metrics=None)
    sparse = distiller.evaluate(x, y, verbose=0, return_dict=True)
    one_hot = distiller.evaluate(x, np.eye(3)[y], verbose=0, return_dict=True)
    for key in ("loss", "student_loss", "distillation_loss"):
        assert sparse[key] == pytest.approx(one_hot[key], rel=1e-5)


def test_datasets_and_generators_train(data, teacher, student):
    x, y = data
    distiller = compiled(student, teacher)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    history = distiller.fit(dataset, epochs=1, verbose=0, validation_data=dataset)
    assert "val_distillation_loss" in history.history

    def generator():
        while True:
            for start in range(0, len(x), 16):
                yield x[start : start + 16], y[start : start + 16]

    before = weights_of(student)
    distiller.fit(generator(), steps_per_epoch=3, epochs=1, verbose=0)
    assert any(not np.array_equal(b, a) for b, a in zip(before, weights_of(student)))


def test_callbacks_see_every_term(data, teacher, student):
    x, y = data
    seen = []
    callback = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(dict(logs)))
    compiled(student, teacher).fit(x, y, epochs=1, verbose=0, callbacks=[callback])
    assert {"loss", "student_loss", "distillation_loss", "accuracy"} <= set(seen[0])


def test_the_students_activity_regularization_is_in_the_loss_on_every_backend(data, teacher):
    x, y = data

    def student_with(regularizer):
        keras.utils.set_random_seed(3)
        return keras.Sequential(
            [
                keras.Input((x.shape[1],)),
                keras.layers.Dense(8, activation="relu", activity_regularizer=regularizer),
                keras.layers.Dense(3),
            ]
        )

    losses = {}
    for name, regularizer in (("plain", None), ("regularized", keras.regularizers.L2(100.0))):
        distiller = compiled(student_with(regularizer), teacher)
        logs = distiller.evaluate(x, y, batch_size=len(x), verbose=0, return_dict=True)
        losses[name] = logs["loss"]
        # The label and distillation terms do not see the regularizer: the same in both.
        losses[name + "_terms"] = (logs["student_loss"], logs["distillation_loss"])
    assert losses["plain_terms"] == pytest.approx(losses["regularized_terms"], rel=1e-6)
    assert losses["regularized"] > losses["plain"] + 1.0  # JAX once dropped it (stateless forward pass)


class _AddOne(keras.layers.Layer):
    """An augmentation whose effect is visible in the statistics: x + 1 while training."""

    def call(self, x, training=None):
        return x + 1.0 if training else x


@pytest.mark.parametrize("method", ["augmentation", "features"])
def test_one_student_forward_pass_a_step_batchnorm_updates_once(teacher, method):
    """BatchNorm's moving mean after one step equals one update on the view the student trained on
    (the augmented batch), not two updates (Keras's forward pass and ours)."""
    from keras_kd.backend import to_numpy

    x = np.random.default_rng(0).normal(size=(16, 8)).astype("float32")
    y = np.arange(16) % 3
    inputs = keras.Input((8,))
    normalized = keras.layers.BatchNormalization(momentum=0.5, name="bn")(inputs)
    hidden = keras.layers.Dense(3, name="hidden")(normalized)
    student = keras.Model(inputs, keras.layers.Dense(3)(hidden))
    if method == "augmentation":
        distiller = keras_kd.Distiller(student=student, teacher=teacher)
        distiller.compile(optimizer=keras.optimizers.SGD(0.0), augmentation=_AddOne())
        seen = x + 1.0
    else:
        term = keras_kd.FeatureDistillation("fitnets", teacher_layer=teacher.layers[0].name, student_layer="hidden")
        distiller = keras_kd.Distiller(student=student, teacher=teacher, features=[term])
        distiller.compile(optimizer=keras.optimizers.SGD(0.0))
        seen = x
    distiller.fit(x, y, batch_size=16, epochs=1, verbose=0)
    moving_mean = to_numpy(student.get_layer("bn").moving_mean)
    np.testing.assert_allclose(moving_mean, 0.5 * seen.mean(axis=0), rtol=1e-4, atol=1e-5)


def test_a_student_loss_with_reduction_sum_sums_over_the_batch(data, teacher, student):
    x, y = data
    distiller = keras_kd.Distiller(student=student, teacher=teacher)
    distiller.compile(student_loss_fn=keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="sum"))
    result = distiller.evaluate(x, y, batch_size=len(x), verbose=0, return_dict=True)
    logits = np.asarray(student(x)).astype("float64")
    log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    expected = -log_probs[np.arange(len(y)), y].sum()
    assert result["student_loss"] == pytest.approx(expected, rel=1e-5)


def test_recompiling_without_the_augmentation_drops_its_state(teacher, student):
    distiller = keras_kd.Distiller(student=student, teacher=teacher)
    distiller.compile(augmentation=keras.layers.GaussianNoise(0.1, seed=1))
    with_augmentation = {v.path if hasattr(v, "path") else v.name for v in distiller.variables}
    distiller.compile(augmentation=False)
    without = {v.path if hasattr(v, "path") else v.name for v in distiller.variables}
    before = {
        v.path if hasattr(v, "path") else v.name for v in keras_kd.Distiller(student=student, teacher=teacher).variables
    }
    assert without == before
    if not IS_TF_KERAS:  # Keras 3's layer keeps a seed generator's state
        assert len(with_augmentation) == len(before) + 1
