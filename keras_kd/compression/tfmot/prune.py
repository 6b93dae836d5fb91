"""Magnitude pruning with TF-MOT (`prune_low_magnitude`) and the callbacks its training needs."""

from keras_kd.backend import keras
from keras_kd.compression.pruning_schedules import validate_sparsity
from keras_kd.compression.tfmot.loader import load_tfmot


def unsupported_layers(model):
    """Names and types of the layers TF-MOT's pruning registry cannot wrap."""
    tfmot = load_tfmot("Pruning with TF-MOT")
    from tensorflow_model_optimization.python.core.sparsity.keras.prune_registry import PruneRegistry

    return [
        (layer.name, type(layer).__name__)
        for layer in model.layers
        if not (PruneRegistry.supports(layer) or isinstance(layer, tfmot.sparsity.keras.PrunableLayer))
    ]


def prune(
    model,
    target_sparsity,
    schedule="constant",
    begin_step=0,
    end_step=-1,
    frequency=100,
    initial_sparsity=0.0,
    skip_unsupported=False,
):
    """`prune_low_magnitude` on a Sequential or functional student, before distillation.

    Args:
        target_sparsity: final share of zero weights in each pruned kernel, in [0, 1).
        schedule: `"constant"` (ConstantSparsity) or `"polynomial"` (PolynomialDecay from
            `initial_sparsity`, which needs `end_step`).
        skip_unsupported: leave layers TF-MOT cannot wrap unpruned instead of failing.

    Raises:
        ValueError: a sparsity outside [0, 1), an unknown schedule, or (without
            `skip_unsupported`) a layer TF-MOT cannot wrap, named with its type.
    """
    tfmot = load_tfmot("Pruning with TF-MOT")
    target_sparsity = validate_sparsity(target_sparsity, "target_sparsity")
    sparsity = tfmot.sparsity.keras
    if schedule == "constant":
        pruning_schedule = sparsity.ConstantSparsity(target_sparsity, begin_step, end_step, frequency)
    elif schedule == "polynomial":
        if end_step < 0:
            raise ValueError("The polynomial schedule needs `end_step` (the step where sparsity reaches its target).")
        pruning_schedule = sparsity.PolynomialDecay(
            validate_sparsity(initial_sparsity, "initial_sparsity"),
            target_sparsity,
            begin_step,
            end_step,
            frequency=frequency,
        )
    else:
        raise ValueError(f"`schedule` must be 'constant' or 'polynomial'; received {schedule!r}.")
    unsupported = {name for name, _ in unsupported_layers(model)}
    weighted_unsupported = [
        (layer.name, type(layer).__name__) for layer in model.layers if layer.name in unsupported and layer.weights
    ]
    if weighted_unsupported and not skip_unsupported:
        raise ValueError(
            f"TF-MOT cannot prune these layers: {weighted_unsupported} (its registry has no rule for "
            "which of their weights to prune). Pass skip_unsupported=True to leave them unpruned."
        )

    def wrap(layer):
        if layer.name in unsupported:
            return layer
        return sparsity.prune_low_magnitude(layer, pruning_schedule=pruning_schedule)

    return keras.models.clone_model(model, clone_function=wrap)


def pruning_callbacks(log_dir=None):
    """The callbacks pruning needs in `fit` (the step counter; summaries when `log_dir` is given)."""
    tfmot = load_tfmot("Pruning with TF-MOT")
    callbacks = [tfmot.sparsity.keras.UpdatePruningStep()]
    if log_dir:
        callbacks.append(tfmot.sparsity.keras.PruningSummaries(log_dir=log_dir))
    return callbacks
