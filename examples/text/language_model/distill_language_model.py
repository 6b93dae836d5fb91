"""A character-level GPT-2-style language model distilled into one at least 8x smaller.

What it shows: token-level distillation of a keras-hub causal language model (`GPT2Backbone` +
its tied LM head, built from a configuration here: no download) with `keras_kd.Distiller`.
The teacher is trained on the movie-review sentences of rt-polarity; the student is trained on
only a part of them (`--student_sentences`), the regime where distillation pays for language
models: the teacher has seen more text than the student's distillation set, as a pre-trained
teacher always has. Three students start from the same initial weights, with the same data,
optimizer and number of steps: from labels (next-token cross-entropy), distilled with forward
KL, and distilled with GKD's generalized Jensen-Shannon divergence (beta 0.5). Each is scored by
its bits per token on held-out sentences (lower is better); samples of each are printed.
By default every student gets the same search of its own: three peak learning rates
(`--learning_rate_grid`), each student keeping the one best on 1,000 validation sentences that no
student trains on (`--validation_sentences`; held-out test sentences choose nothing); alpha 0.1;
batch 32. The distilled students learn from a top-16 teacher cache that keeps the teacher's mass
outside its top 16 as one class (`--top_k_tail=bucket`). `--learning_rate_grid= --validation_sentences=0`
trains once at `--learning_rate`.

Inputs are what a keras-hub preprocessor returns: `{"token_ids", "padding_mask"}`, the labels
the next tokens, the padding as `sample_weight`; every loss averages over real tokens only.

Data: rt-polarity from `--data_dir`, $KERAS_KD_DATA_DIR or `../shared/data/rt-polarity`, split
by `keras_kd.datasets.rt_polarity.load_data` (10 % held out, seed 0).

    KERAS_BACKEND=jax python examples/text/language_model/distill_language_model.py
    KERAS_BACKEND=jax python examples/text/language_model/distill_language_model.py --seeds=0,1,2 \
        --learning_rate_grid=7.5e-4,1.5e-3,3e-3 --alpha_grid=0.5,0.1 --results=lm.json

Results of the default run are in README.md beside this file (generated from
benchmarks/results/language_model_example.json by benchmarks/make_docs.py).
"""

import json
import math
import os
import time

