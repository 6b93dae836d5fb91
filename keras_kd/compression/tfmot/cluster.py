"""Weight clustering with TF-MOT, and stripping the pruning and clustering wrappers for export."""

from keras_kd.compression.tfmot.loader import load_tfmot


def cluster(model, number_of_clusters, init="kmeans_plus_plus", preserve_sparsity=False):
    """`cluster_weights` on the student: each kernel keeps `number_of_clusters` distinct values.

    `preserve_sparsity=True` keeps a pruned model's zeros (TF-MOT's sparsity-preserving clustering).
    """
    tfmot = load_tfmot("Weight clustering with TF-MOT")
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


def strip(model):
    """The model without pruning and clustering wrappers, ready for export."""
    tfmot = load_tfmot("Stripping TF-MOT wrappers")
    model = tfmot.sparsity.keras.strip_pruning(model)
    return tfmot.clustering.keras.strip_clustering(model)
