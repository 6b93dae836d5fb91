"""The loss of a keras-hub causal LM student over chunks of positions (`compile(loss_chunk_size=...)`).

A distillation step over a large vocabulary holds several `(batch, time, vocabulary)` float32
arrays for the backward pass: the student's logits, its probabilities at T, the teacher's, the
gradient. At GPT-2's 50,257 tokens, a batch of 8 sequences of 256 tokens takes 411 MB per array.
Here the student's logits are computed from its backbone's hidden states (keras-hub's output
projection, `backbone.token_embedding(hidden, reverse=True)`) one chunk of positions at a time,
and each chunk's losses run under `keras.remat`: the backward pass recomputes that chunk's
logits instead of keeping them (ms-swift, Liger and TRL chunk their losses the same way). A live
teacher of the same form gives its logits chunk by chunk from its own hidden states; any other
teacher's logits, or a cache's, are sliced chunk by chunk.

Both losses are sums over the chunks divided by the batch's counts of real (and labelled) tokens,
so they equal the whole-sequence losses; `tests/test_chunked_loss.py` checks the losses and the
gradients against the whole-sequence step on every Keras 3 backend, and
`benchmarks/language_model_memory.py` measures the step's peak memory.
"""

from keras_kd.backend import keras, ops
from keras_kd.data import tokens
from keras_kd.data.transfer import fill_missing, masked_weight


def output_projection(student):
    """The student's `token_embedding` (keras-hub's tied output projection) when its logits are
    exactly `token_embedding(backbone(x), reverse=True)`, else None."""
    backbone = getattr(student, "backbone", None)
    embedding = getattr(backbone, "token_embedding", None)
    outputs = getattr(student, "outputs", None)
    if embedding is None or not outputs or len(outputs) != 1:
        return None
    history = getattr(outputs[0], "_keras_history", None)
    if history is None or history.operation is not embedding or getattr(embedding, "quantization_mode", None):
        return None
    return embedding


def _kernel(embedding):
    """The `(width, vocabulary)` matrix of `embedding`'s reverse pass (keras.layers.ReversibleEmbedding's)."""
    return ops.transpose(embedding.embeddings) if embedding.tie_weights else embedding.reverse_embeddings


def _project(embedding, kernel, hidden):
    """`embedding(hidden, reverse=True)` with its matrix given as a tensor: a function that reads a
    variable inside TensorFlow's `recompute_grad` within a loop has no gradient there."""
    if embedding.reverse_dtype is not None:
        hidden, kernel = ops.cast(hidden, embedding.reverse_dtype), ops.cast(kernel, embedding.reverse_dtype)
    logits = ops.matmul(hidden, kernel)
    if embedding.logit_soft_cap is not None:
        logits = ops.multiply(ops.tanh(ops.divide(logits, embedding.logit_soft_cap)), embedding.logit_soft_cap)
    return logits


def check_supported(distiller, chunk_size, metrics):
    """A ValueError, before any training, for what the chunked step cannot do."""
    if chunk_size is None:
        return
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"loss_chunk_size={chunk_size!r} must be a positive number of positions, or None.")
    from keras_kd.backend import IS_TF_KERAS

    if IS_TF_KERAS:
        raise ValueError("loss_chunk_size needs Keras 3 (keras.remat; keras-hub students): unset TF_USE_LEGACY_KERAS.")
    if output_projection(distiller.student) is None:
        raise ValueError(
            "loss_chunk_size computes the student's logits from its backbone's hidden states: it takes a keras-hub "
            "causal LM whose logits are `backbone.token_embedding(hidden, reverse=True)` (GPT2CausalLM and its kin); "
            f"{type(distiller.student).__name__} is not one. Leave loss_chunk_size=None."
        )
    if distiller.features or distiller.augmentation is not None or metrics:
        raise ValueError(
            "loss_chunk_size never holds the student's whole logits, which metrics, feature terms and augmentation "
            "need: drop them, or leave loss_chunk_size=None (evaluate reports the losses either way)."
        )
    loss = distiller.distillation_loss_fn
    if getattr(loss, "trainable_layer", None) is not None:
        raise ValueError(f"loss_chunk_size does not take {type(loss).__name__}, which learns weights of its own.")
    reduction = getattr(loss, "kd_reduction", "sum_over_batch_size")
    if not getattr(loss, "per_sample", True) or reduction not in ("sum_over_batch_size", "mean"):
        raise ValueError(
            f"loss_chunk_size adds up a loss token by token, but {type(loss).__name__} (reduction {reduction!r}) "
            "relates the tokens of a batch to each other or is not their mean: leave loss_chunk_size=None."
        )


