"""The one switch between the two Keras engines keras-kd runs on.

TensorFlow's own convention decides: ``TF_USE_LEGACY_KERAS=1`` (or ``true``) means
tf_keras (Keras 2), which TensorFlow Model Optimization needs; anything else means
Keras 3. keras-kd reads that variable once, here, and never sets it. Library code
imports ``keras`` and ``ops`` from this module, never ``tensorflow.keras``.
"""

import os

LEGACY_ENV_VAR = "TF_USE_LEGACY_KERAS"


def _legacy_requested():
    # The same test TensorFlow applies in tensorflow/python/util/lazy_loader.py.
    return os.environ.get(LEGACY_ENV_VAR, None) in ("true", "True", "1")


IS_TF_KERAS = _legacy_requested()

if IS_TF_KERAS:
    import tf_keras as keras  # noqa: F401

    from keras_kd.backend import tf_ops as ops  # noqa: F401

    ENGINE = "tf_keras"
    BACKEND = "tensorflow"
else:
    import keras  # noqa: F401
    from keras import ops  # noqa: F401

    ENGINE = "keras3"
    BACKEND = keras.backend.backend()

ENGINE_DESCRIPTION = (
    f"tf_keras {keras.__version__} (Keras 2; {LEGACY_ENV_VAR}=1)"
    if IS_TF_KERAS
    else f"Keras {keras.__version__} ({BACKEND} backend)"
)


def is_tensorflow_backed():
    """True when training steps run on TensorFlow (tf_keras, or Keras 3's TF backend)."""
    return BACKEND == "tensorflow"


def _engine_of(obj):
    """'tf_keras', 'keras3' or None, read from where the object's class was defined."""
    for cls in type(obj).__mro__:
        root = cls.__module__.split(".")[0]
        if root == "tf_keras":
            return "tf_keras"
        if root == "keras":
            return "keras3"
    return None


def switch_hint(engine):
    """How to make `engine` the active one."""
    if engine == "tf_keras":
        return f"set {LEGACY_ENV_VAR}=1 in the environment before Python starts"
    return f"unset {LEGACY_ENV_VAR} (or set it to 0) before Python starts"


class NotAModelError(TypeError, ValueError):
    """A model argument that is no Keras model of the active engine (a `ValueError`, as Keras's own
    Distiller raises, and a `TypeError`, as keras-kd raised before)."""


def assert_model_of_engine(model, argument):
    """Raise a `NotAModelError` naming `argument` unless `model` is a model of the active engine."""
    if isinstance(model, keras.Model):
        return
    other = _engine_of(model)
    if other is not None and other != ENGINE:
        name = "tf_keras (Keras 2)" if other == "tf_keras" else "Keras 3"
        raise NotAModelError(
            f"`{argument}` is a {name} model, but the active engine is "
            f"{ENGINE_DESCRIPTION}. Build it with the active engine, or "
            f"{switch_hint(other)} to use that engine."
        )
    raise NotAModelError(
        f"`{argument}` must be a Keras model of the active engine "
        f"({ENGINE_DESCRIPTION}); received an object of type {type(model).__name__}."
    )


def _sentence(text):
    return text[:1].upper() + text[1:]


def assert_tf_keras(feature):
    """Raise for a feature that needs the tf_keras engine (TF-MOT) when Keras 3 is active."""
    if not IS_TF_KERAS:
        raise RuntimeError(
            f"{feature} needs the tf_keras (Keras 2) engine, because TensorFlow Model "
            f"Optimization refuses Keras 3 models; the active engine is "
            f"{ENGINE_DESCRIPTION}. {_sentence(switch_hint('tf_keras'))}."
        )


def to_numpy(x):
    """A NumPy array from any backend's tensor (a PyTorch output that carries gradients included)."""
    if IS_TF_KERAS:
        import numpy as np

        return np.asarray(x.numpy() if hasattr(x, "numpy") else x)  # a mirrored variable has no __array__
    return keras.ops.convert_to_numpy(x)


def assert_tensorflow_backend(feature):
    """Raise for a feature that writes TensorFlow graphs (SavedModel, TFLite) on another backend."""
    if not is_tensorflow_backed():
        raise RuntimeError(
            f"{feature} writes a TensorFlow graph and needs the TensorFlow backend; the active backend is "
            f"{BACKEND}. Save the student with `student.save('student.keras')` here, then export it from a "
            "process started with KERAS_BACKEND=tensorflow (keras-kd compress --student=student.keras, or "
            "keras_kd.compression.export_saved_model(keras.models.load_model('student.keras'), ...))."
        )


def register_serializable(name):
    """Register a class for (de)serialization under package 'keras_kd' on either engine."""
    return keras.utils.register_keras_serializable(package="keras_kd", name=name)


def is_graph_model(model):
    """True for Sequential and functional models, whose layers and outputs can be read."""
    if IS_TF_KERAS:
        from tf_keras.src.engine.functional import Functional
    else:
        from keras.src.models.functional import Functional
    return isinstance(model, (Functional, keras.Sequential))


