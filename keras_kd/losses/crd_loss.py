"""Contrastive representation distillation (CRD) with a memory bank of embeddings."""

import math

from keras_kd.backend import IS_TF_KERAS, keras, ops, register_serializable
from keras_kd.losses.base import as_float32, register_loss
from keras_kd.losses.feature_base import FeatureLoss, flatten_features

_EPS = 1e-7


def nce_loss(scores, num_examples):
    """Noise-contrastive estimation loss of CRD, for the batch.

    Args:
        scores: `(batch, 1 + K)` non-negative scores exp(<f, m> / tau) / Z; column 0 is the
            positive pair, the K others the negatives drawn uniformly from `num_examples`.

    Formula:
        P_n = 1 / N;  D(s) = s / (s + K P_n)
        loss = -(sum_i log D(s_i0) + sum_i sum_k log(1 - D(s_ik))) / batch

    References:
        Tian, Krishnan and Isola, "Contrastive Representation Distillation", ICLR 2020.
    """
    scores = ops.cast(ops.convert_to_tensor(scores), "float32")
    negatives = scores.shape[-1] - 1
    noise = negatives / float(num_examples)
    positive = ops.maximum(scores[:, 0], 1e-30)  # a score that underflowed to 0 (small tau): log(0) = -inf
    log_d1 = ops.log(positive / (positive + noise + _EPS))
    log_d0 = ops.log(noise / (scores[:, 1:] + noise + _EPS))
    batch = ops.cast(ops.shape(scores)[0], "float32")
    return -(ops.sum(log_d1) + ops.sum(log_d0)) / batch


def _l2_normalize(x):
    return x / ops.sqrt(ops.maximum(ops.sum(ops.square(x), axis=-1, keepdims=True), 1e-12))


CRD_SETTINGS = ("num_examples", "feature_dim", "num_negatives", "nce_temperature", "momentum", "seed")


def crd_settings(num_examples, feature_dim, num_negatives, nce_temperature, momentum, seed):
    """CRD's hyper-parameters, checked and typed once for the loss (its config) and its head (its state)."""
    if int(num_examples) < 2:
        raise ValueError(f"`num_examples` must be the training-set size (>= 2); received {num_examples!r}.")
    return {
        "num_examples": int(num_examples),
        "feature_dim": int(feature_dim),
        "num_negatives": int(num_negatives),
        "nce_temperature": float(nce_temperature),
        "momentum": float(momentum),
        "seed": seed,
    }