import numpy as np
from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("data_dir", None, "Folder with rt-polarity.pos and .neg (default: the shared data folder).")
flags.DEFINE_integer("max_length", 64, "Characters per sentence, with the start token (longer ones are cut).")
flags.DEFINE_integer("teacher_layers", 2, "Teacher transformer layers.")
flags.DEFINE_integer("teacher_width", 128, "Teacher hidden width.")
flags.DEFINE_integer("teacher_epochs", 6, "Teacher epochs on every training sentence.")
flags.DEFINE_integer("student_layers", 1, "Student transformer layers.")
flags.DEFINE_integer("student_width", 32, "Student hidden width.")
flags.DEFINE_integer("student_sentences", 2400, "Training sentences the students see (0: all of them).")
flags.DEFINE_integer("student_epochs", 12, "Student epochs (the same for every student).")
flags.DEFINE_integer("batch_size", 32, "Students' batch size (32: twice the steps of 64 for the same epochs).")
flags.DEFINE_integer("teacher_batch_size", 64, "Teacher's batch size.")
flags.DEFINE_float("teacher_learning_rate", 1.5e-3, "Teacher's peak learning rate (cosine decay to 0).")
flags.DEFINE_float("dropout", 0.1, "Dropout of every model (keras-hub's GPT-2 default; 0 lets them memorise).")
flags.DEFINE_float(
    "learning_rate", 1.5e-3, "Peak learning rate (cosine decay to 0); the benchmark's choice on validation."
)
flags.DEFINE_list(
    "method_learning_rates",
    [],
    "Per-student peak learning rates, `method:rate` (e.g. labels:1e-2,forward_kl:3e-3); others use --learning_rate.",
)
flags.DEFINE_list("method_alphas", [], "Per-student alphas, `method:alpha` (distilled students); others use --alpha.")
flags.DEFINE_list(
    "learning_rate_grid",
    ["1.5e-3", "3e-3", "6e-3"],
    "Peak rates each student tries on the first seed (needs --validation_sentences); the best on validation is "
    "kept for every seed, so each student gets its own best settings.",
)
flags.DEFINE_list("alpha_grid", [], "Alphas each distilled student tries with each rate of --learning_rate_grid.")
flags.DEFINE_integer(
    "validation_sentences",
    1000,
    "Training sentences kept from every student (the last ones; the teacher saw them) to score settings on: "
    "settings are chosen on these, never on the held-out test sentences.",
)
flags.DEFINE_float(
    "alpha", 0.1, "Weight of the label loss in the distilled students; the benchmark's choice on validation."
)
flags.DEFINE_float("temperature", 1.0, "Temperature of the distillation losses.")
flags.DEFINE_list(
    "methods",
    ["labels", "forward_kl", "generalized_jsd"],
    "Students to train: labels, a distillation loss's name, or gkd_step / gkd_epoch: GKD's JSD on on-policy "
    "data, the student writing --student_fraction of the sentences from their first --prompt_length tokens in "
    "every step (keras_kd.OnPolicy) or once an epoch (OnPolicySequences), scored by the live teacher.",
)
flags.DEFINE_float("student_fraction", 0.5, "Share of the sentences the on-policy students write (GKD's lmbda).")
flags.DEFINE_integer("prompt_length", 16, "Tokens of each sentence the on-policy students continue from.")
flags.DEFINE_list("seeds", ["0"], "Seeds (each: new student initial weights, shared by the methods).")
flags.DEFINE_integer(
    "top_k", 16, "Distil from a TopKTeacherCache of the teacher's top k tokens per position (0: run the teacher live)."
)
flags.DEFINE_enum(
    "top_k_tail",
    "bucket",
    ["spread", "bucket"],
    "The teacher's mass outside its top k: spread evenly over the other tokens, or kept as one class.",
)
flags.DEFINE_integer(
    "student_vocabulary",
    0,
    "Give the student a vocabulary of its own: the N most frequent characters in alphabetical order (others "
    "unknown), where the teacher keeps every character by frequency; distil it with --methods=labels,uld "
    "(0: the teacher's vocabulary).",
)
flags.DEFINE_string(
    "teacher_file", None, "Teacher weights (.weights.h5): loaded if the file exists, else written after training."
)
flags.DEFINE_string(
    "export_dir", None, "TF Serving base path: the first seed's last distilled student as a next-token SavedModel."
)
flags.DEFINE_string("results", None, "Optional JSON file for the figures.")

PAD, BOUNDARY, UNKNOWN = 0, 1, 2  # padding, start/end of a sentence, a character not in the vocabulary


def check_environment():
    """Stop before any work, saying what to install, when the backend or keras-hub is missing (the
    README's plain install has neither JAX nor the text extra)."""
    import importlib.util

    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    needed = (("text", "keras_hub"), (backend, backend))
    extras = [extra for extra, module in needed if importlib.util.find_spec(module) is None]
    if extras:
        raise SystemExit(
            f'This example needs {" and ".join(extras)} (missing here): pip install -e ".[{",".join(extras)}]" '
            "from the repository's root, then run it again."
        )


def load_sentences(data_dir):
    """The movie-review sentences: from `data_dir`, $KERAS_KD_DATA_DIR or ../shared/data, else
    downloaded from Cornell (Pang and Lee's page); no copy and no network stops with where to put them."""
    from keras_kd.datasets import rt_polarity

    folder = data_dir or os.environ.get("KERAS_KD_DATA_DIR")
    if folder and os.path.isdir(os.path.join(folder, "rt-polarity")):
        folder = os.path.join(folder, "rt-polarity")
    if folder is None:
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
        folder = os.path.join(root, "..", "shared", "data", "rt-polarity")
    try:
        (train, _), (test, _) = rt_polarity.load_data(folder, download=True)
    except OSError as error:  # no local copy, and the download failed (no network)
        raise SystemExit(
            f"No copy of the movie-review sentences was found near {folder}, and their download from "
            f"{rt_polarity.URL} failed ({error}): put {' and '.join(rt_polarity.FILES)} in a folder and pass "
            "--data_dir=FOLDER."
        ) from error
    return [str(s) for s in train], [str(s) for s in test]