def set_keras_mask(tensor, mask):
    """Attach a Keras mask to `tensor` (read by metrics and losses) and return it."""
    if IS_TF_KERAS:
        tensor._keras_mask = mask
    else:
        from keras.src.backend.common.masking import set_keras_mask as _set

        _set(tensor, mask)
    return tensor


def get_keras_mask(tensor):
    """The Keras mask attached to `tensor` (`mask_zero`, `compute_mask`), or None."""
    if IS_TF_KERAS:
        return getattr(tensor, "_keras_mask", None)
    from keras.src.backend.common.masking import get_keras_mask as _get

    return _get(tensor)


def untrack(model, value, kept=None):
    """Stop `model` tracking a layer it no longer holds, unless it is `kept` (Keras 3 keeps a replaced
    attribute's layer, and its variables, in the model's state; tf_keras untracks it itself)."""
    tracker = getattr(model, "_tracker", None)
    if value is not None and value is not kept and not IS_TF_KERAS and tracker is not None:
        tracker.untrack(value)


def track_torch_variables(layer):
    """Register every variable of `layer` with torch, each under its own key (torch backend).

    Keras's torch layer keys its `torch.nn.ParameterDict` by variable path, so a teacher and a
    student of one family (two keras-hub BARTs: both `token_embedding/embeddings`) collide and one
    model's variables drop out of `parameters()`; the trainer's `zero_grad()` then never clears the
    student's gradients, and every step adds the previous steps' gradients to its own.
    """
    import torch

    parameters = {}
    for variable in layer.variables:
        key, copy = variable.path, 1
        while key in parameters:
            copy += 1
            key = f"{variable.path}#{copy}"
        parameters[key] = variable.value
    layer._torch_params = torch.nn.ParameterDict(parameters)


def scalar_variable(value, name):
    """A non-trainable float32 scalar that steps read without retracing (alpha, temperature)."""
    if IS_TF_KERAS:
        import tensorflow as tf

        return tf.Variable(float(value), trainable=False, dtype="float32", name=name)
    return keras.Variable(float(value), trainable=False, dtype="float32", name=name)


def counter_variable(value, name):
    """A non-trainable int32 scalar that steps update (kept by the first replica under a strategy)."""
    if IS_TF_KERAS:
        import tensorflow as tf

        return tf.Variable(
            int(value), trainable=False, dtype="int32", name=name, aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA
        )
    return keras.Variable(int(value), trainable=False, dtype="int32", name=name, aggregation="only_first_replica")


def float_leaves(structure):
    """The floating-point tensors of a (nested) input structure; strings and integers left out."""
    if IS_TF_KERAS:
        import tensorflow as tf

        leaves = tf.nest.flatten(structure)
        return [leaf for leaf in leaves if hasattr(leaf, "dtype") and tf.as_dtype(leaf.dtype).is_floating]
    leaves = keras.tree.flatten(structure)
    return [
        leaf for leaf in leaves if hasattr(leaf, "dtype") and "float" in keras.backend.standardize_dtype(leaf.dtype)
    ]


def replicas_in_sync():
    """How many replicas of a `tf.distribute` strategy share each step (1 elsewhere).

    JAX's distribution API computes the loss on global arrays, so it needs no scaling.
    """
    if not is_tensorflow_backed():
        return 1
    import tensorflow as tf

    return tf.distribute.get_strategy().num_replicas_in_sync


def scale_loss_for_replicas(loss):
    """Divide a per-replica mean by the replica count: the optimizer sums the replicas' gradients."""
    replicas = replicas_in_sync()
    return loss if replicas == 1 else loss * (1.0 / replicas)


def unscale_loss_for_replicas(loss):
    """The per-replica mean back from `scale_loss_for_replicas`, for logging."""
    replicas = replicas_in_sync()
    return loss if replicas == 1 else loss * float(replicas)


def check_strategy_supported(strategy):
    """Raise a RuntimeError for a distribution strategy the active engine cannot train under.

    Keras 3 does not run `fit` under `tf.distribute.MultiWorkerMirroredStrategy` with several
    workers (its data arrives as PerReplica values it cannot convert: keras-team/keras#20585),
    for any model.
    """
    if IS_TF_KERAS or not is_tensorflow_backed() or strategy is None:
        return
    import tensorflow as tf

    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return
    if len(strategy.cluster_resolver.cluster_spec().as_dict().get("worker", [])) > 1:
        raise RuntimeError(
            "Keras 3 cannot train under tf.distribute.MultiWorkerMirroredStrategy (keras-team/keras#20585; "
            "it fails for any Keras 3 model). For several machines use the tf_keras engine "
            f"({switch_hint('tf_keras')}), or Keras 3 on JAX with keras.distribution (docs/distributed.md)."
        )


def sum_over_replicas(value):
    """`value` summed over the replicas of a `tf.distribute` step (itself elsewhere).

    A mean over only some rows of the batch (the labelled ones) needs the global count
    to equal one device's value.
    """
    if replicas_in_sync() == 1:
        return value
    import tensorflow as tf

    context = tf.distribute.get_replica_context()
    return value if context is None else context.all_reduce("SUM", value)
