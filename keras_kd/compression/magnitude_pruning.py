"""`MagnitudePruning`: magnitude pruning during training for Keras 3 (any backend), TF-MOT style.

TF-MOT wraps layers and refuses Keras 3 models; this callback instead keeps a mask per
kernel, recomputes it on the schedule's pruning steps (the smallest-magnitude weights are
zeroed until the target sparsity is reached, as TF-MOT's `_update_mask` does) and applies
it after every training batch, so the model never runs with pruned weights back. The
model needs no wrapper and no stripping: it exports as it is.
"""

import numpy as np

from keras_kd.backend import keras

PRUNABLE_LAYERS = ("Dense", "Conv1D", "Conv2D", "Conv3D", "DepthwiseConv2D", "SeparableConv2D", "EinsumDense")


def prunable_kernels(model):
    """`(layer name, kernel variable)` for each prunable layer's kernel, as TF-MOT prunes kernels only."""
    kernels = []
    for layer in _flatten(model):
        if type(layer).__name__ in PRUNABLE_LAYERS:
            for name in ("kernel", "depthwise_kernel", "pointwise_kernel"):
                variable = getattr(layer, name, None)
                if variable is not None:
                    kernels.append((layer.name, variable))
    return kernels


def _flatten(model):
    for layer in model.layers:
        if hasattr(layer, "layers") and layer.layers:
            yield from _flatten(layer)
        else:
            yield layer


def magnitude_mask(weights, sparsity):
    """A 0/1 mask that keeps the `1 - sparsity` share of `weights` with the largest magnitude."""
    flat = np.abs(np.asarray(weights)).reshape(-1)
    keep = int(round(flat.size * (1.0 - sparsity)))
    mask = np.zeros(flat.size, dtype=np.asarray(weights).dtype)
    if keep > 0:
        mask[np.argsort(-flat, kind="stable")[:keep]] = 1
    return mask.reshape(np.shape(weights))


def sparsity_of(model):
    """`{layer name: share of zero weights}` over the prunable kernels, and `"overall"`."""
    report, zeros, total = {}, 0, 0
    for name, kernel in prunable_kernels(model):
        values = np.asarray(kernel.numpy())
        report[name] = float(np.mean(values == 0))
        zeros += int(np.sum(values == 0))
        total += values.size
    report["overall"] = zeros / total if total else 0.0
    return report


class MagnitudePruning(keras.callbacks.Callback):
    """Prune the kernels of a model (or of a Distiller's student) while it trains.

    Args:
        schedule: a `ConstantSparsity` or `PolynomialDecay` (`keras_kd.compression`).
        layer_names: names of the layers to prune; default every Dense and convolution.

    Example:
    >>> pruning = MagnitudePruning(ConstantSparsity(0.8, begin_step=0, frequency=50))
    >>> distiller.fit(x, y, epochs=5, callbacks=[pruning])
    >>> sparsity_of(distiller.student)["overall"]   # 0.8
    """

    def __init__(self, schedule, layer_names=None):
        super().__init__()
        if not hasattr(schedule, "should_prune"):
            raise TypeError(
                "`schedule` must be keras_kd.compression.ConstantSparsity or PolynomialDecay; "
                f"received {type(schedule).__name__}."
            )
        self.schedule = schedule
        self.layer_names = None if layer_names is None else list(layer_names)
        self.step = 0
        self.masks = {}

    def target_model(self):
        return getattr(self.model, "student", self.model)

    def on_train_begin(self, logs=None):
        kernels = prunable_kernels(self.target_model())
        if self.layer_names is not None:
            known = {name for name, _ in kernels}
            missing = sorted(set(self.layer_names) - known)
            if missing:
                raise ValueError(f"Cannot prune {missing}: prunable layers are {sorted(known)}.")
            kernels = [(name, kernel) for name, kernel in kernels if name in self.layer_names]
        if not kernels:
            raise ValueError("The model has no prunable kernels (Dense or convolution layers).")
        self._kernels = kernels
        for _, kernel in kernels:
            self.masks.setdefault(id(kernel), np.ones(kernel.shape, dtype="float32"))
        self._check_resumed = True

    def _resume(self):
        """After `BackupAndRestore` restored a run (its optimizer further on than this step), go on from there."""
        self._check_resumed = False
        optimizer = getattr(self.model, "optimizer", None)
        iterations = int(np.asarray(optimizer.iterations)) if optimizer is not None else 0
        if iterations > self.step:
            self._sync_variables()
            self.step = iterations
            for _, kernel in self._kernels:  # the restored kernels carry the masks' zeros
                self.masks[id(kernel)] = (kernel.numpy() != 0).astype("float32")

    def _sync_variables(self):
        # JAX's fit keeps the weights in its own state during an epoch; bring them back first.
        sync = getattr(self.model, "jax_state_sync", None)
        if sync is not None:
            sync()

    def on_train_batch_begin(self, batch, logs=None):
        if getattr(self, "_check_resumed", False):
            self._resume()
        prune_now, sparsity = self.schedule(self.step)
        if prune_now:
            self._sync_variables()
            for _, kernel in self._kernels:
                self.masks[id(kernel)] = magnitude_mask(kernel.numpy(), sparsity)
            self._apply()

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        self._apply()

    def on_epoch_end(self, epoch, logs=None):
        self._sync_variables()
        if logs is not None:
            logs["sparsity"] = sparsity_of(self.target_model())["overall"]

    def _apply(self):
        self._sync_variables()
        for _, kernel in self._kernels:
            kernel.assign(kernel.numpy() * self.masks[id(kernel)])
