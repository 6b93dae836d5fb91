"""`TopKTeacherCache`: a teacher cache that fits language models, the k most likely tokens per position.

A full cache of a language model's logits holds `positions x vocabulary` floats: 50,257 per
token for GPT-2, far more than the text. This cache keeps, per position, the teacher's `k`
largest probabilities and their token ids; the rest of the mass is kept, either spread evenly
over the other tokens (`tail="spread"`, the default: the cached distribution still sums to 1 over
the vocabulary and every registered loss, DKD included, runs on it unchanged) or as one "tail"
class (`tail="bucket"`, the "other" class of offline top-k teacher logits): the loss
then compares k + 1 probabilities, the teacher's top k and its rest against the student's
probabilities of the same k tokens and the sum of all its others, which claims nothing about how
the teacher spreads its rest. The error the even spread introduces is measured
while the cache is built, against the full distribution the teacher gave:
`dropped_mass` (mean probability outside the top k) and `kl_to_full` (mean
`KL(teacher || cached)` in nats per real token).

The cache is built in one streaming pass (arrays, a dict of arrays such as keras-hub's
`{"token_ids", "padding_mask"}`, or a finite `tf.data.Dataset` in a fixed order) and the
full distribution is rebuilt per batch inside the training step, on the device, from the
`k` values: the input pipeline carries `k` numbers per token, not the vocabulary.

Example:
>>> cache = TopKTeacherCache.build(teacher_lm, x_train, top_k=16)
>>> print(cache.dropped_mass, cache.kl_to_full, cache.nbytes, cache.full_logits_nbytes)
>>> distiller.fit(x_train, y_train, sample_weight=w_train, epochs=8, teacher_cache=cache)

References:
    ms-swift's top-k teacher logits for LLM distillation; Shum et al. 2024, "FIRST: Teach a
    Reliable Large Language Model Through Efficient Trustworthy Distillation" (top-k caching).
"""

import os

import numpy as np

from keras_kd.data.keys import TOP_K_IDS_KEY, TOP_K_PROBABILITIES_KEY, TOP_K_WITH_TAIL_KEY
from keras_kd.teacher import top_k_disk
from keras_kd.teacher.batches import collect, teacher_batches
from keras_kd.teacher.cache import TeacherCache
from keras_kd.teacher.top_k_ops import TruncationError, checked_tail, top_k_of


