"""Named recipes resolve to compile settings, explicit arguments win, and each runs a step."""

import numpy as np
import pytest

import keras_kd
from keras_kd.backend import keras


def _images(n=16):
    rng = np.random.default_rng(0)
    return rng.random((n, 4, 4, 1)).astype("float32"), rng.integers(0, 3, n)


def _image_model(name):
    return keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(), keras.layers.Dense(3)], name=name)


# The documented settings (docs/when_distillation_pays.md and each recipe's paper), written here
# rather than read from the table the code uses, so that a wrong value in the table fails.
DOCUMENTED = {
    "hinton": ("KDLoss", 0.5, 2.0, None),
    "function_matching": ("KDLoss", 0.0, 1.0, "MixUp"),  # Beyer et al.: no label loss, T 1, mixed views
    "dist": ("DISTLoss", 0.5, 1.0, None),
}


@pytest.mark.parametrize("name", sorted(DOCUMENTED))
def test_each_recipe_compiles_to_its_documented_settings(name, teacher, student):
    loss, alpha, temperature, augmentation = DOCUMENTED[name]
    distiller = keras_kd.Distiller(student=student, teacher=teacher)
    distiller.compile(recipe=name)
    assert type(distiller.distillation_loss_fn).__name__ == loss
    assert (distiller.alpha, distiller.temperature) == (alpha, temperature)
    assert type(distiller.augmentation).__name__ == augmentation if augmentation else distiller.augmentation is None


def test_the_teacher_assistant_recipe_is_refused_by_a_distiller_with_the_two_steps(teacher, student):
    """One Distiller holds two models; the assistant is a third: the API says how, the CLI does it."""
    distiller = keras_kd.Distiller(student=student, teacher=teacher)
    with pytest.raises(ValueError, match="distil the assistant from the teacher"):
        distiller.compile(recipe="teacher_assistant")
    assert keras_kd.recipes.get("teacher_assistant").assistant


@pytest.mark.parametrize("name", sorted(DOCUMENTED))
def test_every_recipe_resolves_and_trains_one_step(name):
    x, y = _images()
    student, teacher = _image_model("s"), _image_model("t")
    before = [w.copy() for w in student.get_weights()]
    distiller = keras_kd.Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer=keras.optimizers.SGD(0.1), recipe=name)
    recipe = keras_kd.recipes.get(name)
    assert distiller.alpha == recipe.alpha and distiller.temperature == recipe.temperature
    assert (distiller.augmentation is None) == (recipe.augmentation is None)
    history = distiller.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert any(not np.array_equal(b, a) for b, a in zip(before, student.get_weights()))


def test_explicit_arguments_override_the_recipe(teacher, student):
    distiller = keras_kd.Distiller(student=student, teacher=teacher)
    distiller.compile(recipe="function_matching", alpha=0.3, temperature=5.0, augmentation=False)
    assert (distiller.alpha, distiller.temperature, distiller.augmentation) == (0.3, 5.0, None)


def test_default_is_the_hinton_recipe_with_the_documented_temperature(teacher, student):
    distiller = keras_kd.Distiller(student=student, teacher=teacher)
    distiller.compile()
    assert distiller.temperature == keras_kd.recipes.DEFAULT_TEMPERATURE
    assert distiller.alpha == keras_kd.recipes.get("hinton").alpha
    assert type(distiller.distillation_loss_fn).__name__ == "KDLoss"


def test_unknown_recipe_lists_the_known_ones(teacher, student):
    distiller = keras_kd.Distiller(student=student, teacher=teacher)
    with pytest.raises(ValueError, match="known recipes: dist, function_matching, hinton, teacher_assistant"):
        distiller.compile(recipe="magic")
