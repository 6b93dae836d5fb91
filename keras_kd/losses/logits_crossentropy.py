"""The student's loss on labels: cross-entropy from logits, sparse or one-hot labels alike."""

from keras_kd.backend import keras, ops, register_serializable
from keras_kd.losses.base import init_keras_loss


@register_serializable("LogitsCrossentropy")
class LogitsCrossentropy(keras.losses.Loss):
    """Cross-entropy of logits against integer or one-hot labels, decided by the labels' shape.

    Labels whose last axis has the logits' class count (and more than one class) are
    one-hot or soft labels; any other labels are class indices. This is the Distiller's
    default `student_loss_fn`, so one compile call serves both label formats.
    """

    def __init__(self, reduction="sum_over_batch_size", name="logits_crossentropy", **kwargs):
        init_keras_loss(super(), reduction, name, kwargs)

    def call(self, y_true, y_pred):
        y_pred = ops.convert_to_tensor(y_pred)
        classes = y_pred.shape[-1]
        log_probs = ops.log_softmax(y_pred, axis=-1)
        rank_matches = len(y_true.shape) == len(y_pred.shape)
        if rank_matches and classes is not None and classes > 1 and y_true.shape[-1] == classes:
            targets = ops.cast(y_true, y_pred.dtype)
        else:
            # One class index per row, or per token for sequence logits `(batch, time, classes)`.
            rows = ops.shape(y_pred)[:-1] if len(y_pred.shape) > 2 else (-1,)
            labels = ops.reshape(ops.cast(y_true, "int32"), rows)
            targets = ops.one_hot(labels, classes, dtype=y_pred.dtype)
        return -ops.sum(targets * log_probs, axis=-1)