class TopKTeacherCache(TeacherCache):
    """The teacher's `top_k` probabilities and token ids at every position of fixed inputs.

    Used like `TeacherCache` (`Distiller.fit(..., teacher_cache=cache)`, `save`, `load`), with
    the same checks that the data is the data the cache was built from. The Distiller's
    temperature is applied in training, to the rebuilt distribution (or to the k + 1 classes of
    `tail="bucket"`).
    """

    def __init__(
        self,
        probabilities,
        ids,
        num_classes,
        input_fingerprint,
        num_examples,
        batch_sizes=None,
        batch_hashes=None,
        dropped_mass=None,
        kl_to_full=None,
        tail="spread",
        directory=None,
    ):
        self.num_classes = int(num_classes)
        self.directory = directory  # the folder of a cache on disk (its arrays memory-mapped), else None
        self.tail = checked_tail(tail)
        self.dropped_mass = None if dropped_mass is None else float(dropped_mass)
        self.kl_to_full = None if kl_to_full is None else float(kl_to_full)
        ids, probabilities = np.asanyarray(ids), np.asanyarray(probabilities)  # a memory map stays one
        targets = {
            TOP_K_PROBABILITIES_KEY if tail == "spread" else TOP_K_WITH_TAIL_KEY: probabilities.astype(
                "float16", copy=False
            ),
            TOP_K_IDS_KEY: ids.astype("uint16" if self.num_classes <= 2**16 else "int32", copy=False),
        }
        self._init_batches(targets, input_fingerprint, num_examples, batch_sizes, batch_hashes)

    @property
    def top_k(self):
        return int(self.targets[TOP_K_IDS_KEY].shape[-1])

    @property
    def logits(self):
        raise AttributeError("A TopKTeacherCache holds top-k probabilities, not logits: see `targets`.")

    @property
    def full_logits_nbytes(self):
        """What a cache of the full float32 logits of the same positions would take."""
        positions = int(np.prod(self.targets[TOP_K_IDS_KEY].shape[:-1]))
        return positions * self.num_classes * 4

    @classmethod
    def build(cls, teacher, x, top_k=32, batch_size=256, tail="spread", directory=None, verbose="auto"):
        """Run `teacher` once over `x` in inference mode and keep its `top_k` tokens per position.

        Args:
            teacher: one Keras model with logits outputs `(batch, ..., classes)`.
            x: arrays (or a dict of arrays, keras-hub's inputs), or a finite `tf.data.Dataset`
                of batches in a fixed order, padded to one length.
            top_k: tokens kept per position (at least 1, fewer than the vocabulary).
            batch_size: the teacher's batch size for arrays.
            tail: the rest of the teacher's mass spread evenly over the other tokens (`"spread"`)
                or kept as one class (`"bucket"`: every divergence, not DKD, which needs the
                target class among all tokens). `dropped_mass` and `kl_to_full` measure the
                even spread either way.
            directory: `None` keeps the cache in memory; a folder writes it there batch by batch
                as the teacher runs (`keras_kd.teacher.top_k_disk`: for a corpus whose outputs exceed
                memory), resumes a build that was killed, and returns the cache memory-mapped.
            verbose: the progress bar of a build to `directory` (`"auto"` or 1: shown; 0: silent).
        """
        checked_tail(tail)
        if directory is not None:
            return cls(**top_k_disk.write(teacher, x, directory, top_k, batch_size, tail, verbose))
        error = TruncationError()
        num_classes = []

        def keep_top_k(inputs, logits):
            top = top_k_of(logits, top_k, inputs, error)
            num_classes.append(np.shape(logits)[-1])
            return top

        stored, fingerprint, num_examples, batches = collect(teacher_batches(teacher, x, batch_size), keep_top_k)
        dropped_mass, kl_to_full = error.means
        return cls(
            stored[TOP_K_PROBABILITIES_KEY],
            stored[TOP_K_IDS_KEY],
            num_classes[0],
            fingerprint,
            num_examples,
            *(batches or (None, None)),
            dropped_mass=dropped_mass,
            kl_to_full=kl_to_full,
            tail=tail,
        )

    @property
    def probabilities(self):
        """The teacher's top-k probabilities, `(examples, ..., k)` float16."""
        return self.targets[TOP_K_PROBABILITIES_KEY if self.tail == "spread" else TOP_K_WITH_TAIL_KEY]

    def _saved_settings(self):
        settings = {"setting_num_classes": np.array(self.num_classes)}
        if self.dropped_mass is not None:
            settings["setting_dropped_mass"] = np.array(self.dropped_mass)
            settings["setting_kl_to_full"] = np.array(self.kl_to_full)
        return settings

    @classmethod
    def load(cls, path):
        """A cache saved with `save` (an `.npz` file), or built to a folder (`build(..., directory=...)`:
        loaded memory-mapped)."""
        if os.path.isdir(path):
            return cls(**top_k_disk.read(path))
        return super().load(path)

    def _batch_targets(self):
        if self.directory is None:
            return super()._batch_targets()
        return top_k_disk.dataset_targets(self)

    @classmethod
    def _from_saved(cls, targets, input_fingerprint, num_examples, batches, settings):
        if TOP_K_IDS_KEY not in targets:
            raise ValueError("This file holds a cache of full logits: load it with TeacherCache.load.")
        dropped = settings.get("setting_dropped_mass")
        kl = settings.get("setting_kl_to_full")
        tail = "spread" if TOP_K_PROBABILITIES_KEY in targets else "bucket"  # the key names the form
        return cls(
            targets[TOP_K_PROBABILITIES_KEY if tail == "spread" else TOP_K_WITH_TAIL_KEY],
            targets[TOP_K_IDS_KEY],
            int(settings["setting_num_classes"]),
            input_fingerprint,
            num_examples,
            *batches,
            dropped_mass=None if dropped is None else float(dropped),
            kl_to_full=None if kl is None else float(kl),
            tail=tail,
        )