def losses(distiller, x, y, hidden, sample_weight, cached, teacher_x):
    """`(label loss, distillation loss)` of one batch from the student's hidden states `(batch, time,
    width)`, chunk by chunk (see the module's docstring)."""
    length = hidden.shape[1]
    if length is None:
        raise ValueError(
            "loss_chunk_size needs sequences of one known length (keras-hub preprocessors pad to `sequence_length`)."
        )
    embedding = output_projection(distiller.student)
    weight, mask = tokens.token_weights(x, y, hidden, sample_weight)
    if weight is None:
        weight = ops.ones(ops.shape(hidden)[:2], "float32")
    weight = weight * ops.ones(ops.shape(hidden)[:2], "float32")
    tail = cached["tail"] if isinstance(cached, dict) else None  # a top-k cache's form, rebuilt per chunk
    # A teacher of the same form gives its logits chunk by chunk too, from its own hidden states.
    teacher_projection = None
    if cached is None and len(distiller.teachers) == 1 and distiller._teacher_pass.dtype is None:
        teacher_projection = output_projection(distiller.teacher)
    if cached is not None:
        teacher = (cached["probabilities"], cached["ids"]) if tail else (cached,)
    elif teacher_projection is not None:
        teacher = (ops.stop_gradient(distiller.teacher.backbone(teacher_x, training=False)),)
    else:
        teacher = (distiller._teacher_outputs(teacher_x, None, None)[0],)
    loss_fn, temperature, shared = distiller.distillation_loss_fn, distiller._temperature, distiller._shared_vocabulary
    labelled = y is not None

    def chunk_sums(kernel, teacher_kernel, temperature, hidden_c, weight_c, *rest):
        from keras_kd.teacher.attach import cached_teacher_logits

        teacher_c = rest[: len(teacher)]
        y_c, mask_c = rest[len(teacher) :] if labelled else (None, None)
        logits = _project(embedding, kernel, hidden_c)
        if tail:
            teacher_logits, student_logits = cached_teacher_logits(
                {"probabilities": teacher_c[0], "ids": teacher_c[1], "tail": tail}, logits
            )
        elif teacher_projection is not None:
            teacher_logits = ops.stop_gradient(_project(teacher_projection, teacher_kernel, teacher_c[0]))
            student_logits = logits
        else:
            teacher_logits, student_logits = ops.stop_gradient(ops.convert_to_tensor(teacher_c[0])), logits
        if shared:
            teacher_logits, student_logits = teacher_logits[..., :shared], student_logits[..., :shared]
        labels = None
        if labelled:
            labels = fill_missing(y_c, mask_c, fallback=ops.argmax(teacher_logits, axis=-1))
        mean = loss_fn(teacher_logits, student_logits, sample_weight=weight_c, temperature=temperature, labels=labels)
        distilled = ops.cast(mean, "float32") * ops.sum(ops.cast(ops.abs(weight_c) > 0, "float32"))
        if not labelled:
            return ops.stack([ops.zeros((), "float32"), distilled])
        label_loss = getattr(distiller.student_loss_fn, "call", distiller.student_loss_fn)
        per_token = label_loss(fill_missing(y_c, mask_c), ops.cast(logits, "float32"))
        label_sum = ops.sum(ops.cast(per_token, "float32") * masked_weight(mask_c, weight_c))
        return ops.stack([label_sum, distilled])

    chunk_sums = keras.remat(chunk_sums)
    arrays = [hidden, weight, *teacher, *((y, mask) if labelled else ())]
    # Variables read outside the chunks and handed in: TensorFlow's `recompute_grad` in a loop has no
    # gradient path for a variable read inside.
    teacher_kernel = ops.zeros(()) if teacher_projection is None else _kernel(teacher_projection)
    kernels = [_kernel(embedding), ops.stop_gradient(teacher_kernel), ops.convert_to_tensor(temperature)]
    size = distiller._loss_chunk_size
    # A loop, not a Python sequence of chunks: XLA may run independent chunks side by side (and hold all
    # their logits at once); a loop's iterations, forward and backward, run one after another.
    totals = ops.fori_loop(
        0,
        length // size,
        lambda i, sums: sums + chunk_sums(*kernels, *(_positions(a, i * size, size) for a in arrays)),
        ops.zeros((2,), "float32"),
    )
    if length % size:  # the last, shorter chunk
        totals = totals + chunk_sums(*kernels, *(a[:, length - length % size :] for a in arrays))
    from keras_kd import backend

    real = ops.maximum(ops.sum(ops.cast(ops.abs(weight) > 0, "float32")), 1.0)
    distillation_loss = totals[1] / real
    if not labelled:
        return None, distillation_loss
    if getattr(distiller.student_loss_fn, "reduction", None) == "sum":  # as `keras_kd.data.transfer.labelled_mean`
        return totals[0] * backend.replicas_in_sync(), distillation_loss
    label_count = ops.maximum(backend.sum_over_replicas(ops.sum(mask)), 1.0)
    return totals[0] * backend.replicas_in_sync() / label_count, distillation_loss


def _positions(values, start, size):
    """Positions `[start, start + size)` of `(batch, time, ...)` values; `start` may be a loop's tensor."""
    rank = len(values.shape)
    return ops.slice(values, [0, start] + [0] * (rank - 2), [ops.shape(values)[0], size, *values.shape[2:]])