def vocabulary(sentences):
    """Characters by frequency after the three special tokens; a tiny vocabulary built here."""
    counts = {}
    for sentence in sentences:
        for char in sentence:
            counts[char] = counts.get(char, 0) + 1
    chars = sorted(counts, key=lambda c: (-counts[c], c))
    return {char: index + 3 for index, char in enumerate(chars)}


def own_vocabulary(vocab, size):
    """The student's vocabulary of another tokenizer: `vocab`'s `size` most frequent characters,
    numbered in alphabetical order (other ids than the teacher's, and fewer of them)."""
    kept = sorted(sorted(vocab, key=vocab.get)[:size])
    return {char: index + 3 for index, char in enumerate(kept)}


def encode(sentences, vocab, max_length):
    """`(x, y, sample_weight)`: what a keras-hub CausalLM preprocessor returns for these sentences."""
    ids = np.zeros((len(sentences), max_length + 1), "int32")
    for row, sentence in enumerate(sentences):
        tokens = [BOUNDARY] + [vocab.get(c, UNKNOWN) for c in sentence] + [BOUNDARY]
        tokens = tokens[: max_length + 1]
        ids[row, : len(tokens)] = tokens
    padding = (ids != PAD).astype("int32")
    x = {"token_ids": ids[:, :-1], "padding_mask": padding[:, :-1]}
    return x, ids[:, 1:], padding[:, 1:].astype("float32")


def causal_lm(vocabulary_size, layers, width, max_length):
    import keras_hub

    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=vocabulary_size,
        num_layers=layers,
        num_heads=max(1, width // 32),
        hidden_dim=width,
        intermediate_dim=4 * width,
        dropout=FLAGS.dropout,
        max_sequence_length=max_length,
    )
    return keras_hub.models.GPT2CausalLM(backbone=backbone, preprocessor=None)


def plain(model):
    """The same layers as a plain functional model: keras-hub's `fit` would route arrays through tf.data."""
    import keras

    return keras.Model(model.input, model.output)


def given_settings():
    """{method: (peak learning rate, alpha)} from --method_learning_rates, --method_alphas and their defaults."""
    chosen = {}
    for name, items in (("method_learning_rates", FLAGS.method_learning_rates), ("method_alphas", FLAGS.method_alphas)):
        values = dict(item.split(":", 1) for item in items)
        unknown = set(values) - set(FLAGS.methods)
        if unknown:
            raise ValueError(f"--{name} names {sorted(unknown)}, not in --methods {FLAGS.methods}")
        chosen[name] = values
    return {
        method: (
            float(chosen["method_learning_rates"].get(method, FLAGS.learning_rate)),
            None if method == "labels" else float(chosen["method_alphas"].get(method, FLAGS.alpha)),
        )
        for method in FLAGS.methods
    }


def candidates(method):
    """The (rate, alpha) pairs a student tries when tuning: alphas only for distilled students."""
    alphas = [None] if method == "labels" else [float(a) for a in FLAGS.alpha_grid or [FLAGS.alpha]]
    return [(float(rate), alpha) for rate in FLAGS.learning_rate_grid for alpha in alphas]


def describe(rate, alpha):
    return f"rate {rate:g}" + ("" if alpha is None else f", alpha {alpha:g}")


def optimizer(steps, rate):
    import keras

    schedule = keras.optimizers.schedules.CosineDecay(rate, decay_steps=max(1, steps))
    return keras.optimizers.AdamW(schedule, weight_decay=0.01)


def EpochTimer():
    """A callback timing each epoch; `median()` leaves out the first epoch's tracing when there are more."""
    import keras

    class Timer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seconds = []

        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self.start)

        def median(self):
            return float(np.median(self.seconds[1:] or self.seconds))

    return Timer()


