"""`keras_kd.tune`: search the distillation settings with KerasTuner, against an equally tuned control.

A distilled student only pays if it beats the student trained from labels alone; comparing a
tuned distillation with an untuned control would flatter distillation. So the control gets the
same budget (trials, epochs, initial weights) over its own setting, the learning rate, and both
are scored on the validation examples held out of the training data. The test set is never
loaded into the search, so it stays an unbiased measure for a later `keras-kd distill`.

Your own data (`train`, `unlabeled`, `validation`, with `teacher` and `student`) is prepared by
the distill job's own code (`jobs.teacher.prepare`): the same validation split, the same
streamed `tf.data` pipelines; `test` is refused rather than read.

KerasTuner is imported inside the functions: `import keras_kd` does not need it.
"""

import dataclasses
import datetime
import json
import os
import tempfile

import numpy as np

from keras_kd import models
from keras_kd.backend import ENGINE_DESCRIPTION, keras
from keras_kd.jobs import teacher as run_teacher
from keras_kd.jobs.config import SEARCHED_RECIPES, TuneConfig
from keras_kd.jobs.data import DataSplit
from keras_kd.jobs.log import say
from keras_kd.jobs.report import accuracy
from keras_kd.jobs.training import (
    distill,
    distilled_epoch_steps,
    needs_indices,
    student_builder,
    train_control,
)
from keras_kd.training import recipes
from keras_kd.training.callbacks import KeepBestEpoch

OBJECTIVE = "val_accuracy"
ALPHA_RANGE = (0.0, 0.9)
TEMPERATURES = (1.0, 2.0, 4.0, 8.0)
LEARNING_RATE_RANGE = (3e-4, 1e-2)
BEST_KEYS = (
    "dataset",
    "recipe",
    "alpha",
    "temperature",
    "learning_rate",
    "teacher_epochs",
    "student_epochs",
    "patience",
    "weight_decay",
    "batch_size",
    "labeled_fraction",
    "validation_split",
    "seed",
)
"""The keys of `best.yaml`: flag names of `keras-kd distill`, so `--config=best.yaml` reruns the setting."""
OWN_DATA_KEYS = ("train", "unlabeled", "validation", "label_column")
"""With your own data, these too (and `teacher`, `student`); `dataset` and `labeled_fraction` do not apply."""


def check_tunable(config, max_trials=None, recipe_names=SEARCHED_RECIPES):
    """`config` as a `TuneConfig`, validated: a ValueError (RuntimeError without KerasTuner) before any training."""
    values = {field.name: getattr(config, field.name) for field in dataclasses.fields(config)}
    if max_trials is not None:
        values["max_trials"] = max_trials
    config = TuneConfig(**{k: v for k, v in values.items() if k in TuneConfig.__dataclass_fields__})
    config.validate(recipe_names=recipe_names)
    return config


def check_output_folder(output_folder):
    """Raise a ValueError before any training if `output_folder` cannot be a folder."""
    if os.path.exists(output_folder) and not os.path.isdir(output_folder):
        raise ValueError(f"The output folder {output_folder!r} exists and is not a folder.")


