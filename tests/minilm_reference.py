"""all-MiniLM-L6-v2's sentence embedding by an independent path: BERT's forward pass written in
NumPy (float64) from the Hugging Face weights file, with the exact erf GELU its config names, then
mean pooling over the real tokens (the sentence-transformers recipe of this model).

keras-hub loads the same file through its own converter and computes in float32 with the tanh
approximation of GELU, so the two agree to a few 1e-4, not bit for bit.
"""

import json
import os

import numpy as np
from scipy.special import erf


def _layer_norm(x, weights, name, eps):
    weight, bias = weights[f"{name}.weight"], weights[f"{name}.bias"]
    mean = x.mean(-1, keepdims=True)
    variance = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(variance + eps) * weight + bias


def _dense(x, weights, name):
    return x @ weights[f"{name}.weight"].T + weights[f"{name}.bias"]  # PyTorch's Linear: (out, in)


def pooled_embeddings(folder, token_ids, padding_mask):
    """`(sentences, hidden)`: the mean over real tokens of the last hidden states (not normalised)."""
    from safetensors.numpy import load_file

    with open(os.path.join(folder, "config.json")) as handle:
        config = json.load(handle)
    weights = {
        name: value.astype(np.float64) for name, value in load_file(os.path.join(folder, "model.safetensors")).items()
    }
    heads, eps = config["num_attention_heads"], config["layer_norm_eps"]
    token_ids, mask = np.asarray(token_ids), np.asarray(padding_mask, np.float64)
    batch, length = token_ids.shape
    x = (
        weights["embeddings.word_embeddings.weight"][token_ids]
        + weights["embeddings.position_embeddings.weight"][np.arange(length)][None]
        + weights["embeddings.token_type_embeddings.weight"][0]
    )
    x = _layer_norm(x, weights, "embeddings.LayerNorm", eps)
    size = x.shape[-1] // heads
    blocked = (1.0 - mask)[:, None, None, :] * -1e9  # padding keys get no attention

    def split(t):
        return t.reshape(batch, length, heads, size).transpose(0, 2, 1, 3)

    for i in range(config["num_hidden_layers"]):
        prefix = f"encoder.layer.{i}"
        q, k, v = (split(_dense(x, weights, f"{prefix}.attention.self.{n}")) for n in ("query", "key", "value"))
        scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(size) + blocked
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        context = (scores / scores.sum(-1, keepdims=True)) @ v
        context = context.transpose(0, 2, 1, 3).reshape(batch, length, heads * size)
        attended = _dense(context, weights, f"{prefix}.attention.output.dense") + x
        x = _layer_norm(attended, weights, f"{prefix}.attention.output.LayerNorm", eps)
        hidden = _dense(x, weights, f"{prefix}.intermediate.dense")
        hidden = 0.5 * hidden * (1.0 + erf(hidden / np.sqrt(2.0)))  # GELU, exact
        out = _dense(hidden, weights, f"{prefix}.output.dense") + x
        x = _layer_norm(out, weights, f"{prefix}.output.LayerNorm", eps)
    return (x * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
