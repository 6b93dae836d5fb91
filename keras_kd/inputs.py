"""Keys of the input dicts through which data carries extras to the Distiller.

`{"inputs": x, "teacher_logits": ...}` comes from a `TeacherCache`; `{"inputs": x,
"index": ...}` from `with_indices`, for losses with a per-example memory (CRD). Keras
shuffles every entry of such a dict together.
"""

import numpy as np

INPUTS_KEY = "inputs"
TEACHER_LOGITS_KEY = "teacher_logits"
INDEX_KEY = "index"


def with_indices(x):
    """`{"inputs": x, "index": [0, 1, ..., n - 1]}`: the inputs with each example's index."""
    if isinstance(x, dict):
        raise TypeError("with_indices takes an array of inputs; for a dict, add the 'index' entry yourself.")
    return {INPUTS_KEY: x, INDEX_KEY: np.arange(len(x), dtype="int64")}


def unpack(x):
    """`(inputs, cached teacher logits or None, example indices or None)`."""
    if isinstance(x, dict) and (TEACHER_LOGITS_KEY in x or INDEX_KEY in x):
        return x[INPUTS_KEY], x.get(TEACHER_LOGITS_KEY), x.get(INDEX_KEY)
    return x, None, None