def tune(config, output_folder, max_trials=None, seed=None, recipe_names=SEARCHED_RECIPES):
    """Search recipe, alpha, temperature and learning rate on validation data; write `best.yaml`.

    The teacher is trained (or loaded) once and shared by every trial. Each distilled trial
    and each control trial (the student from labels alone, searched over its learning rate
    with the same number of trials) starts from the same initial student weights and takes
    as many optimizer steps as `keras-kd distill` gives it.

    Args:
        config: a `TuneConfig` (or a `DistillConfig`); its recipe, alpha, temperature and learning
            rate are searched (the teacher is trained with its learning rate).
        output_folder: receives `best.yaml`, `tune.json` and KerasTuner's projects under `tuner/`.
        max_trials: trials of each search (default `config.max_trials`, 10).
        seed: the searches' random seed (default: `config.seed`).
        recipe_names: the recipes to choose among.

    Returns:
        A dict: `best_settings`, `distilled_val_accuracy`, `control_val_accuracy`,
        `control_settings`.
    """
    config = check_tunable(config, max_trials, recipe_names)
    max_trials = config.max_trials
    check_output_folder(output_folder)
    seed = config.seed if seed is None else seed
    keras.utils.set_random_seed(config.seed)
    split, _, teacher = run_teacher.prepare(config, total_steps=3, test=False)  # no test set in the search
    build = _student_builder(config, split, teacher)
    initial_weights = build("student").get_weights()
    folder = _new_tuner_folder(output_folder)
    quiet = dataclasses.replace(config, verbose=0)  # KerasTuner reports each trial instead

    say(
        f"[2/3] searching {max_trials} distillation settings ({', '.join(recipe_names)}) on "
        f"{split.num_validation} validation examples",
        config.verbose,
    )
    distilled = _search(
        "distilled",
        _distillation_space(recipe_names),
        max_trials,
        seed,
        folder,
        config.verbose,
        lambda settings: _distilled_accuracy(quiet, settings, split, teacher, build, initial_weights),
    )
    say(f"[3/3] searching {max_trials} learning rates for the student from labels alone (the control)", config.verbose)
    control = _search(
        "control",
        _control_space(),
        max_trials,
        seed,
        folder,
        config.verbose,
        lambda settings: _control_accuracy(quiet, settings, split, build, initial_weights),
    )

    best_settings = _best_yaml_values(config, distilled["best"]["settings"])
    summary = _summary(config, split, teacher, distilled, control, max_trials, seed, folder)
    summary["best_settings"] = best_settings
    _write_outputs(output_folder, best_settings, summary)
    print(
        f"\n{format_results(distilled, control)}\n\n{verdict(distilled, control)}\n\n"
        f"best.yaml and tune.json written to {output_folder}",
        flush=True,
    )
    return {
        "best_settings": best_settings,
        "distilled_val_accuracy": distilled["best"][OBJECTIVE],
        "control_val_accuracy": control["best"][OBJECTIVE],
        "control_settings": control["best"]["settings"],
    }


def _summary(config, split, teacher, distilled, control, max_trials, seed, folder):
    """What `tune.json` records: the run's settings and every trial of both searches."""
    return {
        "engine": ENGINE_DESCRIPTION,
        "dataset": config.dataset if not config.train else None,
        "data": {name: getattr(config, name) for name in ("train", "unlabeled", "validation") if getattr(config, name)}
        or config.dataset,
        "objective": f"{OBJECTIVE} (max) on the validation examples held out of the training data; "
        "the test set is not used",
        "max_trials": int(max_trials),
        "seed": seed,
        "validation_examples": int(split.num_validation),
        "teacher_val_accuracy": _score(teacher, split),
        "student_epochs": config.student_epochs,
        "steps_per_epoch": distilled_epoch_steps(config, split),
        "patience": config.patience,
        "distilled": distilled,
        "control": control,
        "difference_points": round(100 * (distilled["best"][OBJECTIVE] - control["best"][OBJECTIVE]), 2),
        "tuner_folder": folder,
    }


def _distillation_space(recipe_names):
    import keras_tuner

    space = keras_tuner.HyperParameters()
    space.Choice("recipe", list(recipe_names))
    space.Float("alpha", *ALPHA_RANGE, step=0.1)
    space.Choice("temperature", list(TEMPERATURES))
    space.Float("learning_rate", *LEARNING_RATE_RANGE, sampling="log")
    return space


def _control_space():
    """The control's one setting: the student from labels has no recipe, alpha or temperature."""
    import keras_tuner

    space = keras_tuner.HyperParameters()
    space.Float("learning_rate", *LEARNING_RATE_RANGE, sampling="log")
    return space


def _settings(values):
    """A trial's values, rounded so that `best.yaml` reads well; the trial trains with these."""
    settings = dict(values)
    if "alpha" in settings:
        settings["alpha"] = round(float(settings["alpha"]), 2)
    if "temperature" in settings:
        settings["temperature"] = float(settings["temperature"])
    settings["learning_rate"] = float(f"{settings['learning_rate']:.3g}")
    return settings


