"""Feature terms with adapters, several teachers, self-distillation, schedules, caching, augmentation."""

import numpy as np
import pytest

import keras_kd
from keras_kd.backend import keras
from tests import reference
from tests.conftest import make_mlp, weights_of

RNG = np.random.default_rng(3)


def convnet(filters, name):
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu", name="conv")(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dense(filters, name="embed")(x)
    x = keras.layers.ReLU(name="embed_relu")(x)
    return keras.Model(inputs, keras.layers.Dense(3, name="logits")(x), name=name)


@pytest.fixture
def images():
    x = RNG.normal(size=(64, 8, 8, 1)).astype("float32")
    return x, (x.mean(axis=(1, 2, 3)) > 0).astype("int64") + (x[:, 0, 0, 0] > 1).astype("int64")


def test_feature_terms_with_adapters_are_logged_and_match_numpy(images):
    x, y = images
    teacher, student = convnet(8, "teacher"), convnet(4, "student")
    features = [
        keras_kd.FeatureDistillation("fitnets", "conv", "conv", weight=2.0, name="hint"),
        keras_kd.FeatureDistillation({"name": "rkd", "angle_weight": 0.0}, "embed", "embed", weight=0.5, name="rkd"),
        keras_kd.FeatureDistillation("at", "conv", "conv", weight=10.0, name="at"),
    ]
    distiller = keras_kd.Distiller(student=student, teacher=teacher, features=features)
    # FitNets needs equal shapes: a 1x1 conv maps 4 channels to 8; RKD and AT need none.
    assert isinstance(distiller.adapters[0], keras.layers.Conv2D)
    assert not isinstance(distiller.adapters[1], (keras.layers.Conv2D, keras.layers.Dense))
    distiller.compile(optimizer="adam", alpha=0.5, temperature=2.0)
    results = distiller.evaluate(x, y, batch_size=len(x), verbose=0, return_dict=True)
    assert {"hint_loss", "rkd_loss", "at_loss"} <= set(results)

    def probe(model):
        layers = [model.get_layer("conv").output, model.get_layer("embed").output]
        return keras.Model(model.inputs[0], [model.output, *layers])

    probe_t, probe_s = probe(teacher), probe(student)
    t_logits, t_conv, t_embed = [np.asarray(o) for o in probe_t(x)]
    s_logits, s_conv, s_embed = [np.asarray(o) for o in probe_s(x)]
    adapted = np.asarray(distiller.adapters[0](s_conv))
    hint = reference.fitnets(t_conv, adapted).mean()
    rkd = reference.rkd(t_embed, s_embed, 25.0, 0.0)
    at = reference.attention_transfer(t_conv, s_conv).mean()
    assert results["hint_loss"] == pytest.approx(hint, rel=1e-4)
    assert results["rkd_loss"] == pytest.approx(rkd, rel=1e-3)
    assert results["at_loss"] == pytest.approx(at, rel=1e-4)
    response = (
        0.5 * reference.crossentropy(y, s_logits).mean() + 0.5 * reference.hinton_kd(t_logits, s_logits, 2.0).mean()
    )
    assert results["loss"] == pytest.approx(response + 2.0 * hint + 0.5 * rkd + 10.0 * at, rel=1e-4)


def test_adapters_train_but_are_not_part_of_the_student(images):
    x, y = images
    teacher, student = convnet(8, "teacher"), convnet(4, "student")
    distiller = keras_kd.Distiller(
        student=student, teacher=teacher, features=[keras_kd.FeatureDistillation("fitnets", "conv", "conv")]
    )
    adapter_before = weights_of(distiller.adapters[0])
    teacher_before = weights_of(teacher)
    distiller.compile(optimizer=keras.optimizers.Adam(0.01), alpha=0.5)
    distiller.fit(x, y, epochs=2, batch_size=16, verbose=0)
    assert any(not np.array_equal(a, b) for a, b in zip(adapter_before, weights_of(distiller.adapters[0])))
    for a, b in zip(teacher_before, weights_of(teacher)):
        np.testing.assert_array_equal(a, b)
    assert not any("adapter" in w.name for w in distiller.student.weights)


def test_unknown_layer_lists_the_layers():
    with pytest.raises(ValueError, match="no layer named 'nope'.*conv"):
        keras_kd.Distiller(
            student=convnet(4, "s"),
            teacher=convnet(8, "t"),
            features=[keras_kd.FeatureDistillation("fitnets", "nope", "conv")],
        )