def export(student):
    """The student as a SavedModel with the next-token signature (TensorFlow backend), for TF Serving."""
    import keras

    from keras_kd.compression import export_saved_model

    if keras.backend.backend() != "tensorflow":
        print("--export_dir: SavedModels are written on the TensorFlow backend (KERAS_BACKEND=tensorflow); skipped")
        return None
    path = export_saved_model(student, FLAGS.export_dir, "language_model", signature="next_token")
    print(f"next-token SavedModel written to {path}")
    return path


def from_labels(model, steps, rate):
    """`model` as a plain functional model compiled for next-token cross-entropy over the real tokens."""
    import keras

    trainer = plain(model)
    trainer.compile(
        optimizer=optimizer(steps, rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        weighted_metrics=[],
    )
    return trainer


ON_POLICY = {"gkd_step": "step", "gkd_epoch": "epoch"}  # GKD on the student's own text: when it writes


def distiller(student, teacher, method, steps, rate, alpha, seed=0):
    import keras_kd

    on_policy = None
    if ON_POLICY.get(method) == "step":
        on_policy = keras_kd.OnPolicy(FLAGS.student_fraction, FLAGS.prompt_length, sampler="top_k", seed=seed)
    model = keras_kd.Distiller(student=student, teacher=teacher)
    model.compile(
        optimizer=optimizer(steps, rate),
        distillation_loss_fn="generalized_jsd" if method in ON_POLICY else method,
        alpha=alpha,
        temperature=FLAGS.temperature,
        on_policy=on_policy,
    )
    return model


def training_data(method, student, x, y, weight, cache, seed):
    """`(fit's data arguments, its keyword arguments)` for one student."""
    if ON_POLICY.get(method) == "epoch":
        from keras_kd.data.sequence_level import OnPolicySequences

        data = OnPolicySequences(
            x, y, weight, student, FLAGS.prompt_length, FLAGS.student_fraction, "top_k", FLAGS.batch_size, seed
        )
        return (data,), {}
    keywords = {"sample_weight": weight, "batch_size": FLAGS.batch_size}
    if method != "labels" and method not in ON_POLICY and cache is not None:
        keywords["teacher_cache"] = cache
    return (x, y), keywords


def bits_per_token(model, x, y, weight, batch_size=256):
    """Mean next-token cross-entropy over the real held-out tokens, in bits."""
    from scipy.special import log_softmax

    total, count = 0.0, 0.0
    for start in range(0, len(y), batch_size):
        part = {key: value[start : start + batch_size] for key, value in x.items()}
        logits = np.asarray(model.predict_on_batch(part), np.float64)
        log_p = log_softmax(logits, axis=-1)
        picked = np.take_along_axis(log_p, y[start : start + batch_size, :, None].astype("int64"), axis=-1)[..., 0]
        w = weight[start : start + batch_size]
        total += float(-(picked * w).sum())
        count += float(w.sum())
    return total / count / math.log(2)


def sample(model, inverse, prompt, vocab, length=60, seed=0, temperature=0.8):
    """A continuation of `prompt`, sampled token by token at `temperature`."""
    rng = np.random.default_rng(seed)
    tokens = [BOUNDARY] + [vocab.get(c, UNKNOWN) for c in prompt]
    width = model.backbone.max_sequence_length
    while len(tokens) < min(width, len(prompt) + 1 + length):
        ids = np.zeros((1, width), "int32")
        ids[0, : len(tokens)] = tokens
        logits = np.asarray(model.predict_on_batch({"token_ids": ids, "padding_mask": (ids != PAD).astype("int32")}))
        scaled = logits[0, len(tokens) - 1].astype(np.float64) / temperature
        probs = np.exp(scaled - scaled.max())
        token = int(rng.choice(len(probs), p=probs / probs.sum()))
        if token == BOUNDARY:
            break
        tokens.append(token)
    return prompt + "".join(inverse.get(t, "?") for t in tokens[len(prompt) + 1 :])


def parameters(model):
    return int(sum(np.prod(w.shape) for w in model.weights))


def main(_):
    check_environment()  # before Keras loads its backend
    import keras

    import keras_kd

    started = time.time()
    train_text, test_text = load_sentences(FLAGS.data_dir)
    teacher_vocab = vocabulary(train_text)
    teacher_size = len(teacher_vocab) + 3
    teacher_x_train = encode(train_text, teacher_vocab, FLAGS.max_length)
    teacher_x_test = encode(test_text, teacher_vocab, FLAGS.max_length)
    vocab = own_vocabulary(teacher_vocab, FLAGS.student_vocabulary) if FLAGS.student_vocabulary else teacher_vocab
    inverse = {index: char for char, index in vocab.items()}
    size = len(vocab) + 3
    x_train, y_train, w_train = encode(train_text, vocab, FLAGS.max_length)
    x_test, y_test, w_test = encode(test_text, vocab, FLAGS.max_length)
    if FLAGS.learning_rate_grid and not FLAGS.validation_sentences:
        raise ValueError("--learning_rate_grid needs --validation_sentences: rates are chosen on validation")
    settings = given_settings()  # a bad --method_learning_rates or --method_alphas fails here, before training
    token_level = [method for method in FLAGS.methods if method not in ("labels", "uld")]
    if FLAGS.student_vocabulary and token_level:
        raise ValueError(
            f"--student_vocabulary gives the student other token ids than the teacher's: {token_level} compare "
            "them token by token; distil it with --methods=labels,uld"
        )
    pool = len(train_text) - FLAGS.validation_sentences  # the students draw from the first `pool` sentences
    count = FLAGS.student_sentences or pool
    if count > pool:
        raise ValueError(
            f"--student_sentences={count} and --validation_sentences={FLAGS.validation_sentences} overlap: "
            f"there are {len(train_text)} training sentences"
        )
    x_small = {key: value[:count] for key, value in x_train.items()}
    y_small, w_small = y_train[:count], w_train[:count]
    own_inputs = bool(FLAGS.student_vocabulary)  # the distilled students read both tokenizations
    distill_x = x_small
    if own_inputs:
        distill_x = {
            "student_inputs": x_small,
            "teacher_inputs": {key: value[:count] for key, value in teacher_x_train[0].items()},
        }
    x_val = {key: value[pool:] for key, value in x_train.items()}
    y_val, w_val = y_train[pool:], w_train[pool:]
    print(
        f"{keras_kd.ENGINE_DESCRIPTION}; vocabulary {size} tokens"
        + (f" (the teacher's: {teacher_size})" if own_inputs else "")
        + f"; {len(train_text)} training sentences "
        f"({count} for the students, {FLAGS.validation_sentences} for validation), {len(test_text)} held out; "
        f"{int(w_test.sum())} held-out tokens"
    )

    keras.utils.set_random_seed(1000)
    teacher = causal_lm(teacher_size, FLAGS.teacher_layers, FLAGS.teacher_width, FLAGS.max_length)
    steps = FLAGS.teacher_epochs * math.ceil(len(train_text) / FLAGS.teacher_batch_size)
    trainer = from_labels(teacher, steps, FLAGS.teacher_learning_rate)
    tick = time.time()
    if FLAGS.teacher_file and os.path.exists(FLAGS.teacher_file):
        teacher.load_weights(FLAGS.teacher_file)  # the same settings trained it (the benchmark's two regimes)
        print(f"teacher loaded from {FLAGS.teacher_file}")
    else:
        trainer.fit(
            *teacher_x_train[:2],
            sample_weight=teacher_x_train[2],
            epochs=FLAGS.teacher_epochs,
            batch_size=FLAGS.teacher_batch_size,
            verbose=2,
        )
        if FLAGS.teacher_file:
            teacher.save_weights(FLAGS.teacher_file)
    teacher_seconds = time.time() - tick
    results = {
        "engine": keras_kd.ENGINE_DESCRIPTION,
        "vocabulary": size,
        "teacher_vocabulary": teacher_size,
        "max_length": FLAGS.max_length,
        "batch_size": FLAGS.batch_size,
        "train_sentences": len(train_text),
        "student_sentences": count,
        "test_sentences": len(test_text),
        "test_tokens": int(w_test.sum()),
        "validation_sentences": FLAGS.validation_sentences,
        "temperature": FLAGS.temperature,
        "teacher": {
            "layers": FLAGS.teacher_layers,
            "width": FLAGS.teacher_width,
            "epochs": FLAGS.teacher_epochs,
            "batch_size": FLAGS.teacher_batch_size,
            "learning_rate": FLAGS.teacher_learning_rate,
            "parameters": parameters(teacher),
            "bits_per_token": bits_per_token(teacher, *teacher_x_test),
            "train_seconds": round(teacher_seconds, 1),
        },
        "student": {"layers": FLAGS.student_layers, "width": FLAGS.student_width, "epochs": FLAGS.student_epochs},
        "runs": {},
        "samples": {},
    }
    print(
        f"teacher: {results['teacher']['parameters']:,} parameters, "
        f"{results['teacher']['bits_per_token']:.3f} bits per token held out"
    )
    prompts = ["the movie ", "a film that "]
    teacher_inverse = {index: char for char, index in teacher_vocab.items()}
    results["samples"]["teacher"] = [sample(teacher, teacher_inverse, p, teacher_vocab) for p in prompts]
    cache = None
    if FLAGS.top_k and own_inputs:
        print("--student_vocabulary: the teacher runs on every step (a top-k cache takes one tokenization)")
    elif FLAGS.top_k and any(method != "labels" and method not in ON_POLICY for method in FLAGS.methods):
        tick = time.time()
        cache = keras_kd.TopKTeacherCache.build(teacher, x_small, top_k=FLAGS.top_k, tail=FLAGS.top_k_tail)
        results["top_k_cache"] = {
            "top_k": FLAGS.top_k,
            "tail": cache.tail,
            "dropped_mass": cache.dropped_mass,
            "kl_to_full_nats": cache.kl_to_full,
            "megabytes": cache.nbytes / 1e6,
            "full_logits_megabytes": cache.full_logits_nbytes / 1e6,
            "build_seconds": round(time.time() - tick, 1),
        }
        print(
            f"top-{FLAGS.top_k} teacher cache: {cache.nbytes / 1e6:.1f} MB against "
            f"{cache.full_logits_nbytes / 1e6:.1f} MB of full logits; "
            f"{100 * cache.dropped_mass:.2f} % of the mass outside the top k, "
            f"KL to the full distribution {cache.kl_to_full:.4f} nats per token"
        )

    steps_per_epoch = math.ceil(count / FLAGS.batch_size)
    student_steps = FLAGS.student_epochs * steps_per_epoch

    def train_student(method, rate, alpha, initial_weights, seed):
        """One student from `initial_weights`, trained by `method` at peak rate `rate`, and its figures."""
        keras.utils.set_random_seed(int(seed))
        student = causal_lm(size, FLAGS.student_layers, FLAGS.student_width, FLAGS.max_length)
        student.set_weights(initial_weights)
        if method == "labels":
            model = from_labels(student, student_steps, rate)
        else:
            model = distiller(student, teacher, method, student_steps, rate, alpha, int(seed))
        data, keywords = training_data(
            method, student, x_small if method == "labels" else distill_x, y_small, w_small, cache, int(seed)
        )
        tick, timer = time.time(), EpochTimer()
        model.fit(*data, epochs=FLAGS.student_epochs, verbose=0, callbacks=[timer], **keywords)
        seconds = time.time() - tick
        entry = {
            "bits_per_token": bits_per_token(student, x_test, y_test, w_test),
            "seconds_per_step": timer.median() / steps_per_epoch,
            "learning_rate": rate,
            "alpha": alpha,
        }
        validation = ""
        if FLAGS.validation_sentences:
            entry["validation_bits_per_token"] = bits_per_token(student, x_val, y_val, w_val)
            validation = f", {entry['validation_bits_per_token']:.3f} on validation"
        print(
            f"seed {seed} {method} ({describe(rate, alpha)}): {entry['bits_per_token']:.3f} bits per token "
            f"held out{validation} ({seconds:.0f} s)",
            flush=True,
        )
        return student, entry

    if FLAGS.learning_rate_grid:
        results["tuning"] = {method: {} for method in FLAGS.methods}
    for seed in FLAGS.seeds:
        keras.utils.set_random_seed(int(seed))
        initial = causal_lm(size, FLAGS.student_layers, FLAGS.student_width, FLAGS.max_length)
        initial_weights = initial.get_weights()
        results["student"]["parameters"] = parameters(initial)
        run = {}
        for method in FLAGS.methods:
            if FLAGS.learning_rate_grid and seed == FLAGS.seeds[0]:
                # The first seed tries every setting; the one best on validation is kept, for every seed.
                tried = {pair: train_student(method, *pair, initial_weights, seed) for pair in candidates(method)}
                for pair, (_, entry) in tried.items():
                    results["tuning"][method][describe(*pair)] = entry["validation_bits_per_token"]
                settings[method] = min(tried, key=lambda pair: tried[pair][1]["validation_bits_per_token"])
                student, run[method] = tried[settings[method]]
                print(f"{method}: {describe(*settings[method])} chosen on validation", flush=True)
            else:
                student, run[method] = train_student(method, *settings[method], initial_weights, seed)
            if seed == FLAGS.seeds[0]:
                results["samples"][f"student_{method}"] = [sample(student, inverse, p, vocab) for p in prompts]
                if FLAGS.export_dir and method == FLAGS.methods[-1]:
                    results["saved_model"] = export(student)
        results["runs"][seed] = run
    results["learning_rates"] = {method: settings[method][0] for method in FLAGS.methods}
    results["alphas"] = {method: settings[method][1] for method in FLAGS.methods if method != "labels"}
    distilled = [method for method in FLAGS.methods if method not in ("labels", *ON_POLICY)]
    if cache is not None and distilled:  # what the cache saves: one epoch with the teacher run live, same student
        student = causal_lm(size, FLAGS.student_layers, FLAGS.student_width, FLAGS.max_length)
        model = distiller(student, teacher, distilled[-1], student_steps, *settings[distilled[-1]])
        timer = EpochTimer()
        model.fit(
            distill_x,
            y_small,
            sample_weight=w_small,
            epochs=2,
            batch_size=FLAGS.batch_size,
            verbose=0,
            callbacks=[timer],
        )
        results["live_teacher_seconds_per_step"] = timer.median() / steps_per_epoch

    summary = {}
    for method in FLAGS.methods:
        values = [results["runs"][seed][method]["bits_per_token"] for seed in FLAGS.seeds]
        spread = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0  # the sample std, as every table
        summary[method] = {"mean": float(np.mean(values)), "std": spread, "per_seed": values}
    if "labels" in summary:
        base = summary["labels"]
        for method in summary:
            per_seed = [d / b - 1 for d, b in zip(summary[method]["per_seed"], base["per_seed"])]
            summary[method]["change_vs_labels_percent"] = 100 * (summary[method]["mean"] / base["mean"] - 1)
            summary[method]["lower_on_every_seed"] = all(p < 0 for p in per_seed)
    results["summary"] = summary
    results["student"]["size_ratio"] = results["teacher"]["parameters"] / results["student"]["parameters"]
    results["wall_seconds"] = round(time.time() - started, 1)

    print(
        f"\nstudent: {results['student']['parameters']:,} parameters "
        f"({results['student']['size_ratio']:.1f}x smaller than the teacher)"
    )
    print("| student | held-out bits per token, mean ± std | vs labels |")
    print("|---|---:|---:|")
    for method, row in summary.items():
        change = row.get("change_vs_labels_percent")
        print(
            f"| {method} | {row['mean']:.3f} ± {row['std']:.3f} | "
            + ("" if change is None else f"{change:+.1f} %")
            + " |"
        )
    for name, texts in results["samples"].items():
        print(f"{name}: " + " / ".join(repr(t) for t in texts))
    if FLAGS.results:
        os.makedirs(os.path.dirname(os.path.abspath(FLAGS.results)), exist_ok=True)
        with open(FLAGS.results, "w") as handle:
            json.dump(results, handle, indent=2)
    print(f"wall time {results['wall_seconds']:.0f} s")


if __name__ == "__main__":
    app.run(main)