def _search(name, space, max_trials, seed, folder, verbose, evaluate):
    """Run one KerasTuner random search of `evaluate(settings) -> validation accuracy`.

    Returns:
        `{"trials": [{"trial_id", "settings", "val_accuracy"}, ...], "best": {...}}`.
    """
    import keras_tuner

    class Search(keras_tuner.engine.base_tuner.BaseTuner):
        """A tuner whose trial is keras-kd's own training (`Tuner` assumes `Model.fit` on a hypermodel)."""

        def run_trial(self, trial, *args, **kwargs):
            try:
                return {OBJECTIVE: evaluate(_settings(trial.hyperparameters.values))}
            except Exception as error:  # a crash is a bug, not a bad setting: stop the search
                raise keras_tuner.errors.FatalError(f"{name} trial {trial.trial_id} failed: {error!r}") from error

    oracle = keras_tuner.oracles.RandomSearchOracle(
        objective=keras_tuner.Objective(OBJECTIVE, direction="max"),
        max_trials=max_trials,
        seed=seed + 1,  # KerasTuner draws a random seed for 0 (`seed or randint`)
        hyperparameters=space,
    )
    tuner = Search(oracle, directory=folder, project_name=name, overwrite=True)  # `folder` is ours, and new
    tuner.search(verbose=1 if verbose else 0)
    trials = [
        {"trial_id": trial.trial_id, "settings": _settings(trial.hyperparameters.values), OBJECTIVE: trial.score}
        for trial in oracle.trials.values()
    ]
    best_id = oracle.get_best_trials(1)[0].trial_id
    return {"trials": trials, "best": next(trial for trial in trials if trial["trial_id"] == best_id)}


def _student_builder(config, split, teacher):
    """`build(name)` -> a fresh student: `config.student_path` (a file or preset), else the dataset's preset."""
    num_classes = int(teacher.output_shape[-1])
    return student_builder(config, split, num_classes) or (
        lambda name: models.build_model(config.dataset, "student", split.input_shape, num_classes, name)
    )


def _score(model, split):
    """Validation accuracy: the arrays of a built-in data set, or your own files read batch by batch."""
    if isinstance(split, DataSplit):
        return accuracy(model, *split.validation)
    return split.validation_accuracy(model)


def _distilled_accuracy(config, settings, split, teacher, build, initial_weights):
    """Validation accuracy of a student distilled with `settings` from the shared initial weights."""
    trial_config = dataclasses.replace(config, **settings)
    keras.utils.set_random_seed(config.seed)  # same shuffling in every trial: only the settings differ
    size = split.num_labeled + split.num_pool
    x, y = split.transfer_data(trial_config, indices=needs_indices(trial_config, size))
    if recipes.get(trial_config.recipe).assistant:
        assistant = models.build_model(config.dataset, "assistant", split.input_shape, int(teacher.output_shape[-1]))
        teacher = distill(assistant, teacher, x, y, trial_config, num_examples=size)
    student = build("student")
    student.set_weights(initial_weights)
    keeper = KeepBestEpoch(patience=config.patience)  # the jobs' rule: its best epoch on validation
    distill(student, teacher, x, y, trial_config, split.validation_data(trial_config), num_examples=size, keeper=keeper)
    return _score(student, split)


def _control_accuracy(config, settings, split, build, initial_weights):
    """Validation accuracy of the student from labels alone, trained as `keras-kd distill` trains it:
    epochs of a distilled epoch's optimizer steps, its best epoch on validation kept."""
    trial_config = dataclasses.replace(config, **settings)
    keras.utils.set_random_seed(config.seed)
    student = build("student")
    student.set_weights(initial_weights)
    train_control(trial_config, split, student, "student", KeepBestEpoch(patience=config.patience))
    return _score(student, split)


