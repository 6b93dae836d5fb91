"""The teacher/student pairs the CLI, examples and benchmarks use for each data set."""

from keras_kd.models.cnn import build_cnn
from keras_kd.models.mlp import build_mlp
from keras_kd.registry import Registry

# Each preset: builder and keyword arguments for the teacher and for the student.
_PRESETS = {
    "digits": {
        "teacher": (build_mlp, {"hidden_units": (512, 256), "dropout": 0.3}),
        "assistant": (build_mlp, {"hidden_units": (64,)}),
        "student": (build_mlp, {"hidden_units": (16,)}),
    },
    "fashion_mnist": {
        "teacher": (build_cnn, {"filters": (64, 128), "dense_units": 256, "dropout": 0.3}),
        "assistant": (build_cnn, {"filters": (32, 64), "dense_units": 128}),
        # 170k parameters, 9.9x fewer than the teacher (the 55k one of earlier benchmarks was
        # (16, 32) filters and 32 units).
        "student": (build_cnn, {"filters": (32, 64), "dense_units": 48}),
    },
    # Spoken digits: 40x61 log-mel spectrograms. The student's int8 TFLite file fits 64 KB.
    "fsdd": {
        "teacher": (build_cnn, {"filters": (32, 64, 128), "dense_units": 128, "dropout": 0.4}),
        "assistant": (build_cnn, {"filters": (16, 32, 64), "dense_units": 64}),
        "student": (build_cnn, {"filters": (16, 32, 32), "dense_units": 0}),
    },
}
PRESETS = Registry("model preset")
for _name, _roles in _PRESETS.items():
    PRESETS.add(_name, _roles)


def build_model(dataset, role, input_shape, num_classes, name=None):
    """A fresh model of the preset for `dataset`; `role`: "teacher", "assistant" or "student"."""
    builder, kwargs = PRESETS.lookup(dataset)[role]
    return builder(input_shape, num_classes, name=name or role, **kwargs)


def build_pair(dataset, input_shape, num_classes):
    """A fresh `(teacher, student)` pair of the preset for `dataset`."""
    return (
        build_model(dataset, "teacher", input_shape, num_classes),
        build_model(dataset, "student", input_shape, num_classes),
    )
