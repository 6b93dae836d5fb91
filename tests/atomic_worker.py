"""Write one kind of output twice, and die by SIGKILL in the middle of the second write.

    python tests/atomic_worker.py KIND FOLDER

The first write (version 1) completes. Then the rename that would commit version 2 is replaced
by: truncate the temporary file to half its size (a write cut short) and SIGKILL this process.
The test then checks that FOLDER still holds version 1, whole and loadable. KIND is one of
json, report, model, cache, tflite, saved_model, folder.
"""

import json
import os
import signal
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from keras_kd import atomic  # noqa: E402

KIND, FOLDER = sys.argv[1], sys.argv[2]
_replace = os.replace


_renames_before_kill = [1 if KIND == "folder" else 0]  # a folder: die between its two renames


def _die_instead_of_replace(source, target, *args, **kwargs):
    if _renames_before_kill[0]:
        _renames_before_kill[0] -= 1
        return _replace(source, target, *args, **kwargs)
    if os.path.isfile(source):
        with open(source, "r+b") as handle:
            handle.truncate(os.path.getsize(source) // 2)
    os.kill(os.getpid(), signal.SIGKILL)


def _arm():
    """From now on, the next commit (rename) of any writer kills the process instead."""
    atomic.os.replace = _die_instead_of_replace
    os.rename = _die_instead_of_replace


def _model(seed):
    from keras_kd.backend import keras

    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])


def write(version):
    path = os.path.join(FOLDER, "out")
    if KIND == "json":
        atomic.write_json(path + ".json", {"version": version, "rows": list(range(10000))})
    elif KIND == "report":
        from keras_kd.jobs.report import ModelRow, write_report

        rows = [ModelRow(f"model_v{version}", 10, 1000, 0.5, 1.0), ModelRow("other", 20, 3000, 0.7, 2.0)]
        write_report(FOLDER, "digits", rows, {"version": version})
    elif KIND == "model":
        atomic.save_model(_model(version), path + ".keras")
    elif KIND == "cache":
        from keras_kd.teacher.cache import TeacherCache

        TeacherCache(np.full((100, 3), version, "float32"), f"v{version}", 100).save(path + ".npz")
    elif KIND == "tflite":
        from keras_kd.compression import export_tflite

        export_tflite(_model(version), path + ".tflite")
    elif KIND == "saved_model":
        from keras_kd.compression import export_saved_model

        export_saved_model(_model(version), FOLDER, name="student")
    elif KIND == "folder":
        with atomic.replaced_folder(os.path.join(FOLDER, "tree")) as staging:
            for index in range(3):
                with open(os.path.join(staging, f"part{index}.json"), "w") as handle:
                    json.dump({"version": version, "part": index}, handle)
    else:
        raise SystemExit(f"unknown kind {KIND!r}")


if __name__ == "__main__":
    os.makedirs(FOLDER, exist_ok=True)
    write(1)
    print("version 1 written", flush=True)
    _arm()
    write(2)
    print("version 2 written: the kill did not happen", flush=True)
