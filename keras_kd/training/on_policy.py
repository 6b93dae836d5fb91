"""On-policy distillation in the training step (GKD, Agarwal et al. 2024).

`OnPolicySequences` (`keras_kd.data.sequence_level`) lets the student write part of the data once an
epoch, between epochs, from the weights it had then. `OnPolicy`, given to
`Distiller.compile(on_policy=...)`, does it inside every training step: `student_fraction` of
each batch's rows (drawn anew each step) are replaced by the student's continuations of their
first `prompt_length` tokens, generated with keras-hub's cached sampling from the weights of that
very step (in inference mode: no dropout), and the teacher scores them in the same step. GKD's
`lmbda` is read here as a share of every batch; the paper's Algorithm 1 makes a whole batch
on-policy with probability `lmbda`, which is the same share on average. The generated tokens carry no label
(`MISSING_LABEL`, as in `OnPolicySequences`): the label loss covers the prompts and the other rows,
the distillation loss every real token. Generation takes no gradient.

What it costs per step against the per-epoch form, and what it gives, is measured in
`benchmarks/language_model_on_policy.py` (docs/language_model_on_policy_benchmark.md).
"""

from keras_kd.backend import IS_TF_KERAS, keras, ops, register_serializable
from keras_kd.data.tokens import position_weight
from keras_kd.data.transfer import MISSING_LABEL

SEEDED_SAMPLERS = ("top_k", "top_p", "random")  # keras-hub samplers that take a seed


def _sampler(sampler):
    import keras_hub

    return keras_hub.samplers.get(sampler) if isinstance(sampler, (str, dict)) else sampler


