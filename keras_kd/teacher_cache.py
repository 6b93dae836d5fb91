"""`TeacherCache`: the teacher's logits computed once, so that distillation costs what training the student costs.

Valid for data without random augmentation: the teacher's output for each example does
not change between epochs. The cache stores a fingerprint of the inputs it was built
from and refuses other inputs; Keras shuffles the cached logits together with the inputs.
"""

import hashlib
import os

import numpy as np

from keras_kd.inputs import INDEX_KEY, INPUTS_KEY, TEACHER_LOGITS_KEY, unpack

_FINGERPRINT_ROWS = 4096  # rows hashed: enough to tell data sets apart, fast on large ones


def fingerprint(x):
    """A short hash of an array's shape, dtype and a deterministic sample of its rows."""
    x = np.asarray(x)
    step = max(1, len(x) // _FINGERPRINT_ROWS)
    digest = hashlib.blake2b(digest_size=16)
    digest.update(repr((x.shape, str(x.dtype))).encode())
    digest.update(np.ascontiguousarray(x[::step]).tobytes())
    return digest.hexdigest()


class TeacherCache:
    """Teacher logits for every example of a fixed array of inputs.

    Example:
    >>> cache = TeacherCache.build(teacher, x_train)          # one pass of the teacher
    >>> distiller.fit(x_train, y_train, epochs=10, teacher_cache=cache)
    >>> cache.save("teacher_logits.npz")                       # for large sets, or later runs
    """

    def __init__(self, logits, input_fingerprint, num_examples):
        self.logits = np.asarray(logits, dtype="float32")
        self.input_fingerprint = input_fingerprint
        self.num_examples = int(num_examples)
        if len(self.logits) != self.num_examples:
            raise ValueError(f"The cache holds {len(self.logits)} rows of logits for {num_examples} examples.")

    @classmethod
    def build(cls, teacher, x, batch_size=256):
        """Run `teacher` (or a list of teachers, averaged as logits) once over `x` in inference mode."""
        x = np.asarray(x)
        if len(x) == 0:
            raise ValueError("`x` holds no samples: there is nothing to cache.")
        teachers = teacher if isinstance(teacher, (list, tuple)) else [teacher]
        if len(teachers) != 1:
            raise ValueError("TeacherCache.build takes one teacher; cache an ensemble by caching its model.")
        model = teachers[0]
        logits = np.concatenate(
            [np.asarray(model(x[i : i + batch_size], training=False)) for i in range(0, len(x), batch_size)]
        )
        return cls(logits, fingerprint(x), len(x))

    def check(self, x, argument="x"):
        """Raise a ValueError unless `x` is the data this cache was built from."""
        if isinstance(x, dict) or not hasattr(x, "__len__"):
            raise ValueError(
                f"A teacher cache works with `{argument}` as one NumPy array (the one it was built "
                f"from); received {type(x).__name__}."
            )
        if len(x) != self.num_examples:
            raise ValueError(
                f"The teacher cache was built from {self.num_examples} examples, but `{argument}` has "
                f"{len(x)}: rebuild it with TeacherCache.build(teacher, {argument})."
            )
        if fingerprint(x) != self.input_fingerprint:
            raise ValueError(
                f"The teacher cache was built from other data than `{argument}` (fingerprints "
                "differ, same size): rebuild it from these inputs, in this order."
            )

    def attach(self, x, argument="x"):
        """`x` (checked against this cache) packed with its teacher logits, for `Distiller.fit`."""
        inputs, _, indices = unpack(x)
        self.check(inputs, argument=argument)
        packed = {INPUTS_KEY: inputs, TEACHER_LOGITS_KEY: self.logits}
        if indices is not None:
            packed[INDEX_KEY] = indices
        return packed

    def save(self, path):
        """Write the cache to an `.npz` file (atomically: a temporary file, then a rename)."""
        folder = os.path.dirname(os.path.abspath(path))
        os.makedirs(folder, exist_ok=True)
        temporary = os.path.join(folder, f".{os.path.basename(path)}.partial.npz")
        np.savez(temporary, logits=self.logits, fingerprint=np.array(self.input_fingerprint),
                 num_examples=np.array(self.num_examples))
        os.replace(temporary, path)

    @classmethod
    def load(cls, path):
        with np.load(path) as data:
            return cls(data["logits"], str(data["fingerprint"]), int(data["num_examples"]))
