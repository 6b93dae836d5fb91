"""The one search of the jobs (`keras_kd.jobs.sweep`): both students try as many settings, each keeps
its best epoch on validation, and the arm keeps the trial best on validation, on signals no example uses."""

import dataclasses

import numpy as np
import pytest

from keras_kd.backend import keras
from keras_kd.jobs import sweep
from keras_kd.jobs.config import DistillConfig
from keras_kd.jobs.data import split_data
from keras_kd.jobs.training import teacher_and_students
from tests import signals


def config(**overrides):
    values = dict(student_epochs=3, patience=3, batch_size=32, verbose=0, seed=3, labeled_fraction=0.1)
    return DistillConfig(**{**values, **overrides})


def test_both_students_get_grids_of_the_same_size_and_the_control_balances_alpha_and_t_by_weight_decay():
    grids = sweep.grids(config(learning_rate_grid=["1e-3", "3e-3"], alpha_grid=["0.2", "0.8"], temperature_grid=[4]))
    assert len(grids["student_scratch"]) == len(grids["student_kd"]) == 4
    assert {(s["alpha"], s["temperature"]) for s in grids["student_kd"]} == {(0.2, 4.0), (0.8, 4.0)}
    assert {s["learning_rate"] for s in grids["student_scratch"]} == {1e-3, 3e-3}
    assert sorted({s["weight_decay"] for s in grids["student_scratch"]}) == [0.0, 1e-4]
    # No grid: one setting each, the run's own (the recipe's alpha and T).
    plain = sweep.grids(config(learning_rate=2e-3, weight_decay=1e-5))
    assert plain == {
        "student_scratch": [{"learning_rate": 2e-3, "weight_decay": 1e-5}],
        "student_kd": [{"learning_rate": 2e-3, "alpha": 0.5, "temperature": 2.0, "weight_decay": 1e-5}],
    }
    assert not sweep.is_search(config()) and sweep.is_search(config(temperature_grid=[1, 4]))


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"learning_rate_grid": ["1e-3", "0"]}, "learning rate must be > 0"),
        ({"alpha_grid": ["1.5"]}, "alpha"),
        ({"temperature_grid": ["-1"]}, "temperature"),
        ({"learning_rate_grid": ["fast"]}, "takes numbers"),
        ({"learning_rate_grid": ["1e-3", "3e-3"], "validation_split": 0.0}, "chooses on validation data"),
        ({"alpha_grid": [0.1, 0.3, 0.5, 0.7], "temperature_grid": [1, 2]}, "at most 6 weight decays"),
    ],
)
def test_a_grid_that_cannot_run_is_refused_before_training(overrides, message):
    with pytest.raises(ValueError, match=message):
        config(**overrides).validate()