def test_shapes_no_adapter_can_reconcile():
    with pytest.raises(ValueError, match="cannot map"):
        keras_kd.Distiller(
            student=convnet(4, "s"),
            teacher=convnet(8, "t"),
            features=[keras_kd.FeatureDistillation("fitnets", "conv", "embed")],
        )


def test_subclassed_model_hides_its_features():
    class Hidden(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(3)

        def call(self, x):
            return self.dense(x)

    teacher = make_mlp(8)
    with pytest.raises(TypeError, match="subclassed"):
        keras_kd.Distiller(
            student=Hidden(),
            teacher=teacher,
            features=[keras_kd.FeatureDistillation("fitnets", teacher.layers[0].name, "dense")],
        )


def test_response_loss_in_a_feature_term_is_refused():
    with pytest.raises(ValueError, match="feature loss"):
        keras_kd.FeatureDistillation("dkd", "a", "b")


def test_dkd_gets_the_labels_through_the_distiller(data, teacher, student):
    x, y = data
    distiller = keras_kd.Distiller(student=student, teacher=teacher)
    distiller.compile(
        optimizer="adam", distillation_loss_fn={"name": "dkd", "non_target_weight": 2.0}, alpha=0.5, temperature=3.0
    )
    results = distiller.evaluate(x, y, batch_size=len(x), verbose=0, return_dict=True)
    want = reference.dkd(np.asarray(teacher(x, training=False)), np.asarray(student(x)), y, 1.0, 2.0, 3.0).mean()
    assert results["distillation_loss"] == pytest.approx(want, rel=1e-4)


def test_several_teachers_average_their_soft_targets(data, student):
    x, y = data
    teachers = [make_mlp(8), make_mlp(16)]
    distiller = keras_kd.Distiller(student=student, teacher=teachers, teacher_weights=[3, 1])
    distiller.compile(optimizer="adam", alpha=0.0, temperature=2.0)
    results = distiller.evaluate(x, y, batch_size=len(x), verbose=0, return_dict=True)
    from scipy.special import softmax

    mixture = sum(w * softmax(np.asarray(t(x), np.float64) / 2.0, axis=-1) for w, t in zip((0.75, 0.25), teachers))
    log_p_s = np.log(softmax(np.asarray(student(x), np.float64) / 2.0, axis=-1))
    want = 4.0 * np.mean(np.sum(mixture * (np.log(mixture) - log_p_s), axis=-1))
    assert results["distillation_loss"] == pytest.approx(want, rel=1e-4)


def test_bad_teacher_weights():
    with pytest.raises(ValueError, match="teacher_weights"):
        keras_kd.Distiller(student=make_mlp(4), teacher=[make_mlp(8), make_mlp(8)], teacher_weights=[1.0])


def test_self_distillation_refreshes_the_teacher(data):
    """Refreshed every epoch, the teacher is the student of the epoch before: with one batch an epoch
    each epoch's distillation loss is taken before that epoch's step, against an identical teacher,
    so it is 0; a teacher left at its first snapshot (or its logits kept from epoch 1) gives more."""
    x, y = data
    student = make_mlp(8)
    teacher = keras_kd.utils.snapshot(student)
    distiller = keras_kd.Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer=keras.optimizers.Adam(0.05), alpha=0.5)
    callback = keras_kd.callbacks.SnapshotTeacher(every_n_epochs=1)
    history = distiller.fit(x, y, epochs=3, batch_size=len(x), verbose=0, callbacks=[callback]).history
    np.testing.assert_allclose(history["distillation_loss"], 0.0, atol=1e-6)
    for a, b in zip(weights_of(teacher), weights_of(student)):
        np.testing.assert_array_equal(a, b)
    assert teacher.trainable is False
    stale = keras_kd.Distiller(student=make_mlp(8), teacher=keras_kd.utils.snapshot(make_mlp(8)))
    stale.compile(optimizer=keras.optimizers.Adam(0.05), alpha=0.5)
    losses = stale.fit(x, y, epochs=3, batch_size=len(x), verbose=0).history["distillation_loss"]
    assert losses[-1] > 1e-3  # without the refresh the loss is not 0: the check above can fail


