"""Sequence-level and on-policy distillation of keras-hub causal language models.

Token-level distillation (`Distiller.fit` on text) matches the teacher's distribution at each
position of *given* text. Two further ways to use a language-model teacher:

- **Sequence-level** (Kim and Rush 2016): the teacher writes the transfer set. Its
  continuations of prompts, sampled with the keras-hub sampler a user picks, become the
  student's training text (`teacher_transfer_set`), the labels its own tokens.
- **On-policy** (GKD, Agarwal et al. 2024, its `lmbda`): a fraction of the training sequences
  are the *student's* continuations of their prompts, which the teacher then scores in the
  step, so that the student learns on the text it actually produces. `OnPolicySequences`
  is a `keras.utils.PyDataset` that regenerates them at the start of every epoch from the
  student's current weights (GKD does it every step; once an epoch keeps generation off the
  critical path and works on every backend). Generated tokens carry no label
  (`MISSING_LABEL`): the label loss covers the prompts and the other sequences, the
  distillation loss every real token.

Both take keras-hub's preprocessed inputs `{"token_ids", "padding_mask"}` and build the
next-token data `(x, y, sample_weight)` that `Distiller.fit` takes for causal language models.
For translation models (keras-hub's `Seq2SeqLM`, BART), `teacher_translations` builds the
sequence-level data from the teacher's translations of source sentences (Kim and Rush's setting).
"""

import numpy as np

from keras_kd.backend import keras, to_numpy
from keras_kd.data.transfer import MISSING_LABEL


def next_token_data(token_ids, padding_mask):
    """`(x, y, sample_weight)` from full sequences: inputs all but the last token, labels the next token."""
    token_ids, padding_mask = np.asarray(token_ids), np.asarray(padding_mask)
    x = {"token_ids": token_ids[:, :-1].astype("int32"), "padding_mask": padding_mask[:, :-1].astype("int32")}
    return x, token_ids[:, 1:].astype("int64"), padding_mask[:, 1:].astype("float32")


def prompts_of(x, prompt_length):
    """The first `prompt_length` real tokens of each sequence of `x`, the rest of the row padding."""
    keep = (np.arange(x["token_ids"].shape[1])[None, :] < prompt_length) & (np.asarray(x["padding_mask"]) > 0)
    return {"token_ids": np.where(keep, x["token_ids"], 0).astype("int32"), "padding_mask": keep.astype("int32")}


def _generated(model, inputs, sampler, stop_token_ids, batch_size):
    """`model.generate` over `inputs` (a dict of arrays) in batches, with `sampler` for the call; the
    output dict's arrays concatenated, as NumPy."""
    previous = getattr(model, "sampler", None), getattr(model, "generate_function", None)
    if sampler is not None:
        import keras_hub

        model.sampler = keras_hub.samplers.get(sampler) if isinstance(sampler, (str, dict)) else sampler
        model.generate_function = None  # rebuilt with this sampler
    try:
        parts = []
        rows = len(next(iter(inputs.values())))
        for start in range(0, rows, batch_size):
            part = {key: np.asarray(value[start : start + batch_size]) for key, value in inputs.items()}
            out = model.generate(part, stop_token_ids=None if stop_token_ids is None else tuple(stop_token_ids))
            parts.append({key: to_numpy(value) for key, value in out.items()})
    finally:
        if sampler is not None:
            model.sampler, model.generate_function = previous
    return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}


def generate_token_ids(model, prompts, sampler=None, stop_token_ids=None, batch_size=64):
    """`(token_ids, padding_mask)`: `model`'s continuations of `prompts` to the prompts' full width.

    Args:
        model: a keras-hub `CausalLM` (preprocessor attached or not).
        prompts: `{"token_ids", "padding_mask"}`, each prompt's tokens first, padding after; the
            width of the arrays is the length generated to.
        sampler: a keras-hub sampler or its name (`"greedy"`, `"top_k"`, `"top_p"`, ...); `None`
            keeps the model's own (set by its `compile(sampler=...)`).
        stop_token_ids: token ids that end a sequence (its mask stops there), or None.
        batch_size: sequences generated at once.
    """
    out = _generated(model, prompts, sampler, stop_token_ids, batch_size)
    return out["token_ids"], out["padding_mask"]


