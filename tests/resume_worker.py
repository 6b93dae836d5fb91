"""One distillation run with `keras_kd.training.resume.backup_callback`, for the kill-and-resume tests.

    python tests/resume_worker.py OUTPUT_DIR [--kill-at EPOCH:BATCH] [--kill-during-save N] [--no-backup]

The run: a fixed teacher and student, a teacher cache, a `DistillationScheduler` (alpha and
T by epoch) and pruning (`MagnitudePruning` on Keras 3; TF-MOT's wrappers on tf_keras),
6 epochs. `--kill-at` sends SIGKILL to this process before that batch; `--kill-during-save`
kills it in the middle of writing its N-th backup (a truncated weights file on Keras 3; on
tf_keras after the checkpoint's data files, before its index is replaced). A run that
completes writes `OUTPUT_DIR/result.npz` (the student's weights) and `result.json`.
"""

import argparse
import json
import os
import signal

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

import keras_kd  # noqa: E402
from keras_kd.backend import IS_TF_KERAS, keras  # noqa: E402
from keras_kd.training import resume  # noqa: E402
from keras_kd.training.callbacks import DistillationScheduler  # noqa: E402

EPOCHS, FEATURES, CLASSES = 6, 8, 3


def _kill():
    os.kill(os.getpid(), signal.SIGKILL)


class KillAt(keras.callbacks.Callback):
    def __init__(self, epoch, batch):
        super().__init__()
        self.epoch, self.batch, self.current = epoch, batch, -1

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if (self.current, batch) == (self.epoch, self.batch):
            _kill()


def _kill_during_save(count):
    """Make the `count`-th backup write die half-way."""
    calls = [0]
    if IS_TF_KERAS:
        from tensorflow.python.checkpoint import checkpoint_management

        original = checkpoint_management.update_checkpoint_state_internal

        def update(*args, **kwargs):
            calls[0] += 1
            if calls[0] == count:
                _kill()  # the data files are written; the index that names them is not
            return original(*args, **kwargs)

        checkpoint_management.update_checkpoint_state_internal = update
        return
    original = keras.Model.save_weights

    def save_weights(self, filepath, *args, **kwargs):
        original(self, filepath, *args, **kwargs)
        calls[0] += 1
        if calls[0] == count:
            with open(filepath, "r+b") as handle:  # as if killed while the file was being written
                handle.truncate(os.path.getsize(filepath) // 2)
            _kill()

    keras.Model.save_weights = save_weights


def _models():
    keras.utils.set_random_seed(7)
    teacher = keras.Sequential(
        [keras.Input((FEATURES,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(CLASSES)]
    )
    student = keras.Sequential(
        [keras.Input((FEATURES,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(CLASSES)]
    )
    return teacher, student


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("output_dir")
    parser.add_argument("--kill-at", default=None)
    parser.add_argument("--kill-during-save", type=int, default=0)
    parser.add_argument("--no-backup", action="store_true")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(160, FEATURES)).astype("float32")
    y = (x[:, 0] > 0).astype("int64") + (x[:, 1] > 0.5).astype("int64")
    teacher, student = _models()
    callbacks = [
        DistillationScheduler(
            alpha={"name": "linear", "start": 0.9, "end": 0.1, "epochs": EPOCHS},
            temperature={"name": "linear", "start": 4.0, "end": 1.0, "epochs": EPOCHS},
        )
    ]
    if IS_TF_KERAS:
        from keras_kd.compression.tfmot.prune import prune, pruning_callbacks

        student = prune(student, 0.5, schedule="polynomial", end_step=30, frequency=5)
        callbacks += pruning_callbacks()
    else:
        from keras_kd.compression import MagnitudePruning, PolynomialDecay

        callbacks.append(MagnitudePruning(PolynomialDecay(0.0, 0.5, 0, 30, frequency=5)))
    if not args.no_backup:
        callbacks.append(resume.backup_callback(args.output_dir))
    if args.kill_at:
        callbacks.append(KillAt(*(int(v) for v in args.kill_at.split(":"))))
    if args.kill_during_save:
        _kill_during_save(args.kill_during_save)
    cache = keras_kd.TeacherCache.build(teacher, x)
    distiller = keras_kd.Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer=keras.optimizers.Adam(0.01))
    history = distiller.fit(
        x, y, epochs=EPOCHS, batch_size=32, shuffle=False, verbose=0, callbacks=callbacks, teacher_cache=cache
    )
    os.makedirs(args.output_dir, exist_ok=True)
    weights = {f"w{i}": np.asarray(w) for i, w in enumerate(distiller.student.get_weights())}
    np.savez(os.path.join(args.output_dir, "result.npz"), **weights)
    with open(os.path.join(args.output_dir, "result.json"), "w") as handle:
        json.dump({"epochs_run": [int(e) for e in history.epoch]}, handle)


if __name__ == "__main__":
    main()
