"""`keras-kd compress`'s job: teacher -> distilled student -> pruned (clustered, QAT) student -> exports.

Every row of the report is measured on the exported artifact itself: the teacher's
SavedModel, the students' float32 TFLite files and the final full-integer TFLite file,
so size, accuracy and latency are what a server or a phone gets.
"""

import dataclasses
import math
import os
import time

import numpy as np

from keras_kd.backend import ENGINE_DESCRIPTION, IS_TF_KERAS, keras, to_numpy
from keras_kd.compression import artifacts
from keras_kd.compression.export import export_saved_model, export_tflite
from keras_kd.compression.magnitude_pruning import MagnitudePruning
from keras_kd.compression.pruning_schedules import PolynomialDecay
from keras_kd.compression.verify import outputs_of_artifacts_in_fresh_process
from keras_kd.jobs.backup import JobBackup
from keras_kd.jobs.log import say
from keras_kd.jobs.teacher import prepare
from keras_kd.jobs.training import (
    distill,
    seed_role,
    stage_teacher_cache,
    student_builder,
    teacher_and_students,
)
from keras_kd.utils import count_nonzero_params, count_params, snapshot

MEGABYTE = 1e6
PRUNED, CLUSTERED, QAT = "student_kd_pruned", "student_kd_pruned_clustered", "student_kd_pruned_qat"
"""The compression stages' roles: their names in the backup, the logs and the report."""


@dataclasses.dataclass
class StageRow:
    """One row of the compression report: a stage's artifact, its size, accuracy and latency."""

    name: str
    artifact: str
    params: int
    nonzero_params: int
    size_bytes: int
    gzip_bytes: int
    accuracy: float
    latency_ms_batch1: float
    latency_ms_batch64: float

    def as_dict(self):
        return dataclasses.asdict(self)

    @property
    def size_mb(self):
        return self.size_bytes / MEGABYTE


STAGE_COLUMNS = (
    ("stage", lambda r: r.name),
    ("artifact", lambda r: r.artifact),
    ("parameters", lambda r: f"{r.params:,}"),
    ("non-zero", lambda r: f"{r.nonzero_params:,}"),
    ("size (bytes)", lambda r: f"{r.size_bytes:,}"),
    ("gzip (bytes)", lambda r: f"{r.gzip_bytes:,}"),
    ("test accuracy (%)", lambda r: f"{100 * r.accuracy:.2f}"),
    ("ms, batch 1", lambda r: f"{r.latency_ms_batch1:.3f}"),
    ("ms/example, batch 64", lambda r: f"{r.latency_ms_batch64 / 64:.4f}"),
)


