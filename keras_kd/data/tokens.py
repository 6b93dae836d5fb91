"""Sequence outputs: one distribution per token, and the weights that say which tokens are real.

Language models, taggers and translation models output logits of shape
`(batch, time, classes)` (or any `(batch, ..., classes)`): every loss of keras-kd then
computes one value per position, and the mean runs over the *real* tokens only. Which
tokens are real comes from any of:

- a `sample_weight` of shape `(batch, time)` (0 on padding), as Keras takes for sequences;
- the Keras mask of the student's outputs (an `Embedding(mask_zero=True)` or a layer's
  `compute_mask` upstream of them);
- keras-hub's `padding_mask` input (`decoder_padding_mask` for sequence-to-sequence models),
  when the inputs are the dict a keras-hub preprocessor returns.

Several of them multiply. A `(batch,)` sample weight weighs every token of its sequence.
Labels for the label loss are then one class index per token, `(batch, time)`; a token
whose label is below 0 (`MISSING_LABEL`) has no label but is still distilled.

Example:
>>> x = {"token_ids": ids[:, :-1], "padding_mask": mask[:, :-1]}
>>> distiller.fit(x, ids[:, 1:], sample_weight=mask[:, 1:])   # next-token labels
"""

from keras_kd.backend import get_keras_mask, ops
from keras_kd.data.transfer import label_mask

PADDING_MASK_KEYS = ("decoder_padding_mask", "padding_mask")
"""Input-dict entries read as the outputs' padding mask, first found wins (keras-hub's names)."""


def is_sequence(logits):
    """True for outputs with positions between the batch and the class axis: `(batch, ..., classes)`."""
    return len(logits.shape) > 2


def position_weight(sample_weight, rank):
    """`sample_weight` as float32 of rank `rank` (the values' rank), broadcastable against them.

    A trailing axis of 1 is dropped; a per-sample weight `(batch,)` gains axes of 1.
    """
    weight = ops.cast(ops.convert_to_tensor(sample_weight), "float32")
    if len(weight.shape) == rank + 1 and weight.shape[-1] == 1:
        weight = ops.squeeze(weight, axis=-1)
    while len(weight.shape) < rank:
        weight = ops.expand_dims(weight, -1)
    return weight


def reduce_positions(values, sample_weight, reduction, over_real_tokens=True):
    """Reduce per-position values `(batch, ...)`: weighed, averaged over the real tokens.

    A position is real when its weight is not 0; without weights every position is.
    `"sum_over_batch_size"` (and `"mean"`) divide the weighted sum by the number of real
    positions (by the batch size, as Keras does, with `over_real_tokens=False`), `"sum"`
    returns it, `"none"` returns the weighted values.
    """
    weight = ops.ones_like(values)
    if sample_weight is not None:
        weight = weight * position_weight(sample_weight, len(values.shape))
    values = values * weight
    if reduction == "none":
        return values
    total = ops.sum(values)
    if reduction == "sum":
        return total
    if not over_real_tokens:
        return total / ops.cast(ops.shape(values)[0], values.dtype)
    real = ops.sum(ops.cast(ops.abs(weight) > 0, values.dtype))
    return total / ops.maximum(real, 1.0)


def padding_mask(x):
    """keras-hub's padding mask from an input dict, or None."""
    if isinstance(x, dict):
        for key in PADDING_MASK_KEYS:
            if key in x:
                return x[key]
    return None


def token_weight(x, logits, sample_weight):
    """The weight of each position of sequence `logits`; `sample_weight` unchanged otherwise.

    Multiplies the `sample_weight` (any of `(batch,)`, `(batch, time)`, `(batch, time, 1)`),
    the Keras mask of `logits` and keras-hub's `padding_mask` in `x`. Returns `None` when
    there is none of them.
    """
    if not is_sequence(logits):
        return sample_weight
    positions = ops.shape(ops.convert_to_tensor(logits))[:-1]
    weight = None if sample_weight is None else position_weight(sample_weight, len(positions))
    for mask in (get_keras_mask(logits), padding_mask(x)):
        if mask is not None:
            mask = ops.reshape(ops.cast(mask, "float32"), positions)
            weight = mask if weight is None else weight * mask
    if weight is not None and len(weight.shape) == len(positions):
        weight = weight * ops.ones_like(ops.cast(logits[..., 0], "float32"))  # (batch,) weights to every token
    return weight


def token_weights(x, y, logits, sample_weight):
    """`(weight, label_mask)` for one batch: `token_weight`, and which rows or tokens have a label.

    On sequences, padding tokens (weight 0) count as unlabelled, so the label loss is the
    mean over real, labelled tokens.
    """
    weight = token_weight(x, logits, sample_weight)
    if y is None:
        return weight, None
    mask = label_mask(y, logits)
    if weight is not None and is_sequence(logits):
        mask = mask * ops.cast(ops.abs(weight) > 0, "float32")
    return weight, mask


