"""Keys of the input dicts through which data carries extras to the Distiller.

`{"inputs": x, "teacher_logits": ...}` comes from a `TeacherCache`, `{"inputs": x,
"teacher_top_k_probabilities": ..., "teacher_top_k_ids": ...}` from a `TopKTeacherCache` (its
`tail="bucket"` form names the probabilities `"teacher_top_k_probabilities_with_tail"`); `{"inputs": x,
"index": ...}` from `with_indices`, for losses with a per-example memory (CRD). Keras
shuffles every entry of such a dict together.
"""

import numpy as np

INPUTS_KEY = "inputs"
STUDENT_INPUTS_KEY = "student_inputs"
TEACHER_INPUTS_KEY = "teacher_inputs"
TEACHER_LOGITS_KEY = "teacher_logits"
INDEX_KEY = "index"
TOP_K_PROBABILITIES_KEY = "teacher_top_k_probabilities"
TOP_K_IDS_KEY = "teacher_top_k_ids"
TOP_K_WITH_TAIL_KEY = "teacher_top_k_probabilities_with_tail"
_EXTRA_KEYS = (TEACHER_LOGITS_KEY, TOP_K_PROBABILITIES_KEY, TOP_K_WITH_TAIL_KEY, INDEX_KEY)


def with_indices(x):
    """`{"inputs": x, "index": [0, 1, ..., n - 1]}`: the inputs with each example's index."""
    if isinstance(x, dict):
        raise TypeError("with_indices takes an array of inputs; for a dict, add the 'index' entry yourself.")
    return {INPUTS_KEY: x, INDEX_KEY: np.arange(len(x), dtype="int64")}


def unpack(x):
    """`(inputs, cached teacher outputs or None, example indices or None)`.

    The cached outputs are logits, or for a top-k cache the dict `{"probabilities", "ids", "tail"}`
    (`tail`: `"spread"` or `"bucket"`, a Python string, so a traced step branches on it once).
    """
    if not (isinstance(x, dict) and any(key in x for key in _EXTRA_KEYS)):
        return x, None, None
    cached = x.get(TEACHER_LOGITS_KEY)
    if TOP_K_PROBABILITIES_KEY in x:
        cached = {"probabilities": x[TOP_K_PROBABILITIES_KEY], "ids": x[TOP_K_IDS_KEY], "tail": "spread"}
    elif TOP_K_WITH_TAIL_KEY in x:
        cached = {"probabilities": x[TOP_K_WITH_TAIL_KEY], "ids": x[TOP_K_IDS_KEY], "tail": "bucket"}
    return x[INPUTS_KEY], cached, x.get(INDEX_KEY)


def has_own_inputs(x):
    """Whether `x` gives each model inputs of its own (`split_inputs`), by its keys."""
    return isinstance(x, dict) and set(x) == {STUDENT_INPUTS_KEY, TEACHER_INPUTS_KEY}


def split_inputs(x):
    """`(the student's inputs, the teacher's)`.

    `{"student_inputs": ..., "teacher_inputs": ...}` gives each model its own inputs of the same
    examples (language models of two tokenizers: each its own token ids of the same text); any
    other `x` goes to both models, and is returned twice as the same object.
    """
    if has_own_inputs(x):
        return x[STUDENT_INPUTS_KEY], x[TEACHER_INPUTS_KEY]
    return x, x
