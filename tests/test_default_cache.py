"""The teacher paid once by default: `fit` on arrays keeps the teacher's logits, and trains exactly as
with the teacher run on every step (`teacher_cache=False`), shuffling, `validation_split`,
`validation_data`, `sample_weight` and unlabelled rows included; where the teacher's output can
change (augmentation, self-distillation) or the logits are too large, the teacher runs live."""

import numpy as np
import pytest

import keras_kd
from keras_kd.backend import keras
from tests.conftest import make_mlp, weights_of


def _fit(distiller, x, y, verbose=0, **kwargs):
    keras.utils.set_random_seed(3)
    return distiller.fit(x, y, epochs=3, batch_size=16, verbose=verbose, **kwargs).history


def _distiller(teacher, initial, **compile_args):
    student = make_mlp(4, name="student")
    student.set_weights(initial)
    distiller = keras_kd.Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer=keras.optimizers.SGD(0.1), metrics=["accuracy"], **compile_args)
    return distiller


@pytest.mark.parametrize("case", ["plain", "shuffled_split_weighted", "transfer_set_with_validation"])
def test_kept_logits_train_as_the_live_teacher(data, teacher, case):
    x, y = data
    kwargs, labels = {}, y
    if case == "shuffled_split_weighted":
        kwargs = {"shuffle": True, "validation_split": 0.25, "sample_weight": np.linspace(0.5, 1.5, len(x))}
    elif case == "transfer_set_with_validation":
        labels = y.copy()
        labels[::3] = keras_kd.MISSING_LABEL
        kwargs = {"validation_data": (x[:40] + 0.1, y[:40]), "shuffle": True}
    initial = make_mlp(4, name="student").get_weights()
    live = _distiller(teacher, initial, alpha=0.3, temperature=3.0)
    kept = _distiller(teacher, initial, alpha=0.3, temperature=3.0)
    live_history = _fit(live, x, labels, teacher_cache=False, **kwargs)
    kept_history = _fit(kept, x, labels, **kwargs)
    for key in live_history:
        np.testing.assert_allclose(kept_history[key], live_history[key], rtol=1e-5, atol=1e-6, err_msg=key)
    for a, b in zip(weights_of(live.student), weights_of(kept.student)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_the_teacher_runs_once_over_the_data_by_default_and_every_step_when_asked(data, teacher, monkeypatch):
    """Counted where the teacher's outputs are made: the kept logits' one pass, or the step's teacher
    pass (traced once per function, so the live path is seen through the cache never being built)."""
    from keras_kd.teacher import default as default_cache

    x, y = data
    builds = []
    original = default_cache.TeacherCache.build

    def counting_build(model, inputs, *args, **kwargs):
        builds.append(len(inputs))
        return original(model, inputs, *args, **kwargs)

    monkeypatch.setattr(default_cache.TeacherCache, "build", staticmethod(counting_build))
    initial = make_mlp(4, name="student").get_weights()
    _fit(_distiller(teacher, initial), x, y, validation_data=(x[:32], y[:32]))
    assert builds == [len(x), 32]  # once over the training data, once over the validation data
    builds.clear()
    _fit(_distiller(teacher, initial), x, y, teacher_cache=False)
    assert builds == []


def test_the_teacher_runs_live_where_its_output_can_change_or_is_too_large(data, teacher, capsys):
    from keras_kd.teacher.default import why_live

    x, y = data
    initial = make_mlp(4, name="student").get_weights()
    plain = _distiller(teacher, initial)
    assert why_live(plain, x, []) is None
    assert "SnapshotTeacher" in why_live(plain, x, [keras_kd.callbacks.SnapshotTeacher(1)])
    assert "not in memory" in why_live(plain, iter([x]), [])
    mixup = _distiller(teacher, initial, recipe="function_matching")
    assert "augments" in why_live(mixup, x, [])
    _fit(_distiller(teacher, initial), x, y, teacher_cache_max_bytes=100)
    assert "so the teacher runs on every step" in capsys.readouterr().out