SHARED_FRACTION = 0.99
"""Vocabularies this close in size are taken as one tokenizer's, the larger with padding rows
(Qwen2.5's 151,936 and 152,064 entries): the loss compares the ids they share."""


def shared_vocabulary(student, teachers, loss, print_fn=print):
    """How many leading token ids the distillation loss compares, or None for all of them.

    None when the vocabularies agree (or cannot be read) and when `loss` compares distributions
    across vocabularies (`across_vocabularies`, ULD). Sizes within `SHARED_FRACTION` of each other
    give the smaller size, said in one line at each compile. Any other difference raises a ValueError naming both
    sizes and what to do. `teachers`: a list of models.
    """
    student_size = vocabulary_size(student)
    sizes = {vocabulary_size(teacher) for teacher in teachers} - {None}
    if student_size is None or not sizes or sizes == {student_size}:
        return None
    if not all(is_language_model(model) for model in (student, *teachers)):
        return None  # other outputs of several classes: compared class by class as they are (shapes checked there)
    if len(teachers) > 1 and len(sizes) > 1:
        raise ValueError(f"The teachers' vocabularies differ ({sorted(sizes)}): several teachers must share one.")
    teacher_size = sizes.pop()
    name = "teacher" if len(teachers) == 1 else "teachers"
    if getattr(loss, "across_vocabularies", False):
        return None
    smaller, larger = sorted((student_size, teacher_size))
    if smaller >= SHARED_FRACTION * larger:
        bigger = "teacher" if teacher_size > student_size else "student"
        print_fn(
            f"keras-kd: the {name}'s vocabulary has {teacher_size:,} tokens and the student's {student_size:,}: "
            f"read as one tokenizer with {larger - smaller:,} padding rows in the {bigger}'s, so the distillation "
            f"loss compares the {smaller:,} ids they share."
        )
        return smaller
    raise ValueError(
        f"The {name}'s vocabulary has {teacher_size} tokens but the student's has {student_size}: "
        "token-level distillation compares the two distributions token by token, so both models "
        "must share one tokenizer and vocabulary. Build the student with "
        f"vocabulary_size={teacher_size} (and the teacher's tokenizer), or distil across vocabularies with "
        "distillation_loss_fn='uld', each model given its own token ids of the same text: "
        "x={'student_inputs': ..., 'teacher_inputs': ...}."
    )


def align_positions(teacher_logits, student_logits, weight, teacher_x):
    """`(teacher logits, student logits, weight)` cut to the positions both sequences have.

    Two tokenizers cut the same text into different numbers of tokens: position i of one is
    compared with position i of the other, from the first token on, up to the shorter length, as
    ULD's authors align them; positions where the teacher's `padding_mask` input (keras-hub's) is
    0 weigh 0. `weight`: the student's token weights `(batch, time)` or None.
    """
    if not (is_sequence(teacher_logits) and is_sequence(student_logits)):
        return teacher_logits, student_logits, weight
    lengths = (teacher_logits.shape[1], student_logits.shape[1])
    if None in lengths:  # a graph of batches padded to their own length
        length = ops.minimum(ops.shape(teacher_logits)[1], ops.shape(student_logits)[1])
    else:
        length = min(int(value) for value in lengths)
    teacher_mask = padding_mask(teacher_x)
    teacher_logits, student_logits = teacher_logits[:, :length], student_logits[:, :length]
    if weight is not None:
        weight = position_weight(weight, len(student_logits.shape) - 1)[:, :length]
    if teacher_mask is not None:
        teacher_mask = ops.cast(teacher_mask, "float32")[:, :length]
        weight = teacher_mask if weight is None else weight * teacher_mask
    return teacher_logits, student_logits, weight


def is_language_model(model):
    """A keras-hub model with a backbone vocabulary, or a model of outputs `(batch, time, vocabulary)`."""
    if getattr(getattr(model, "backbone", None), "vocabulary_size", None) is not None:
        return True
    try:
        shape = model.output_shape
    except (AttributeError, ValueError, RuntimeError):
        return False
    return isinstance(shape, tuple) and len(shape) == 3


def vocabulary_size(model):
    """A language model's vocabulary size, or None when it cannot be read (not a sequence model)."""
    size = getattr(getattr(model, "backbone", None), "vocabulary_size", None)
    if size is not None:
        return int(size)
    try:
        shape = model.output_shape
    except (AttributeError, ValueError, RuntimeError):
        return None
    if isinstance(shape, tuple) and len(shape) > 2 and shape[-1] is not None:
        return int(shape[-1])
    return None
