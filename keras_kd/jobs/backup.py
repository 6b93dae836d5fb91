"""A job's progress kept in `output_dir/backup/`, so that a killed `keras-kd distill` resumes when rerun.

A run with a backup folder (the CLI sets `config.backup_dir`) saves, atomically:
- `settings.json`: the run's settings; a rerun with other settings is refused rather than
  mixing two runs;
- `initial.weights.h5`: the students' shared initial weights;
- `<role>.weights.h5` for each model whose training finished: a rerun loads it instead of
  training again;
- `<role>/`: the `BackupAndRestore` state of the training under way (`keras_kd.training.resume`), from
  which a rerun goes on at the epoch after the last one completed;
- `<role>.best.json` and `<role>.best.weights.h5`: the best epoch on validation so far and its
  weights (`keras_kd.callbacks.KeepBestEpoch`), with every epoch's logs.

Models are keyed by their role in the run (`teacher`, `student_scratch`, `student_kd`,
`assistant`), never by their Keras name: both students are copies of one user model and carry
its name, and a backup keyed by that name handed the distilled student the weights of the
student from labels.
The folder is removed when the job has finished and its outputs are in place.
"""

import dataclasses
import json
import os
import shutil

from keras_kd import atomic
from keras_kd.checks import UsageError
from keras_kd.jobs.log import say
from keras_kd.training import resume

SETTINGS_FILE = "settings.json"
RUN_ONLY = ("verbose", "backup_dir", "tensorboard_dir")
"""Settings that do not change what is trained: a rerun may change them."""


class JobBackup:
    """The backup folder of one run; `JobBackup.of(config)` is None without `config.backup_dir`."""

    def __init__(self, folder, settings, verbose=0):
        self.folder, self.settings, self.verbose = folder, settings, verbose

    @classmethod
    def of(cls, config):
        if not getattr(config, "backup_dir", None):
            return None
        settings = {key: value for key, value in dataclasses.asdict(config).items() if key not in RUN_ONLY}
        return cls(config.backup_dir, json.loads(json.dumps(settings, default=str)), config.verbose)

    def _path(self, name):
        return os.path.join(self.folder, name)

    def check_settings(self):
        """On a rerun, refuse settings that differ from the killed run's (recorded with its first backup)."""
        path = self._path(SETTINGS_FILE)
        if not os.path.exists(path):
            return
        with open(path) as handle:
            recorded = json.load(handle)
        changed = sorted(
            key for key in set(recorded) | set(self.settings) if recorded.get(key) != self.settings.get(key)
        )
        if changed:
            raise UsageError(
                f"{self.folder} holds the backup of a killed run with other settings ({', '.join(changed)}); "
                "rerun it with the same settings to resume, or delete that folder to start afresh."
            )
        say(f"resuming the run backed up in {self.folder}", self.verbose)

    def _start(self):
        """Create the folder and record the settings before the first backup: a run refused before
        training leaves nothing behind."""
        if not os.path.exists(self._path(SETTINGS_FILE)):
            os.makedirs(self.folder, exist_ok=True)
            atomic.write_json(self._path(SETTINGS_FILE), self.settings)

    def initial_weights(self, model):
        """`model`'s initial weights: those of the first run when this is a rerun (saved on a first run)."""
        path = self._path("initial.weights.h5")
        if os.path.exists(path):
            model.load_weights(path)
        else:
            self._start()
            atomic.save_weights(model, path)
        return model.get_weights()

    def finished(self, role, model):
        """True (and `model` holds its trained weights) if an earlier run finished training `role`."""
        path = self._path(f"{role}.weights.h5")
        if not os.path.exists(path):
            return False
        model.load_weights(path)
        say(f"      {role}: trained in an earlier run, loaded from {path}", self.verbose)
        return True

    def callbacks(self, role):
        """A `BackupAndRestore` for the training of `role`: a rerun goes on where it stopped."""
        self._start()
        return [resume.backup_callback(self._path(role))]

    def completed_epochs(self, role):
        """The epochs of `role`'s training that a killed run had completed (0 if none)."""
        return resume.completed_epochs(self._path(role))

    def best_epoch_state(self, role):
        """Where `KeepBestEpoch` keeps `role`'s best epoch so far (`state_path`)."""
        self._start()
        return self._path(f"{role}.best")

    def mark_finished(self, role, model):
        self._start()
        atomic.save_weights(model, self._path(f"{role}.weights.h5"))

    def remove(self):
        shutil.rmtree(self.folder, ignore_errors=True)