def test_each_arm_keeps_its_trial_best_on_validation_at_that_trials_best_epoch(monkeypatch):
    from keras_kd.jobs import training

    x, y = signals.signals(900, seed=11)
    run = config(learning_rate_grid=["1e-5", "3e-3", "3e-2"], alpha_grid=["0.5"], validation_split=0.3)
    run.validate()
    split = split_data(run, x, y)
    teacher = signals.conv_teacher(keras)
    teacher.compile(keras.optimizers.Adam(3e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    teacher.fit(x, y, epochs=4, batch_size=64, verbose=0)
    starts, make_keeper = {}, training.keeper_of

    def keeper(trial_config, role, has_validation):  # notes each trial's weights as its training begins
        kept = make_keeper(trial_config, role, has_validation)
        begin = kept.on_train_begin

        def on_train_begin(logs=None):
            starts[role] = [np.array(w) for w in kept._trained().get_weights()]
            begin(logs)

        kept.on_train_begin = on_train_begin
        return kept

    monkeypatch.setattr(training, "keeper_of", keeper)
    records = {}
    scratch, distilled = teacher_and_students(
        run, split, teacher, build_student=lambda name: signals.dense_student(keras, name=name), records=records
    )
    x_val, y_val = split.validation
    for arm, model in (("student_scratch", scratch), ("student_kd", distilled)):
        record = records[arm]
        assert [trial["settings"]["learning_rate"] for trial in record["trials"]] == [1e-5, 3e-3, 3e-2]
        scores = [trial["validation"] for trial in record["trials"]]
        best = int(np.argmax([-1.0 if score is None else score for score in scores]))  # None: diverged
        assert record["chosen"] == record["trials"][best]["settings"], scores
        assert record["chosen"]["learning_rate"] != 1e-5, scores  # too slow to learn in 3 epochs
        # The arm's model is that trial's, at its best epoch: its validation accuracy is the one recorded.
        accuracy = np.mean(np.argmax(model.predict(x_val, verbose=0), -1) == y_val)
        assert accuracy == pytest.approx(scores[best], abs=1e-6)
        assert record["best_epoch"] == record["trials"][best]["best_epoch"]
    # Every trial of both arms started from the same weights.
    roles = [f"{arm}_trial{i}" for arm in ("student_scratch", "student_kd") for i in (1, 2, 3)]
    assert sorted(starts) == sorted(roles)
    for role in roles[1:]:
        assert all(np.array_equal(a, b) for a, b in zip(starts[roles[0]], starts[role])), role


def test_a_diverged_trial_is_left_out_of_the_choice_and_a_search_where_all_diverge_fails():
    from keras_kd.data.checks import NonFiniteLossError
    from keras_kd.training.callbacks import KeepBestEpoch

    run = config(learning_rate_grid=["1e-3", "1.0", "1e-2"])
    scores = {1e-3: 0.6, 1e-2: 0.5}

    def train_trial(trial_config, role):
        if trial_config.learning_rate not in scores:
            raise NonFiniteLossError("diverged")
        keeper = KeepBestEpoch()
        keeper.best, keeper.best_epoch = scores[trial_config.learning_rate], 2
        return role, keeper

    model, _, selection = sweep.search("student_kd", run, train_trial, log=lambda text: None)
    assert model == "student_kd_trial1" and selection["chosen"]["learning_rate"] == 1e-3
    assert selection["trials"][1]["validation"] is None and "diverged" in selection["trials"][1]["failed"]
    scores.clear()
    with pytest.raises(NonFiniteLossError, match="Every setting of student_kd's search diverged"):
        sweep.search("student_kd", run, train_trial, log=lambda text: None)


def test_a_trial_that_diverges_is_left_out_of_either_students_search():
    """Both students search alike: a learning rate that drives the loss to NaN is dropped from the
    student from labels' search (a plain Keras fit) as from the distilled student's."""
    x, y = signals.signals(300, seed=14)
    run = config(student_epochs=2, learning_rate_grid=["1e-3", "inf"])  # Adam steps of inf: NaN weights
    records = {}
    teacher_and_students(
        run,
        split_data(run, x, y),
        signals.conv_teacher(keras),
        build_student=lambda name: signals.dense_student(keras, name=name),
        records=records,
    )
    for arm in ("student_scratch", "student_kd"):
        trials = records[arm]["trials"]
        assert trials[0]["validation"] is not None and "failed" not in trials[0], arm
        assert trials[1]["validation"] is None and "non-finite" in trials[1]["failed"], (arm, trials[1])
        assert records[arm]["chosen"]["learning_rate"] == 1e-3


@pytest.mark.parametrize(
    "job, values, message",
    [
        ("compress", {"learning_rate_grid": ["1e-3", "3e-3"]}, "distils its later stages with one setting"),
        ("tune", {"alpha_grid": ["0.1", "0.5"]}, "runs its own search"),
        # --alpha=0 alone would pass: the grid's 0.5 is what has no labels to weigh.
        ("distill", {"alpha": 0.0, "alpha_grid": ["0", "0.5"], "unlabeled": "pool.npz"}, "alpha_grid.*0.5"),
    ],
)
def test_a_grid_where_no_search_can_run_is_refused(job, values, message, tmp_path):
    from keras_kd.jobs.config import CompressConfig, TuneConfig

    if "unlabeled" in values:  # distilling from a pool alone: every alpha of the grid must be 0
        np.savez(tmp_path / "pool.npz", x=np.zeros((4, 3), "float32"))
        np.savez(tmp_path / "test.npz", x=np.zeros((4, 3), "float32"), y=np.zeros(4, "int64"))
        teacher = tmp_path / "teacher.keras"
        keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]).save(teacher)
        values = {**values, "unlabeled": str(tmp_path / "pool.npz"), "test": str(tmp_path / "test.npz")}
        values.update(teacher_path=str(teacher), student_path="digits")
    job_config = {"compress": CompressConfig, "tune": TuneConfig, "distill": DistillConfig}[job](**values)
    with pytest.raises(ValueError, match=message):
        job_config.validate()


def test_a_run_without_a_grid_trains_one_trial_per_arm_under_the_arms_own_role():
    x, y = signals.signals(300, seed=12)
    run = config(student_epochs=1)
    split = split_data(run, x, y)
    teacher = signals.conv_teacher(keras)
    records = {}
    teacher_and_students(
        run, split, teacher, build_student=lambda name: signals.dense_student(keras, name=name), records=records
    )
    assert [len(records[arm]["trials"]) for arm in ("student_scratch", "student_kd")] == [1, 1]
    assert sweep.trial_role("student_kd", 0, 1) == "student_kd"
    assert sweep.trial_role("student_kd", 1, 3) == "student_kd_trial2"


def test_the_control_trains_with_adamw_at_its_weight_decay(monkeypatch):
    from keras_kd.jobs import training

    made = []
    original = training.optimizer
    monkeypatch.setattr(training, "optimizer", lambda cfg: made.append(cfg.weight_decay) or original(cfg))
    assert isinstance(original(dataclasses.replace(config(), weight_decay=1e-3)), keras.optimizers.AdamW)
    assert type(original(config())) is keras.optimizers.Adam
    x, y = signals.signals(300, seed=13)
    run = config(student_epochs=1, alpha_grid=["0.2", "0.8"])
    teacher_and_students(
        run,
        split_data(run, x, y),
        signals.conv_teacher(keras),
        build_student=lambda name: signals.dense_student(keras, name=name),
    )
    assert made == [0.0, 1e-4, 0.0, 0.0]  # the control's two weight decays, then the distilled two trials