def prune_by_distillation(student, teacher, x, y, config, teacher_cache=None):
    """Keep distilling while the kernels are pruned to `config.sparsity`; returns a plain model."""
    seed_role(config, PRUNED)  # before TF-MOT's wrappers are made (`distill` seeds again, the same way)
    steps = math.ceil(len(x) / config.batch_size)
    end_step = steps * max(1, config.prune_epochs - 1)  # the last epoch fine-tunes at full sparsity
    frequency = max(1, steps // 4)
    if IS_TF_KERAS:
        from keras_kd.compression import tfmot

        wrapped = tfmot.prune(
            student, config.sparsity, schedule="polynomial", begin_step=0, end_step=end_step, frequency=frequency
        )
        callbacks = tfmot.pruning_callbacks()
        distill(
            wrapped,
            teacher,
            x,
            y,
            config,
            epochs=config.prune_epochs,
            callbacks=callbacks,
            teacher_cache=teacher_cache,
            role=PRUNED,
        )
        return tfmot.strip(wrapped)
    pruning = MagnitudePruning(PolynomialDecay(0.0, config.sparsity, 0, end_step, frequency=frequency))
    distill(
        student,
        teacher,
        x,
        y,
        config,
        epochs=config.prune_epochs,
        callbacks=[pruning],
        teacher_cache=teacher_cache,
        role=PRUNED,
    )
    return student


def cluster_by_distillation(student, teacher, x, y, config, teacher_cache=None):
    """tf_keras: sparsity-preserving clustering, one epoch of distillation, stripped."""
    from keras_kd.compression import tfmot

    seed_role(config, CLUSTERED)
    clustered = tfmot.cluster(student, config.clusters, preserve_sparsity=True)
    distill(clustered, teacher, x, y, config, epochs=1, teacher_cache=teacher_cache, role=CLUSTERED)
    return tfmot.strip(clustered)


def qat_by_distillation(student, teacher, x, y, config, preserve, teacher_cache=None):
    """tf_keras: quantization-aware distillation (PQAT/CQAT when `preserve` is given)."""
    from keras_kd.compression import tfmot

    seed_role(config, QAT)
    quantized = tfmot.quantize(student, preserve=preserve)
    distill(quantized, teacher, x, y, config, epochs=config.qat_epochs, teacher_cache=teacher_cache, role=QAT)
    return quantized


def run_compress(config, output_folder):
    """Run every stage, export into `output_folder` (`exports/`), measure. Returns `(rows, metadata)`.

    With `config.backup_dir` (the command line sets it), every stage's model is kept there when it
    has trained, and its training state after each epoch: a rerun after a kill loads the stages
    that finished and goes on in the one that was under way.
    """
    config.validate()
    backup = JobBackup.of(config)
    if backup:  # `keras-kd compress` rerun after a kill: the same settings, or a clear error
        backup.check_settings()
    started = time.time()
    keras.utils.set_random_seed(config.seed)
    verbose = config.verbose
    split, (x_test, y_test), teacher = prepare(config, total_steps=5)
    build = student_builder(config, split, teacher.output_shape[-1])
    scratch, kd_student = teacher_and_students(config, split, teacher, total_steps=5, build_student=build)
    x_train, y_train = split.transfer_set  # later stages distil on the same transfer set: one teacher cache
    cache = stage_teacher_cache(config, teacher, kd_student, x_train)
    say(f"[4/5] pruning to {config.sparsity:.0%} sparsity while distilling", verbose)
    to_prune = snapshot(kd_student, PRUNED)
    to_prune.trainable = True
    final = prune_by_distillation(to_prune, teacher, x_train, y_train, config, cache)
    stages = [("teacher", teacher), ("student_scratch", scratch), ("student_kd", kd_student), (PRUNED, final)]
    preserve = "sparsity"
    if config.clusters is not None:
        say(f"      clustering the pruned student's weights into {config.clusters} values while distilling", verbose)
        final = cluster_by_distillation(_trainable_copy(final), teacher, x_train, y_train, config, cache)
        stages.append((CLUSTERED, final))
        preserve = "clusters"
    if config.qat:
        say("      quantization-aware distillation of the pruned student", verbose)
        final = qat_by_distillation(_trainable_copy(final), teacher, x_train, y_train, config, preserve, cache)
        stages.append((QAT, final))

    say("[5/5] exporting and measuring the artifacts", verbose)
    exports = os.path.join(output_folder, "exports")
    rows, artifacts = [], []  # artifacts: (name, kind, path, Keras model), checked in one fresh process
    for name, model in stages:
        if name == "teacher":
            path, kind = (
                export_saved_model(model, os.path.join(exports, "saved_model"), "teacher", version=1),
                "saved_model",
            )
        else:
            path, kind = os.path.join(exports, f"{name}.tflite"), "tflite float32"
            export_tflite(model, path, "float32")
        rows.append(_row(name, kind, path, model, x_test, y_test))
        artifacts.append((name, kind, path, model))
    int8_name = f"{stages[-1][0]}_int8"
    int8_path = os.path.join(exports, f"{int8_name}.tflite")
    export_tflite(final, int8_path, "int8", representative_data=x_train, int8_io=config.int8_io)
    rows.append(_row(int8_name, "tflite int8", int8_path, final, x_test, y_test))
    artifacts.append((int8_name, "tflite", int8_path, final))
    serving = export_saved_model(final, os.path.join(exports, "saved_model"), config.model_name, version=1)
    artifacts.append(("serving_export", "saved_model", serving, final))
    checks = _fresh_process_differences(artifacts, x_test)
    metadata = {
        "engine": ENGINE_DESCRIPTION,
        "seed": config.seed,
        "sparsity": config.sparsity,
        "prune_epochs": config.prune_epochs,
        "clusters": config.clusters,
        "qat": config.qat,
        "recipe": config.recipe,
        "alpha": config.compile_arguments()["alpha"],
        "temperature": config.compile_arguments()["temperature"],
        "student_epochs": config.student_epochs,
        "labeled_examples": int(len(split.labeled[0])),
        "unlabeled_examples": int(len(split.pool)),
        "teacher_epochs": None if config.teacher_path else config.teacher_epochs,
        "serving_export": os.path.relpath(serving, output_folder),
        "fresh_process_max_abs_difference": checks,
        "wall_seconds": round(time.time() - started, 1),
        "cpu_count": os.cpu_count(),
    }
    return rows, metadata


def _fresh_process_differences(artifacts, x_test, count=64):
    """{name: largest |artifact output - Keras output|} on test inputs, the artifacts run by one new process."""
    kinds = [("saved_model" if kind == "saved_model" else "tflite", path) for _, kind, path, _ in artifacts]
    outputs = outputs_of_artifacts_in_fresh_process(kinds, x_test[:count])
    return {
        name: float(np.max(np.abs(got - to_numpy(model(x_test[:count], training=False)))))
        for (name, _, _, model), got in zip(artifacts, outputs)
    }


def _trainable_copy(model):
    # TF-MOT's wrappers take over the layers they wrap: give each stage its own copy, so the
    # model of an earlier stage is still intact when it is exported and measured.
    copy = snapshot(model, model.name)
    copy.trainable = True
    return copy


def _weight_counts(model):
    """(weights, non-zero weights) over kernels and biases, leaving out QAT's quantizer ranges."""
    values = [
        np.asarray(w.numpy())
        for w in model.weights
        if w.name.split("/")[-1].split(":")[0] in ("kernel", "bias", "depthwise_kernel", "pointwise_kernel")
    ]
    if not values:
        return count_params(model), count_nonzero_params(model)
    return int(sum(v.size for v in values)), int(sum(np.count_nonzero(v) for v in values))


def _row(name, kind, path, model, x_test, y_test):
    measured = artifacts.measure(path, "saved_model" if kind == "saved_model" else "tflite", x_test, y_test)
    params, nonzero = _weight_counts(model)
    return StageRow(name=name, artifact=kind, params=params, nonzero_params=nonzero, **measured)
