"""Quantization-aware training with TF-MOT: plain QAT, or preserving sparsity (PQAT) or clusters (CQAT)."""

from keras_kd.compression.tfmot.loader import load_tfmot


def quantize(model, preserve=None):
    """Quantization-aware training wrappers (int8 fake-quantization) on the student.

    Args:
        preserve: `None` (plain QAT), `"sparsity"` (PQAT: keeps a pruned model's zeros) or
            `"clusters"` (CQAT: keeps a clustered model's centroids). Strip pruning or
            clustering wrappers first.
    """
    tfmot = load_tfmot("Quantization-aware training with TF-MOT")
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