def test_schedules_set_alpha_and_temperature_each_epoch(data, teacher, student):
    x, y = data
    seen = []
    distiller = keras_kd.Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer="adam", alpha=0.9, temperature=1.0)
    scheduler = keras_kd.callbacks.DistillationScheduler(
        alpha={"name": "warmup", "start": 1.0, "end": 0.0, "epochs": 2},
        temperature=keras_kd.schedules.Cosine(8.0, 2.0, 2),
    )
    probe = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: seen.append(
            (logs["alpha"], logs["temperature"], logs["loss"], logs["distillation_loss"], logs["student_loss"])
        )
    )
    distiller.fit(x, y, epochs=3, batch_size=len(x), verbose=0, callbacks=[scheduler, probe])
    assert [s[:2] for s in seen] == [pytest.approx((1.0, 8.0)), pytest.approx((0.5, 5.0)), pytest.approx((0.0, 2.0))]
    # The traced step reads the variables: at alpha 0 the loss is the distillation loss alone.
    assert seen[2][2] == pytest.approx(seen[2][3], rel=1e-5)
    assert seen[0][2] == pytest.approx(seen[0][4], rel=1e-5)


def test_teacher_cache_gives_the_same_training_as_the_teacher(data, teacher):
    x, y = data
    first, second = make_mlp(4), make_mlp(4)
    second.set_weights(first.get_weights())
    for model, cache in ((first, None), (second, keras_kd.TeacherCache.build(teacher, x))):
        distiller = keras_kd.Distiller(student=model, teacher=teacher)
        distiller.compile(optimizer=keras.optimizers.SGD(0.1), alpha=0.3, temperature=3.0)
        keras.utils.set_random_seed(5)  # same shuffling order for both
        distiller.fit(x, y, epochs=2, batch_size=16, verbose=0, teacher_cache=cache)
    for a, b in zip(weights_of(first), weights_of(second)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_teacher_cache_refuses_other_data_and_round_trips(tmp_path, data, teacher, student):
    x, y = data
    cache = keras_kd.TeacherCache.build(teacher, x)
    distiller = keras_kd.Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer="adam")
    with pytest.raises(ValueError, match="built from 96 examples"):
        distiller.fit(x[:50], y[:50], teacher_cache=cache, verbose=0)
    shuffled = x[::-1].copy()
    with pytest.raises(ValueError, match="fingerprints"):
        distiller.fit(shuffled, y, teacher_cache=cache, verbose=0)
    cache.save(str(tmp_path / "cache.npz"))
    loaded = keras_kd.TeacherCache.load(str(tmp_path / "cache.npz"))
    np.testing.assert_array_equal(loaded.logits, cache.logits)
    loaded.check(x)


def test_augmentation_reaches_teacher_and_student(data, teacher, student):
    x, y = data
    seen = []

    class Blank(keras.layers.Layer):
        def call(self, inputs, training=None):
            seen.append(training)
            return inputs * 0.0  # a view both models must see

    blank = np.zeros_like(x)
    want = reference.hinton_kd(teacher(blank, training=False), student(blank), 2.0).mean()
    distiller = keras_kd.Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer="adam", alpha=0.0, temperature=2.0, augmentation=Blank())
    logs = distiller.fit(x, y, epochs=1, batch_size=len(x), verbose=0).history
    assert seen and all(seen)  # applied in training mode
    # One batch: the logged loss is that of the initial student on the augmented view.
    assert logs["distillation_loss"][0] == pytest.approx(want, rel=1e-3, abs=1e-6)
    with pytest.raises(ValueError, match="function matching"):
        distiller.fit(x, y, teacher_cache=keras_kd.TeacherCache.build(teacher, x), verbose=0)


@pytest.mark.parametrize("layer", ["RandAugment", "MixUp", "CutMix"])
def test_keras_augmentation_layers_serve_function_matching_on_either_engine(layer):
    import keras as keras3  # Keras 3's layers work on TensorFlow tensors under tf_keras too

    kwargs = {"value_range": (0, 1)} if layer == "RandAugment" else {}
    x = RNG.uniform(size=(32, 8, 8, 1)).astype("float32")
    augmentation = getattr(keras3.layers, layer)(**kwargs)
    views = np.asarray(augmentation(x, training=True))
    assert views.shape == x.shape and not np.allclose(views, x)  # it changes the images
    # A teacher identical to the student: the distillation loss is 0 only if both saw the same view.
    student = convnet(4, "s")
    distiller = keras_kd.Distiller(student=student, teacher=keras_kd.utils.snapshot(student))
    distiller.compile(optimizer=keras.optimizers.SGD(0.0), alpha=0.0, augmentation=augmentation)
    history = distiller.fit(x, None, epochs=1, batch_size=32, verbose=0).history
    assert history["distillation_loss"][0] == pytest.approx(0.0, abs=1e-6)