@register_serializable("OnPolicy")
class OnPolicy(keras.layers.Layer):
    """The student writes `student_fraction` of every training batch (GKD, per step).

    Example:
    >>> distiller.compile(distillation_loss_fn="generalized_jsd", alpha=0.0,
    ...                   on_policy=keras_kd.OnPolicy(student_fraction=0.5, prompt_length=8))
    >>> distiller.fit(x, y, sample_weight=w, epochs=4)   # next-token data (`next_token_data`)

    Args:
        student_fraction: the share of each batch's rows the student writes (at least one row
            when above 0).
        prompt_length: tokens of each row kept as the prompt; the student writes the rest of
            the row's width (the inputs' width: the last position is distilled, with no label).
        sampler: a keras-hub sampler or its name (`"top_k"`, `"top_p"`, `"greedy"`, ...).
        stop_token_ids: token ids that end a generated row (its weights stop after it), or None.
        seed: which rows, and the sampler's draws when `sampler` is a name.
    """

    def __init__(
        self, student_fraction=0.5, prompt_length=8, sampler="top_k", stop_token_ids=None, seed=None, **kwargs
    ):
        super().__init__(**kwargs)
        if not 0.0 <= float(student_fraction) <= 1.0:
            raise ValueError(f"student_fraction={student_fraction} must be between 0 and 1.")
        if int(prompt_length) < 1:
            raise ValueError(f"prompt_length={prompt_length} must be at least 1: generation starts from a prompt.")
        self.student_fraction, self.prompt_length = float(student_fraction), int(prompt_length)
        self.stop_token_ids = None if stop_token_ids is None else tuple(int(i) for i in stop_token_ids)
        self.seed = seed
        if isinstance(sampler, str) and sampler in SEEDED_SAMPLERS:  # its draws apart from the rows'
            sampler = {"class_name": sampler, "config": {"seed": None if seed is None else seed + 1}}
        self.sampler = _sampler(sampler)
        self.seed_generator = keras.random.SeedGenerator(seed)
        # The sampler's random state lives in the Distiller's state (a JAX step threads it through).
        self._sampler_state = list(self.sampler.variables)
        self.built = True

    def check(self, student, augmentation, features):
        """A ValueError before any training for what the step cannot generate with."""
        if IS_TF_KERAS:
            raise ValueError("on_policy generates with keras-hub, which needs Keras 3: unset TF_USE_LEGACY_KERAS.")
        if not hasattr(student, "generate_step"):
            raise ValueError(
                f"on_policy generates with the student's keras-hub sampling (`generate_step`), and "
                f"{type(student).__name__} has none: give a keras-hub CausalLM student (GPT2CausalLM, ...)."
            )
        if augmentation is not None or features:
            raise ValueError("on_policy rewrites the batch's text: drop augmentation and feature terms.")

    def check_inputs(self, x, own_inputs, cached):
        """A ValueError before training (and as the step is traced) for inputs the step cannot
        rewrite: each model's own token ids, teacher outputs packed into the data, a width that
        leaves nothing to write."""
        if own_inputs:
            raise ValueError(
                "on_policy writes text in the student's token ids, which the teacher's tokenizer cannot read "
                "inside the step: give both models the same inputs (not 'student_inputs' / 'teacher_inputs')."
            )
        if cached:
            raise ValueError(
                "on_policy has the student write part of every batch, which no teacher cache holds: pass the "
                "inputs without the teacher's outputs attached (the teacher then runs on every step)."
            )
        if isinstance(x, dict) and {"token_ids", "padding_mask"} <= set(x):
            self._check_width(getattr(x["token_ids"], "shape", (None, None))[1])

    def _check_width(self, width):
        if width is None:
            raise ValueError("on_policy needs sequences of one known length (keras-hub preprocessors pad to it).")
        if self.prompt_length >= width:
            raise ValueError(
                f"prompt_length={self.prompt_length} leaves the student nothing to write in rows of {width} tokens."
            )

    def rows(self, batch_size):
        """How many rows of a batch of `batch_size` the student writes."""
        if self.student_fraction == 0.0:
            return 0
        if isinstance(batch_size, int):
            return max(1, int(round(self.student_fraction * batch_size)))
        share = ops.round(self.student_fraction * ops.cast(batch_size, "float32"))
        return ops.maximum(ops.cast(share, "int32"), 1)

    def rewrite(self, student, x):
        """`(inputs, rewrite)`: the batch `x` (`{"token_ids", "padding_mask"}`) with its rows shuffled
        and the first `rows` of them the student's; `rewrite` what `labels` needs."""
        ids, mask = x["token_ids"], x["padding_mask"]
        width = ids.shape[1]
        self._check_width(width)
        batch_size = ops.shape(ids)[0]
        order = ops.argsort(keras.random.uniform((batch_size,), seed=self.seed_generator))
        ids, mask = ops.take(ids, order, axis=0), ops.take(mask, order, axis=0)
        count = self.rows(batch_size)
        if isinstance(count, int) and count == 0:
            return {"token_ids": ids, "padding_mask": mask}, {"order": order, "count": 0}
        # Written to the inputs' width (a keras-hub model takes no longer rows): the last position
        # has no next token to label, and is still distilled.
        chosen_mask = ops.cast(mask[:count], "int32") > 0
        prompt = ops.logical_and(chosen_mask, ops.arange(width)[None, :] < self.prompt_length)
        generated = self._generate(student, {"token_ids": ops.where(prompt, ids[:count], 0), "padding_mask": prompt})
        token_ids = ops.cast(generated["token_ids"], ids.dtype)
        written = ops.cast(generated["padding_mask"], mask.dtype)
        inputs = {
            "token_ids": ops.concatenate([token_ids, ids[count:]], axis=0),
            "padding_mask": ops.concatenate([written, mask[count:]], axis=0),
        }
        # Labels only where they are the data's own tokens: inside the prompt.
        labels = ops.where(prompt[:, 1:], token_ids[:, 1:], MISSING_LABEL)
        rewrite = {
            "order": order,
            "count": count,
            "labels": ops.pad(labels, [[0, 0], [0, 1]], constant_values=MISSING_LABEL),
            "weights": ops.cast(ops.concatenate([written[:, 1:], written[:, -1:]], axis=1), "float32"),
        }
        return inputs, rewrite

    def labels(self, rewrite, y, sample_weight, inputs):
        """`(y, sample_weight)` of the rewritten batch: the generated rows' then the others', reordered."""
        order, count = rewrite["order"], rewrite["count"]
        if y is not None:
            y = ops.take(y, order, axis=0)
            if not (isinstance(count, int) and count == 0):
                y = ops.concatenate([ops.cast(rewrite["labels"], y.dtype), y[count:]], axis=0)
        if isinstance(count, int) and count == 0:
            return y, None if sample_weight is None else ops.take(sample_weight, order, axis=0)
        mask = ops.cast(inputs["padding_mask"], "float32")
        written = rewrite["weights"]
        if sample_weight is None:
            return y, ops.concatenate([written, mask[count:]], axis=0)
        weight = ops.take(position_weight(sample_weight, 2), order, axis=0)
        if weight.shape[1] == 1:  # a weight per row: on each of its real tokens, the written ones too
            written = written * weight[:count]
            return y, ops.concatenate([written, weight[count:] * mask[count:]], axis=0)
        # A weight per token: a written row's tokens are not the data's, so they weigh 1.
        return y, ops.concatenate([written, weight[count:]], axis=0)

    def _generate(self, student, prompts):
        """`student.generate_step` with this sampler, in inference mode, taking no gradient."""
        from keras.src.backend.common import global_state

        # Out of the training call's context, whose `training=True` would reach the layers that
        # keras-hub's cached call leaves it unset for (dropout): generation runs as a top-level call.
        context = global_state.get_global_attribute("current_call_ctx")
        global_state.set_global_attribute("current_call_ctx", None)
        previous = getattr(student, "sampler", None)
        student.sampler = self.sampler
        try:
            backend = keras.backend.backend()
            if backend == "torch":
                import torch

                with torch.no_grad():
                    return student.generate_step(prompts, stop_token_ids=self.stop_token_ids)
            if backend != "jax":
                return student.generate_step(prompts, stop_token_ids=self.stop_token_ids)
            # JAX: the step's values of the student's weights, with their gradient stopped (a while
            # loop cannot be differentiated in reverse), and the sampler's state carried out.
            mapping = [(v, ops.stop_gradient(ops.convert_to_tensor(v))) for v in student.variables]
            mapping += [(v, ops.convert_to_tensor(v)) for v in self._sampler_state]
            with keras.StatelessScope(state_mapping=mapping) as scope:
                generated = student.generate_step(prompts, stop_token_ids=self.stop_token_ids)
            for variable in self._sampler_state:
                variable.assign(scope.get_current_value(variable))
            return generated
        finally:
            student.sampler = previous
            global_state.set_global_attribute("current_call_ctx", context)

    def get_config(self):
        import keras_hub

        return {
            **super().get_config(),
            "student_fraction": self.student_fraction,
            "prompt_length": self.prompt_length,
            "sampler": keras_hub.samplers.serialize(self.sampler),
            "stop_token_ids": None if self.stop_token_ids is None else list(self.stop_token_ids),
            "seed": self.seed,
        }