def teacher_transfer_set(teacher, prompts, sampler="top_k", stop_token_ids=None, batch_size=64):
    """Sequence-level distillation's data: the teacher's continuations of `prompts` as next-token
    `(x, y, sample_weight)`, labelled with the teacher's own tokens (Kim and Rush 2016)."""
    return next_token_data(*generate_token_ids(teacher, prompts, sampler, stop_token_ids, batch_size))


_PyDataset = getattr(keras.utils, "PyDataset", keras.utils.Sequence)  # tf_keras names it Sequence


class OnPolicySequences(_PyDataset):
    """Next-token batches in which a fraction of the sequences are the student's own generations.

    At the start of every epoch, `student_fraction` of the sequences (drawn anew each epoch)
    are replaced by the student's continuations of their first `prompt_length` tokens; their
    generated tokens are unlabelled (`MISSING_LABEL`) and are distilled from the teacher,
    which scores them in the training step. The other sequences keep their labels.

    Example:
    >>> data = OnPolicySequences(x, y, w, student, prompt_length=8, student_fraction=0.5)
    >>> distiller.fit(data, epochs=8)            # a Distiller with GKD's "generalized_jsd"

    Args:
        x, y, sample_weight: next-token data as `next_token_data` returns it.
        student: the keras-hub `CausalLM` being distilled (the Distiller's student).
        prompt_length: tokens of each sequence kept as the prompt.
        student_fraction: the share of sequences the student writes each epoch (GKD's `lmbda`).
        sampler: keras-hub sampler (name or instance) the student generates with.
        batch_size: training batch size. `seed`: which sequences, and the sampler's draws.
    """

    def __init__(
        self,
        x,
        y,
        sample_weight,
        student,
        prompt_length,
        student_fraction=0.5,
        sampler="top_k",
        batch_size=32,
        seed=0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not 0.0 <= student_fraction <= 1.0:
            raise ValueError(f"student_fraction={student_fraction} must be between 0 and 1.")
        if not 1 <= prompt_length < x["token_ids"].shape[1]:  # room to write in each row
            raise ValueError(
                f"prompt_length={prompt_length} must be at least 1 and below the sequence width "
                f"{x['token_ids'].shape[1]}: the student needs room to generate."
            )
        self.x = {key: np.asarray(value) for key, value in x.items()}
        self.y, self.sample_weight = np.asarray(y), np.asarray(sample_weight, "float32")
        self.student, self.prompt_length, self.student_fraction = student, prompt_length, student_fraction
        self.sampler, self.batch_size = sampler, batch_size
        self._rng = np.random.default_rng(seed)
        self.generated_rows = np.zeros(len(self.y), bool)
        self._epoch_data = (self.x, self.y, self.sample_weight)

    def __len__(self):
        return int(np.ceil(len(self.y) / self.batch_size))

    def __getitem__(self, index):
        rows = slice(index * self.batch_size, (index + 1) * self.batch_size)
        x, y, weight = self._epoch_data
        return {key: value[rows] for key, value in x.items()}, y[rows], weight[rows]

    def on_epoch_begin(self):
        count = int(round(self.student_fraction * len(self.y)))
        self.generated_rows = np.zeros(len(self.y), bool)
        self.generated_rows[self._rng.choice(len(self.y), count, replace=False)] = True
        if count == 0:
            self._epoch_data = (self.x, self.y, self.sample_weight)
            return
        rows = np.flatnonzero(self.generated_rows)
        # Written to the inputs' width (a keras-hub model takes no longer rows): the last position has
        # no next token to label, and is still distilled.
        prompts = prompts_of({key: value[rows] for key, value in self.x.items()}, self.prompt_length)
        ids, mask = generate_token_ids(self.student, prompts, self.sampler, batch_size=max(self.batch_size, 64))
        gen_x = {
            "token_ids": ids.astype(self.x["token_ids"].dtype),
            "padding_mask": mask.astype(self.x["padding_mask"].dtype),
        }
        # Labels only where they are the data's own tokens: inside the prompt.
        gen_y = np.full(ids.shape, MISSING_LABEL, self.y.dtype)
        gen_y[:, :-1] = np.where(prompts["padding_mask"][:, 1:] > 0, ids[:, 1:], MISSING_LABEL)
        gen_weight = np.concatenate([mask[:, 1:], mask[:, -1:]], axis=1).astype("float32")
        x = {key: value.copy() for key, value in self.x.items()}
        y, weight = self.y.copy(), self.sample_weight.copy()
        for key in x:
            x[key][rows] = gen_x[key]
        y[rows], weight[rows] = gen_y, gen_weight
        self._epoch_data = (x, y, weight)


# Translation: keras-hub sequence-to-sequence models (BART) -------------------------------------


def translation_data(sources, target_token_ids, target_padding_mask):
    """`(x, y, sample_weight)` for a keras-hub `Seq2SeqLM` (BART) from whole target sequences.

    The decoder reads each target but its last token (its first is the start token) and learns the
    next one: `x` is keras-hub's `{"encoder_token_ids", "encoder_padding_mask", "decoder_token_ids",
    "decoder_padding_mask"}`, `y` the next tokens, `sample_weight` 1 on real ones.

    Args:
        sources: `{"encoder_token_ids", "encoder_padding_mask"}` (batch, source length).
        target_token_ids, target_padding_mask: (batch, target length), start token first.
    """
    ids, mask = np.asarray(target_token_ids), np.asarray(target_padding_mask)
    x = {
        "encoder_token_ids": np.asarray(sources["encoder_token_ids"]).astype("int32"),
        "encoder_padding_mask": np.asarray(sources["encoder_padding_mask"]).astype("int32"),
        "decoder_token_ids": ids[:, :-1].astype("int32"),
        "decoder_padding_mask": mask[:, :-1].astype("int32"),
    }
    return x, ids[:, 1:].astype("int64"), mask[:, 1:].astype("float32")


def teacher_translations(
    teacher, sources, target_length, start_token_id, stop_token_ids=None, sampler="greedy", batch_size=64
):
    """Sequence-level distillation for translation (Kim and Rush 2016): the teacher's translations of
    `sources` as the student's training data (`translation_data`), labelled with the teacher's tokens.

    Args:
        teacher: a keras-hub `Seq2SeqLM` (`BartSeq2SeqLM`), its preprocessor detached or not used.
        sources: `{"encoder_token_ids", "encoder_padding_mask"}`, the sentences to translate.
        target_length: tokens of each translation, the start token included.
        start_token_id: the decoder's first token (BART's `<s>`).
        stop_token_ids: token ids that end a translation (BART's `</s>`); the mask stops after it.
        sampler: a keras-hub sampler or its name; Kim and Rush's is a beam search
            (`keras_hub.samplers.BeamSampler(num_beams=5)`), `"greedy"` the cheap one.
        batch_size: sentences translated at once.
    """
    rows = len(sources["encoder_token_ids"])
    start = np.zeros((rows, target_length), "int32")
    start[:, 0] = start_token_id
    prompts = {
        "encoder_token_ids": np.asarray(sources["encoder_token_ids"]),
        "encoder_padding_mask": np.asarray(sources["encoder_padding_mask"]),
        "decoder_token_ids": start,
        "decoder_padding_mask": (np.arange(target_length)[None, :] == 0).repeat(rows, axis=0).astype("int32"),
    }
    out = _generated(teacher, prompts, sampler, stop_token_ids, batch_size)
    return translation_data(sources, out["decoder_token_ids"], out["decoder_padding_mask"])
