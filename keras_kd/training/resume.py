"""Resume a killed run: a `BackupAndRestore` whose backup is never half written.

`keras.callbacks.BackupAndRestore` saves the training state at the end of every epoch and,
when `fit` is run again after a crash, restores it and goes on from the epoch after the last
backup. The Distiller is built when it is made, so the callback works on it as on any Keras
model, with its teachers, a teacher cache, `DistillationScheduler` (which sets alpha and T
from the epoch) and `keras_kd.compression.MagnitudePruning` (which takes its step from the
optimizer's restored step count) or TF-MOT's wrappers.

Keras 3's callback writes its weights file and then its epoch file in place: a kill during the
first leaves a truncated file that stops every later run, a kill between the two makes a rerun
train one epoch twice. `backup_callback` returns one whose backup is committed by a single
rename: the weights go to a new file under a temporary name, are renamed, and only then is the
small state file that names them replaced (atomically); the previous weights are removed last.
tf_keras's own callback writes a TensorFlow checkpoint, whose index is replaced atomically: it
is returned as it is.

A checkpoint keeps the weights, not the draw counters of random layers (Keras 3's
`SeedGenerator`: dropout, noise, random augmentation): the callback sets each counter from the
epoch when the epoch begins, so a resumed epoch draws the same masks as an uninterrupted run's.
tf_keras's random layers draw from stateful ops whose position no checkpoint keeps: there, an
epoch that a rerun repeats draws other masks.

Example:
>>> backup = keras_kd.training.resume.backup_callback("runs/cifar")   # runs/cifar/backup/
>>> distiller.fit(x, y, epochs=100, callbacks=[backup])      # rerun the same line after a kill
"""

import json
import os

from keras_kd import atomic
from keras_kd.backend import IS_TF_KERAS, keras

BACKUP_FOLDER = "backup"
_STATE_FILE = "state.json"
_DRAWS_PER_EPOCH = 2**20
"""The counter of a random layer's seed moves by one per draw: epochs start this many draws apart."""


def backup_dir(output_dir):
    """The folder under `output_dir` where a run's backup lives (removed when `fit` completes)."""
    return os.path.join(output_dir, BACKUP_FOLDER)


def backup_callback(output_dir, save_freq="epoch", delete_checkpoint=True):
    """A `BackupAndRestore` callback that keeps its state in `output_dir/backup/`, written atomically.

    Args:
        output_dir: the run's output folder; the backup is `output_dir/backup/`.
        save_freq: `"epoch"` (default) or a number of batches; a rerun goes on from the start of the
            epoch after the last completed one either way (Keras resumes by epoch).
        delete_checkpoint: remove the backup when `fit` completes (default), so that the next run
            in the same folder starts afresh.

    Returns:
        A `keras.callbacks.BackupAndRestore` to pass to `Distiller.fit(callbacks=[...])`.
    """
    folder = backup_dir(output_dir)
    if IS_TF_KERAS:
        return keras.callbacks.BackupAndRestore(folder, save_freq=save_freq, delete_checkpoint=delete_checkpoint)
    return AtomicBackupAndRestore(folder, save_freq=save_freq, delete_checkpoint=delete_checkpoint)


def completed_epochs(output_dir):
    """The epochs that the backup in `output_dir/backup/` had completed when its run was killed: the
    epoch a rerun goes on from (0 without a backup; tf_keras's checkpoint is not read here)."""
    path = os.path.join(backup_dir(output_dir), _STATE_FILE)
    if IS_TF_KERAS or not os.path.exists(path):
        return 0
    with open(path) as handle:
        return int(json.load(handle)["epoch"])


if not IS_TF_KERAS:

    class AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):
        """Keras 3's `BackupAndRestore`, its weights and epoch committed together by one rename.

        `backup_dir/state.json` names the weights file of the last complete backup and its epoch;
        it is the only file replaced in place (by `os.replace`), so a kill at any moment leaves
        either the previous backup or the new one, each loadable.
        """

        def __init__(self, backup_dir, save_freq="epoch", delete_checkpoint=True):
            super().__init__(backup_dir, save_freq=save_freq, delete_checkpoint=delete_checkpoint)
            self._saves = 0

        def on_epoch_begin(self, epoch, logs=None):
            super().on_epoch_begin(epoch, logs)
            set_random_layers_to_epoch(self.model, epoch)

        def _state_path(self):
            return os.path.join(self.backup_dir, _STATE_FILE)

        def _load_model(self):
            path = self._state_path()
            if not os.path.exists(path):
                return
            with open(path) as handle:
                state = json.load(handle)
            optimizer = self.model.optimizer
            if optimizer is not None and not optimizer.built:
                optimizer.build(self.model.trainable_variables)
            self.model.load_weights(os.path.join(self.backup_dir, state["weights"]))
            self.model._initial_epoch = state["epoch"]
            self._saves = state.get("saves", 0)

        def _save_model(self):
            os.makedirs(self.backup_dir, exist_ok=True)
            self._saves += 1
            name = f"weights-{self._saves:06d}.weights.h5"
            atomic.save_weights(self.model, os.path.join(self.backup_dir, name))
            state = {
                "epoch": self._current_epoch,
                "batch": self._last_batch_seen,
                "weights": name,
                "saves": self._saves,
            }
            atomic.write_json(self._state_path(), state)  # the commit point
            for old in os.listdir(self.backup_dir):
                if old.endswith(".weights.h5") and old != name:
                    os.remove(os.path.join(self.backup_dir, old))

    def set_random_layers_to_epoch(model, epoch):
        """Set the draw counter of every `SeedGenerator` in `model` (its state: `[seed, counter]`) to a
        value of `epoch` alone, keeping its seed."""
        for layer in model._flatten_layers():
            for generator in getattr(layer, "_seed_generators", ()):
                state = generator.state
                seed = keras.ops.convert_to_numpy(state.value)[0]
                counter = (epoch * _DRAWS_PER_EPOCH) % 2**31
                state.assign(keras.ops.convert_to_tensor([seed, counter], dtype=state.dtype))

else:
    AtomicBackupAndRestore = set_random_layers_to_epoch = None
