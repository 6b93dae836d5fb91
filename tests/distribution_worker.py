"""Train one Distiller on one device and under a distribution strategy; print both results as JSON.

Run in its own process (devices are fixed when TensorFlow or JAX starts):
    python tests/distribution_worker.py mirrored|data_parallel|model_parallel|multi_worker
(multi_worker: one process per worker, each with its TF_CONFIG.)
"""

import json
import os
import sys

MODE = sys.argv[1]
DEVICES = 2
if MODE in ("data_parallel", "model_parallel"):
    os.environ["KERAS_BACKEND"] = "jax"
    os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={DEVICES}"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

if MODE == "multi_worker":  # one process per worker, TF_CONFIG set by the caller
    import tensorflow as tf

    STRATEGY = tf.distribute.MultiWorkerMirroredStrategy()  # before any other TensorFlow op
elif MODE == "mirrored":
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * DEVICES)

from keras_kd import Distiller  # noqa: E402
from keras_kd.backend import keras  # noqa: E402

FEATURES, CLASSES, ROWS, BATCH = 6, 4, 128, 32


def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(ROWS, FEATURES)).astype("float32")
    y = np.abs(x[:, 0] * 2).astype("int64") % CLASSES
    y[::5] = -1  # missing labels (a transfer set): the label loss is a mean over labelled rows
    return x, y


def mlp(hidden, name):
    return keras.Sequential(
        [keras.Input((FEATURES,)), keras.layers.Dense(hidden, activation="relu"), keras.layers.Dense(CLASSES)],
        name=name,
    )


def initial_weights():
    keras.utils.set_random_seed(0)
    return mlp(32, "teacher").get_weights(), mlp(8, "student").get_weights()


def run(scope, teacher_weights, student_weights):
    x, y = data()
    with scope:
        teacher, student = mlp(32, "teacher"), mlp(8, "student")
        teacher.set_weights(teacher_weights)
        student.set_weights(student_weights)
        distiller = Distiller(student=student, teacher=teacher)
        distiller.compile(optimizer=keras.optimizers.SGD(0.5), metrics=["accuracy"], alpha=0.3, temperature=2.0)
    before = distiller.evaluate(x, y, batch_size=BATCH, return_dict=True, verbose=0)
    history = distiller.fit(x, y, batch_size=BATCH, epochs=2, shuffle=False, verbose=0).history
    kernel = distiller.teacher.layers[0].kernel
    return {
        "teacher_sharding": str(getattr(kernel.value, "sharding", "")),
        "evaluate": {key: float(value) for key, value in before.items()},
        "fit": {key: [float(v) for v in values] for key, values in history.items()},
        "student": [w.tolist() for w in distiller.student.get_weights()],
    }


def main():
    teacher_weights, student_weights = initial_weights()
    if MODE == "mirrored":
        import contextlib

        import tensorflow as tf

        one = run(contextlib.nullcontext(), teacher_weights, student_weights)
        strategy = tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(DEVICES)])
        many = run(strategy.scope(), teacher_weights, student_weights)
        replicas = strategy.num_replicas_in_sync
    elif MODE == "multi_worker":
        import contextlib

        try:
            many = run(STRATEGY.scope(), teacher_weights, student_weights)
        except RuntimeError as error:  # Keras 3 refuses several workers
            print("REFUSED " + str(error))
            return
        one = run(contextlib.nullcontext(), teacher_weights, student_weights)
        replicas = STRATEGY.num_replicas_in_sync
    else:
        import contextlib

        one = run(contextlib.nullcontext(), teacher_weights, student_weights)
        devices = keras.distribution.list_devices("cpu")
        if MODE == "data_parallel":
            distribution = keras.distribution.DataParallel(devices=devices)
        else:
            mesh = keras.distribution.DeviceMesh((1, len(devices)), ["batch", "model"], devices)
            layout_map = keras.distribution.LayoutMap(mesh)
            layout_map["teacher/dense.*kernel"] = (None, "model")  # the teacher sharded over devices
            distribution = keras.distribution.ModelParallel(layout_map=layout_map, batch_dim_name="batch")
        many = run(distribution.scope(), teacher_weights, student_weights)
        replicas = len(devices)
    print("RESULT " + json.dumps({"one": one, "many": many, "replicas": replicas}))


if __name__ == "__main__":
    main()