def _new_tuner_folder(output_folder):
    """A fresh folder for this run's KerasTuner projects: an earlier run's are never reloaded or deleted."""
    root = os.path.join(output_folder, "tuner")
    os.makedirs(root, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S-")
    folder = tempfile.mkdtemp(prefix=stamp, dir=root)
    os.chmod(folder, 0o755)  # mkdtemp's 0700 would hide the trials from other users
    return folder


def _best_yaml_values(config, settings):
    keys = BEST_KEYS
    if config.train:
        keys = [key for key in BEST_KEYS if key not in ("dataset", "labeled_fraction")]
        keys += [key for key in OWN_DATA_KEYS if getattr(config, key)]
    values = {key: getattr(config, key) for key in keys}
    values.update(settings)
    if config.data_dir:
        values["data_dir"] = config.data_dir
    if config.teacher_path:
        values["teacher"] = config.teacher_path
    if config.student_path:
        values["student"] = config.student_path
    return {key: value.item() if isinstance(value, np.generic) else value for key, value in values.items()}


def _write_atomically(path, text):
    """Write `text` to a temporary file beside `path`, then move it in: a reader never sees half a file."""
    folder = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", dir=folder)
    try:
        with os.fdopen(handle, "w") as stream:
            stream.write(text)
        os.chmod(temporary, 0o644)  # mkstemp's 0600 would hide the results from other users
        os.replace(temporary, path)
    except BaseException:
        os.remove(temporary)
        raise


def _write_outputs(output_folder, best_settings, summary):
    import yaml

    best, control = summary["distilled"]["best"], summary["control"]["best"]
    header = (
        f"# keras-kd tune: the best of {summary['max_trials']} distillation settings on validation data: "
        f"{100 * best[OBJECTIVE]:.2f}% (the control from labels: {100 * control[OBJECTIVE]:.2f}%).\n"
        "# Rerun with: keras-kd distill --config=best.yaml\n"
    )
    _write_atomically(os.path.join(output_folder, "best.yaml"), header + yaml.safe_dump(best_settings, sort_keys=False))
    _write_atomically(os.path.join(output_folder, "tune.json"), json.dumps(summary, indent=2) + "\n")


def _rows(distilled, control):
    rows = [("distilled", trial) for trial in distilled["trials"]]
    rows += [("from labels", trial) for trial in control["trials"]]
    return sorted(rows, key=lambda row: -row[1][OBJECTIVE])


def format_results(distilled, control):
    """Every trial of both searches as a Markdown table, best validation accuracy first."""
    lines = ["| student | recipe | alpha | T | learning rate | val accuracy (%) |", "|---|---|---:|---:|---:|---:|"]
    for student, trial in _rows(distilled, control):
        settings = trial["settings"]
        lines.append(
            f"| {student} | {settings.get('recipe', '-')} | {settings.get('alpha', '-')} | "
            f"{settings.get('temperature', '-')} | {settings['learning_rate']:.3g} | "
            f"{100 * trial[OBJECTIVE]:.2f} |"
        )
    return "\n".join(lines)


def verdict(distilled, control):
    """One sentence: does the best distilled setting beat the equally tuned control on validation?"""
    best, reference = distilled["best"], control["best"]
    points = 100 * (best[OBJECTIVE] - reference[OBJECTIVE])
    accuracies = (
        f"{100 * best[OBJECTIVE]:.2f}% against {100 * reference[OBJECTIVE]:.2f}% for the best "
        f"student from labels (learning rate {reference['settings']['learning_rate']:.3g})"
    )
    if points > 0:
        settings = best["settings"]
        return (
            f"The best distilled setting (recipe {settings['recipe']}, alpha {settings['alpha']}, "
            f"T {settings['temperature']}, learning rate {settings['learning_rate']:.3g}) beats the "
            f"equally tuned control by {points:.2f} points of validation accuracy: {accuracies}."
        )
    return (
        f"NO distilled setting beat the equally tuned control on validation: the best distilled reached "
        f"{accuracies} ({points:.2f} points)."
    )
