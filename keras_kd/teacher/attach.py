"""How `Distiller.fit` hands a cache's teacher outputs to the step: `attach_teacher_cache` checks that
the cache fits this distiller and these inputs and packs its outputs in (arrays, a dataset, a
top-k cache on disk, stored augmented views); `cached_teacher_logits` turns what arrives in the
step back into the teacher's logits."""

from keras_kd.backend import ops
from keras_kd.data.keys import split_inputs
from keras_kd.data.tokens import vocabulary_size
from keras_kd.teacher.batches import is_dataset
from keras_kd.teacher.cache import TeacherCache
from keras_kd.teacher.top_k_ops import tail_bucket_logits, top_k_logits


def cached_teacher_logits(cached, student_logits):
    """`(teacher logits, student logits)` for the distillation loss from what a cache handed the step:
    its logits; a top-k cache's distribution rebuilt over the vocabulary; or, for its `tail="bucket"`
    form, both models' k + 1 classes (`keras_kd.teacher.top_k_ops.tail_bucket_logits`)."""
    if not isinstance(cached, dict):
        return ops.convert_to_tensor(cached), student_logits
    if cached["tail"] == "bucket":
        teacher, student = tail_bucket_logits(cached["probabilities"], cached["ids"], student_logits)
        return ops.stop_gradient(teacher), student
    return top_k_logits(cached["probabilities"], cached["ids"], student_logits.shape[-1]), student_logits


def attach_teacher_cache(distiller, x, y, cache, kwargs):
    """`(x, y, fit kwargs)` with `cache`'s teacher outputs packed in, for `Distiller.fit`.

    A `TeacherCache` holds logits on the original inputs, so it refuses a Distiller that augments
    each batch (use an `AugmentedTeacherCache`, which replays stored views) or has feature terms
    (they need the teacher to run); an `AugmentedTeacherCache` turns arrays into its own `tf.data`
    pipeline of views, and its views replace the Distiller's `augmentation`.
    """
    student_x, teacher_x = split_inputs(x)
    if student_x is not teacher_x:
        raise ValueError(
            "A teacher cache checks one set of inputs, but `x` gives each model its own ('student_inputs', "
            "'teacher_inputs'): drop `teacher_cache` (the teacher then runs on every step)."
        )
    if distiller.features:
        raise ValueError(
            "A teacher cache holds the teacher's outputs only, but this distiller has feature terms, "
            "which need the teacher to run. Drop the feature terms or `teacher_cache`."
        )
    if getattr(cache, "augmented", False):
        return cache.attach_for_fit(x, y, kwargs, temperature=distiller.temperature)
    if not isinstance(cache, TeacherCache):
        raise TypeError(
            f"`teacher_cache` must be a keras_kd.TeacherCache or AugmentedTeacherCache; received "
            f"{type(cache).__name__}."
        )
    student_size = vocabulary_size(distiller.student)
    cached_size = getattr(cache, "num_classes", None)
    if None not in (cached_size, student_size) and cached_size != student_size:
        raise ValueError(
            f"The top-k cache was built over {cached_size} classes but the student outputs {student_size}: its "
            "token ids index the student's distribution. Build the cache from a teacher of the student's vocabulary."
        )
    if distiller.augmentation is not None:
        raise ValueError(
            "A teacher cache holds the teacher's logits on the original inputs, but this distiller augments each "
            "batch (function matching: the teacher must see the augmented view). Build a "
            "keras_kd.AugmentedTeacherCache (stored views, replayed), or drop `augmentation` or `teacher_cache`."
        )
    if getattr(cache, "directory", None) is not None and not is_dataset(x):  # a top-k cache on disk
        from keras_kd.teacher import top_k_disk

        return top_k_disk.reader_for_fit(cache, x, y, kwargs)
    return cache.attach(x, argument="x"), y, kwargs
