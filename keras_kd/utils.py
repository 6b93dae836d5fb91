"""Model surgery and measurement helpers shared by the Distiller, the CLI and benchmarks."""

import numpy as np

from keras_kd.backend import is_graph_model, keras


def strip_output_activation(model):
    """A copy of `model` that outputs logits: its final softmax/sigmoid removed, weights kept.

    Works for Sequential and functional models whose output layer either has an
    `activation` (e.g. `Dense(10, activation="softmax")`) or is a `Softmax`/`Activation`
    layer. Useful for a trained teacher that was built to output probabilities.

    Raises:
        TypeError: for a subclassed model, whose output layer cannot be read.
    """
    if not is_graph_model(model):
        raise TypeError(
            "strip_output_activation needs a Sequential or functional model; for a "
            f"subclassed model ({type(model).__name__}) return logits from its `call`."
        )
    last = model.layers[-1]
    if isinstance(last, (keras.layers.Softmax, keras.layers.Activation)):
        stripped = keras.Model(model.inputs, last.input, name=f"{model.name}_logits")
        return stripped
    config = model.get_config()
    layer_configs = config["layers"]
    layer_configs[-1]["config"]["activation"] = "linear"
    clone = model.__class__.from_config(config)
    clone.set_weights(model.get_weights())
    return clone


def copy_model(model):
    """An uncompiled copy of `model` with its current weights (no optimizer or compile state).

    Rebuilt from its config, not with `clone_model`, which in Keras 3.15 also copies the
    compile state; subclassed models fall back to `clone_model`.
    """
    try:
        copy = type(model).from_config(model.get_config()) if is_graph_model(model) else None
    except (NotImplementedError, TypeError, ValueError):
        copy = None
    copy = copy if copy is not None else keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


def snapshot(model, name=None):
    """A frozen copy of `model` with its current weights: a teacher for self-distillation."""
    copy = copy_model(model)
    copy.trainable = False
    if name:
        copy._name = name
    return copy


def count_params(model) -> int:
    """Number of weights in `model`, trainable and not."""
    return int(sum(np.prod(w.shape) for w in model.weights if hasattr(w, "shape")))  # tf_keras vocabularies have none


def count_nonzero_params(model) -> int:
    """Number of weights in `model` that are not exactly zero (after pruning, say)."""
    return int(sum(np.count_nonzero(np.asarray(w.numpy())) for w in model.weights))
