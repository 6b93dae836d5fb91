"""TensorFlow Model Optimization on the tf_keras engine: pruning, QAT, clustering, stripping.

TF-MOT only accepts tf_keras (Keras 2) models, and importing it sets TF_USE_LEGACY_KERAS=1
in the process as a side effect; so it is imported here lazily, and only once the tf_keras
engine is known to be active. On Keras 3 each function raises a RuntimeError that says how
to switch (or use `MagnitudePruning` and `quantize_post_training`, which need no TF-MOT).
"""

from keras_kd.backend import assert_tf_keras, keras
from keras_kd.compression.pruning_schedules import validate_sparsity


def _tfmot(feature):
    assert_tf_keras(feature)
    import tensorflow_model_optimization as tfmot

    return tfmot


def unsupported_layers(model):
    """Names and types of the layers TF-MOT's pruning registry cannot wrap."""
    tfmot = _tfmot("Pruning with TF-MOT")
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
    tfmot = _tfmot("Pruning with TF-MOT")
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
    tfmot = _tfmot("Pruning with TF-MOT")
    callbacks = [tfmot.sparsity.keras.UpdatePruningStep()]
    if log_dir:
        callbacks.append(tfmot.sparsity.keras.PruningSummaries(log_dir=log_dir))
    return callbacks


def cluster(model, number_of_clusters, init="kmeans_plus_plus", preserve_sparsity=False):
    """`cluster_weights` on the student: each kernel keeps `number_of_clusters` distinct values.

    `preserve_sparsity=True` keeps a pruned model's zeros (TF-MOT's sparsity-preserving clustering).
    """
    tfmot = _tfmot("Weight clustering with TF-MOT")
    if int(number_of_clusters) < 2:
        raise ValueError(f"`number_of_clusters` must be >= 2; received {number_of_clusters!r}.")
    centroids = getattr(tfmot.clustering.keras.CentroidInitialization, init.upper(), None)
    if centroids is None:
        raise ValueError(f"Unknown centroid initialization {init!r}; try 'kmeans_plus_plus' or 'linear'.")
    return tfmot.clustering.keras.cluster_weights(
        model,
        number_of_clusters=int(number_of_clusters),
        cluster_centroids_init=centroids,
        preserve_sparsity=preserve_sparsity,
    )


def quantize(model, preserve=None):
    """Quantization-aware training wrappers (int8 fake-quantization) on the student.

    Args:
        preserve: `None` (plain QAT), `"sparsity"` (PQAT: keeps a pruned model's zeros) or
            `"clusters"` (CQAT: keeps a clustered model's centroids). Strip pruning or
            clustering wrappers first.
    """
    tfmot = _tfmot("Quantization-aware training with TF-MOT")
    quantization = tfmot.quantization.keras
    if preserve is None:
        return quantization.quantize_model(model)
    schemes = {
        "sparsity": tfmot.experimental.combine.Default8BitPrunePreserveQuantizeScheme,
        "clusters": tfmot.experimental.combine.Default8BitClusterPreserveQuantizeScheme,
    }
    if preserve not in schemes:
        raise ValueError(f"`preserve` must be None, 'sparsity' or 'clusters'; received {preserve!r}.")
    return quantization.quantize_apply(quantization.quantize_annotate_model(model), schemes[preserve]())


def strip(model):
    """The model without pruning and clustering wrappers, ready for export."""
    tfmot = _tfmot("Stripping TF-MOT wrappers")
    model = tfmot.sparsity.keras.strip_pruning(model)
    return tfmot.clustering.keras.strip_clustering(model)