@register_serializable("CRDHead")
class CRDHead(keras.layers.Layer):
    """CRD's trainable embeddings and its two memory banks; the Distiller owns one per CRD term."""

    # Keras reads a layer's __init__ signature, which mutmut's wrapper hides (tools/mutation_test.sh).
    # pragma: no mutate start
    def __init__(
        self, num_examples, feature_dim=128, num_negatives=4096, nce_temperature=0.07, momentum=0.5, seed=None, **kwargs
    ):
        super().__init__(**kwargs)
        for name, value in crd_settings(
            num_examples, feature_dim, num_negatives, nce_temperature, momentum, seed
        ).items():
            setattr(self, name, value)
        self.student_embedding = keras.layers.Dense(self.feature_dim, name="student_embedding")
        self.teacher_embedding = keras.layers.Dense(self.feature_dim, name="teacher_embedding")
        if not IS_TF_KERAS:
            self.seed_generator = keras.random.SeedGenerator(seed)

    # pragma: no mutate end
    def build_for(self, student_dim, teacher_dim):
        self.student_embedding.build((None, student_dim))
        self.teacher_embedding.build((None, teacher_dim))
        bound = 1.0 / math.sqrt(self.feature_dim / 3.0)
        initializer = keras.initializers.RandomUniform(-bound, bound, seed=self.seed)
        shape = (self.num_examples, self.feature_dim)
        self.student_memory = self.add_weight(
            name="student_memory", shape=shape, initializer=initializer, trainable=False
        )
        self.teacher_memory = self.add_weight(
            name="teacher_memory", shape=shape, initializer=initializer, trainable=False
        )
        self.normalizers = self.add_weight(name="normalizers", shape=(2,), initializer="zeros", trainable=False)
        self.built = True

    def _negatives(self, batch):
        shape = (batch, self.num_negatives)
        if IS_TF_KERAS:
            import tensorflow as tf

            return tf.random.uniform(shape, 0, self.num_examples, dtype="int32", seed=self.seed)
        return keras.random.randint(shape, 0, self.num_examples, seed=self.seed_generator)

    def _scores(self, embedding, memory, contrast_indices):
        rows = ops.take(ops.convert_to_tensor(memory), contrast_indices, axis=0)  # (batch, 1 + K, dim)
        similarity = ops.sum(rows * embedding[:, None, :], axis=-1)
        return ops.exp(similarity / self.nce_temperature)

    def _update_memory(self, memory, indices, embedding):
        current = ops.take(ops.convert_to_tensor(memory), indices, axis=0)
        rows = _l2_normalize(current * self.momentum + ops.stop_gradient(embedding) * (1.0 - self.momentum))
        memory.assign(ops.scatter_update(ops.convert_to_tensor(memory), indices[:, None], rows))

    def call(self, teacher_features, student_features, indices, training=False):
        teacher_features, student_features = as_float32(teacher_features, student_features)
        v_s = _l2_normalize(self.student_embedding(flatten_features(student_features)))
        v_t = _l2_normalize(self.teacher_embedding(flatten_features(ops.stop_gradient(teacher_features))))
        indices = ops.reshape(ops.cast(indices, "int32"), (-1,))
        batch = ops.shape(indices)[0]
        contrast = ops.concatenate([indices[:, None], self._negatives(batch)], axis=1)
        scores_s = self._scores(v_s, self.teacher_memory, contrast)  # student anchor, teacher memory
        scores_t = self._scores(v_t, self.student_memory, contrast)  # teacher anchor, student memory
        # Z is estimated once, from the first batch, as in the authors' code.
        normalizers = ops.convert_to_tensor(self.normalizers)
        estimate = ops.stack([ops.mean(scores_s), ops.mean(scores_t)]) * float(self.num_examples)
        normalizers = ops.where(normalizers > 0, normalizers, ops.stop_gradient(estimate))
        loss = nce_loss(scores_s / normalizers[0], self.num_examples) + nce_loss(
            scores_t / normalizers[1], self.num_examples
        )
        if training:
            self.normalizers.assign(normalizers)
            self._update_memory(self.student_memory, indices, v_s)
            self._update_memory(self.teacher_memory, indices, v_t)
        return loss

    def get_config(self):
        return {**super().get_config(), **{name: getattr(self, name) for name in CRD_SETTINGS}}


@register_loss("crd")
class CRDLoss(FeatureLoss):
    """CRD between two embeddings of any sizes; the data must carry each example's index.

    Give the Distiller inputs as `keras_kd.with_indices(x)` (a dict with the example
    indices) so that the memory bank can store one embedding per training example.
    Negatives are drawn uniformly from all examples (the paper's CIFAR code draws them
    from other classes). In `evaluate` the memory is read, not updated.

    Args:
        num_examples: size of the training set (rows of the memory banks).
        feature_dim: embedding size (128 in the paper).
        num_negatives: negatives per positive (16384 in the paper).
        nce_temperature: tau (0.07 in the paper).
        momentum: memory update momentum (0.5 in the paper).
    """

    per_sample = False
    needs_same_shape = False
    needs_indices = True
    hyperparameters = CRD_SETTINGS

    def __init__(
        self,
        num_examples,
        feature_dim=128,
        num_negatives=4096,
        nce_temperature=0.07,
        momentum=0.5,
        seed=None,
        reduction="sum_over_batch_size",
        name="crd_loss",
        **kwargs,
    ):
        super().__init__(reduction=reduction, name=name, **kwargs)
        for name, value in crd_settings(
            num_examples, feature_dim, num_negatives, nce_temperature, momentum, seed
        ).items():
            setattr(self, name, value)

    def build_head(self, student_shape, teacher_shape, name):
        head = CRDHead(**{setting: getattr(self, setting) for setting in CRD_SETTINGS}, name=name)
        head.build_for(int(math.prod(student_shape[1:])), int(math.prod(teacher_shape[1:])))
        return head

    def compute(self, teacher, student, labels=None, temperature=1.0):
        raise ValueError(
            "CRDLoss keeps a memory bank and trainable embeddings: use it inside a Distiller "
            "(FeatureDistillation('crd', ...)), with inputs from keras_kd.with_indices(x)."
        )
