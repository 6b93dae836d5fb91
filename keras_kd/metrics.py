"""The student's agreement with its teacher, as Keras metrics: `compile(metrics=[...])` takes them.

big_vision reports distilled models by their top-1 agreement with the teacher and the KL from
teacher to student; both need the teacher's logits, which the Distiller has in `compute_loss`
and hands to these metrics there (on labelled and unlabelled rows alike, in `fit` and
`evaluate`). They are `keras.metrics.Mean`s of a per-example (or per-token) value.
"""

from keras_kd.backend import keras, ops, register_serializable


class TeacherMetric(keras.metrics.Mean):
    """A mean of `value(teacher_logits, student_logits)`, which each subclass defines (an abstract base:
    `TeacherAgreement`, `TeacherKL`); `update_state` takes the teacher's logits where Keras's metrics
    take the labels."""

    def value(self, teacher_logits, student_logits):
        raise NotImplementedError(
            f"{type(self).__name__} must define value(teacher_logits, student_logits): one value per example."
        )

    def update_state(self, teacher_logits, student_logits, sample_weight=None):
        teacher_logits = ops.cast(teacher_logits, "float32")
        student_logits = ops.cast(student_logits, "float32")
        return super().update_state(self.value(teacher_logits, student_logits), sample_weight=sample_weight)


@register_serializable("TeacherAgreement")
class TeacherAgreement(TeacherMetric):
    """The fraction of examples whose top class is the teacher's top class."""

    def __init__(self, name="teacher_agreement", dtype=None):
        super().__init__(name=name, dtype=dtype)

    def value(self, teacher_logits, student_logits):
        same = ops.equal(ops.argmax(teacher_logits, axis=-1), ops.argmax(student_logits, axis=-1))
        return ops.cast(same, "float32")


@register_serializable("TeacherKL")
class TeacherKL(TeacherMetric):
    """KL(softmax(teacher) || softmax(student)) in nats, at temperature 1, per example."""

    def __init__(self, name="teacher_kl", dtype=None):
        super().__init__(name=name, dtype=dtype)

    def value(self, teacher_logits, student_logits):
        log_p = ops.log_softmax(teacher_logits, axis=-1)
        log_q = ops.log_softmax(student_logits, axis=-1)
        return ops.sum(ops.exp(log_p) * (log_p - log_q), axis=-1)


_BY_NAME = {"teacher_agreement": TeacherAgreement, "teacher_kl": TeacherKL}


def split_teacher_metrics(metrics):
    """`(metrics on labels, metrics against the teacher)` from `compile`'s `metrics` (a list or None;
    names of teacher metrics become instances)."""
    if not isinstance(metrics, (list, tuple)):
        return metrics, []
    on_labels, on_teacher = [], []
    for metric in metrics:
        if isinstance(metric, str) and metric in _BY_NAME:
            on_teacher.append(_BY_NAME[metric]())
        elif isinstance(metric, TeacherMetric):
            on_teacher.append(metric)
        else:
            on_labels.append(metric)
    return (on_labels or None) if metrics else metrics, on_teacher


__all__ = ["TeacherAgreement", "TeacherKL", "TeacherMetric", "split_teacher_metrics"]
