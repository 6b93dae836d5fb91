"""Every method config in examples/configs parses, validates and trains (briefly) through the main job's
training: the teacher loaded, both students trained by `teacher_and_students` (the report and the
measurements of `run_distill` are the CLI tests' subject)."""

import dataclasses
import glob
import os

import pytest

import keras_kd
from keras_kd.backend import is_tensorflow_backed
from keras_kd.jobs.config import DistillConfig
from keras_kd.jobs.teacher import prepare
from keras_kd.jobs.training import teacher_and_students

CONFIGS = sorted(
    glob.glob(os.path.join(os.path.dirname(__file__), "..", "examples", "configs", "**", "*.yaml"), recursive=True)
)


def test_there_is_a_config_per_method():
    names = {os.path.basename(path)[:-5] for path in CONFIGS}
    assert {"kd", "dkd", "dist", "fitnets", "attention_transfer", "rkd", "pkt", "crd", "ls_kd", "mlkd", "ctkd"} <= names
    recipes = {os.path.basename(path)[:-5] for path in CONFIGS if os.sep + "recipes" + os.sep in path}
    assert recipes == set(keras_kd.recipes.RECIPES)


@pytest.fixture(scope="module")
def digits_teacher(tmp_path_factory):
    """The teacher each digits config would train (one epoch, the default seed), trained once and saved:
    the configs differ in how the student learns."""
    if not is_tensorflow_backed() and not os.environ.get("KERAS_KD_ALL_JOBS"):
        return None
    _, _, teacher = prepare(DistillConfig(teacher_epochs=1, verbose=0))
    path = tmp_path_factory.mktemp("teacher") / "teacher.keras"
    teacher.save(path)
    return str(path)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: os.path.basename(p))
def test_config_runs(path, digits_teacher):
    values = DistillConfig.read_yaml(path)
    config = DistillConfig.from_dict({**values, "teacher_epochs": 1, "student_epochs": 1, "verbose": 0})
    if "recipe" in values:
        recipe, arguments = keras_kd.recipes.get(values["recipe"]), config.compile_arguments()
        assert (arguments["alpha"], arguments["temperature"]) == (recipe.alpha, recipe.temperature)
    config.validate()
    if not is_tensorflow_backed() and not os.environ.get("KERAS_KD_ALL_JOBS"):
        # The config -> Distiller wiring is Python; each loss, feature term and schedule is tested on
        # every backend in its own tests. KERAS_KD_ALL_JOBS=1 runs the job here too.
        pytest.skip("the job on every config runs on TensorFlow and tf_keras (KERAS_KD_ALL_JOBS=1: here too)")
    if config.dataset != "digits":
        # Check the layer names against the preset models without loading the data.
        teacher, student = keras_kd.models.build_pair(config.dataset, (28, 28, 1), 10)
        terms = [keras_kd.FeatureDistillation(**term) for term in config.features]
        keras_kd.Distiller(student=student, teacher=teacher, features=terms)
        return
    config = dataclasses.replace(config, teacher_path=digits_teacher)
    records = {}
    split, _, teacher = prepare(config, records=records)
    scratch, distilled = teacher_and_students(config, split, teacher, records=records)
    assert scratch.name == "student_scratch" and distilled.name == "student_kd"
    # The config's alpha and feature terms reached the distilled student's training: its logged
    # loss is alpha * student loss + (1 - alpha) * distillation loss + each term by its weight.
    epoch = records["student_kd"]["epochs"][0]
    alpha = config.compile_arguments()["alpha"]
    if config.alpha_schedule:  # the first epoch's alpha is the schedule's
        alpha = keras_kd.schedules.get(config.alpha_schedule)(0)
    want = alpha * epoch["student_loss"] + (1 - alpha) * epoch["distillation_loss"]
    for term in config.features:
        (key,) = [key for key in epoch if key.endswith(f"_{term['student_layer']}_loss") and "val_" not in key]
        want += term.get("weight", 1.0) * epoch[key]
    assert epoch["loss"] == pytest.approx(want, rel=1e-4)
    if not config.alpha_schedule:
        recipe_alpha = keras_kd.recipes.get(values.get("recipe", "hinton")).alpha
        assert alpha == (values["alpha"] if "alpha" in values else recipe_alpha)


def test_unknown_config_key_lists_the_known_ones():
    with pytest.raises(ValueError, match="known keys: .*distillation_loss"):
        DistillConfig.from_dict({"learning_rat": 0.1})


def test_unknown_loss_name_in_config():
    with pytest.raises(ValueError, match="known distillation losses"):
        DistillConfig(distillation_loss="hinton2").validate()
