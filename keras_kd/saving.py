"""Saving and loading a Distiller: its config, its compile settings, and its optimizer state.

The Distiller's models and compile settings become configs here (both engines' saving
paths, `.keras` files and tf_keras SavedModels, go through these functions), so the maths
in `distiller.py` reads on its own. Keras 3 and tf_keras `.keras` files restore everything
through `keras.models.load_model`. A tf_keras SavedModel folder keeps the optimizer's
slots in its checkpoint, but tf_keras recompiles with a fresh optimizer; `load_distiller`
reads the slots back (`keras_kd.distiller.load_distiller`) so that training resumes exactly where it stopped.
"""

from keras_kd import losses as kd_losses
from keras_kd.backend import keras
from keras_kd.features import FeatureDistillation


def distiller_config(distiller):
    """The constructor's arguments, with the keys of Keras's own Distiller config.

    A Distiller built with Keras's arguments saves them (`distillation_losses` as given,
    `distillation_loss_weights`, `student_loss_weight`) and is rebuilt from them; one built with
    keras-kd's saves `features` and `teacher_weights`, and Keras's keys describe it.
    """
    teachers = [_without_compile_config(keras.layers.serialize(t)) for t in distiller.teachers]
    config = {
        "student": _without_compile_config(keras.layers.serialize(distiller.student)),
        "teacher": teachers[0] if len(teachers) == 1 else teachers,
        "teacher_weights": list(distiller.teacher_weights) if len(teachers) > 1 else None,
        **({"teacher_dtype": distiller.teacher_dtype} if getattr(distiller, "teacher_dtype", None) else {}),
        "distillation_losses": [keras.saving.serialize_keras_object(loss) for loss in distiller.distillation_losses],
        "distillation_loss_weights": [float(w) for w in distiller.distillation_loss_weights],
        "student_loss_weight": float(distiller.student_loss_weight),
    }
    if distiller._keras_arguments is None:
        config["features"] = [term.get_config() for term in distiller.features] or None
    return config


def distiller_arguments(config, custom_objects=None):
    """`(constructor keyword arguments, saved compile config or None)` from `distiller_config`'s output."""
    config = dict(config)
    student = keras.layers.deserialize(config.pop("student"), custom_objects=custom_objects)
    teacher = config.pop("teacher")
    teachers = [
        keras.layers.deserialize(t, custom_objects=custom_objects)
        for t in (teacher if isinstance(teacher, list) else [teacher])
    ]
    saved_compile_config = config.pop("compile_config", None)
    keras_style = "features" not in config and "distillation_losses" in config
    if keras_style:
        config["distillation_losses"] = [_deserialize_loss(c, custom_objects) for c in config["distillation_losses"]]
    else:  # keras-kd's own arguments; Keras's keys only described them
        for name in ("distillation_losses", "distillation_loss_weights", "student_loss_weight"):
            config.pop(name, None)
        config["features"] = [FeatureDistillation.from_config(f) for f in (config.pop("features", None) or [])] or None
    arguments = {"student": student, "teacher": teachers if len(teachers) > 1 else teachers[0], **config}
    return arguments, saved_compile_config


def _deserialize_loss(config, custom_objects):
    """One of Keras's `distillation_losses` from its saved config: a name, keras-kd's own loss or
    feature term, or Keras's (or the user's own) object."""
    if not isinstance(config, dict):
        return config  # a loss name
    inner = config.get("config")
    if isinstance(inner, dict) and "teacher_layer" in inner:  # a keras_kd.FeatureDistillation term
        return FeatureDistillation.from_config(inner)
    if str(config.get("module", "")).startswith("keras_kd"):
        return kd_losses.deserialize(config)
    return keras.saving.deserialize_keras_object(config, custom_objects=custom_objects)


def compile_config(distiller):
    """The settings of `Distiller.compile`, serialized."""
    serialize = keras.saving.serialize_keras_object
    augmentation = distiller.augmentation
    return {
        "optimizer": serialize(distiller.optimizer),
        "metrics": _map_nested(serialize, _plain(distiller._user_metrics)),
        "student_loss_fn": serialize(distiller.student_loss_fn),
        "distillation_loss_fn": kd_losses.serialize(distiller.distillation_loss_fn),
        "alpha": distiller.alpha,
        "temperature": distiller.temperature,
        "augmentation": keras.layers.serialize(augmentation) if augmentation is not None else None,
        "loss_chunk_size": distiller._loss_chunk_size,
        "on_policy": keras.layers.serialize(distiller.on_policy) if distiller.on_policy is not None else None,
    }


def compile_arguments(config):
    """`Distiller.compile`'s keyword arguments from `compile_config`'s output."""
    deserialize = keras.saving.deserialize_keras_object
    augmentation = config.get("augmentation")
    return {
        "optimizer": deserialize(config["optimizer"]),
        "metrics": _map_nested(deserialize, config["metrics"]),
        "student_loss_fn": deserialize(config["student_loss_fn"]),
        "distillation_loss_fn": kd_losses.deserialize(config["distillation_loss_fn"]),
        "alpha": config["alpha"],
        "temperature": config["temperature"],
        "augmentation": keras.layers.deserialize(augmentation) if augmentation is not None else False,
        "loss_chunk_size": config.get("loss_chunk_size"),
        "on_policy": keras.layers.deserialize(config["on_policy"]) if config.get("on_policy") else None,
    }


def _plain(value):
    """Undo tf_keras's tracking wrappers (ListWrapper, _DictWrapper) before serializing."""
    if isinstance(value, dict) or type(value).__name__ == "_DictWrapper":
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)) or type(value).__name__ == "ListWrapper":
        return [_plain(item) for item in value]
    return value


def _map_nested(function, value):
    """Apply `function` to each metric in a (possibly nested) list or dict of metrics."""
    if value is None or isinstance(value, str):
        return value  # Metric names serialize as themselves.
    if isinstance(value, dict) and "class_name" not in value:
        return {key: _map_nested(function, item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_map_nested(function, item) for item in value]
    return function(value)


def _without_compile_config(config):
    """The models' own training setups are not the Distiller's: do not restore them."""
    return {key: value for key, value in config.items() if key != "compile_config"}
