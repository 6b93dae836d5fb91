"""Does the input pipeline starve the step? The Keras profiler (TensorBoard callback) on a distillation run.

Trains the Fashion-MNIST preset student from its teacher on `keras_kd.data.pipeline.make_dataset`
(arrays to shuffled, batched, prefetched tf.data, a RandomFlip augmentation on tf.data's threads)
with a Keras callback that starts and stops TensorFlow's profiler around some batches (the calls
`keras.callbacks.TensorBoard(profile_batch=...)` makes; that callback also needs the tensorboard
package for its summaries), then reads the trace (XPlane) and reports how long the step waited
for its next batch (`IteratorGetNext`) against the step time:

    KERAS_BACKEND=tensorflow python benchmarks/pipeline_profile.py

TensorFlow backend only (the profiler traces TensorFlow's runtime). Prints one JSON line.
"""

import collections
import glob
import json
import os
import sys
import tempfile

import keras

import keras_kd
from keras_kd.data.pipeline import make_dataset


def xplane_totals(folder):
    """Total duration (ms) and count of every event name on the host planes of the trace in `folder`."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    totals, counts = collections.Counter(), collections.Counter()
    for path in glob.glob(os.path.join(folder, "**", "*.xplane.pb"), recursive=True):
        space = xplane_pb2.XSpace()
        with open(path, "rb") as handle:
            space.ParseFromString(handle.read())
        for plane in space.planes:
            names = {key: meta.name for key, meta in plane.event_metadata.items()}
            for line in plane.lines:
                for event in line.events:
                    name = names.get(event.metadata_id, "")
                    totals[name] += event.duration_ps / 1e9
                    counts[name] += 1
    return totals, counts


class ProfileBatches(keras.callbacks.Callback):
    """TensorFlow's profiler on from the start of batch `first` to the end of batch `last`."""

    def __init__(self, folder, first, last):
        super().__init__()
        self.folder, self.first, self.last = folder, first, last

    def on_train_batch_begin(self, batch, logs=None):
        if batch == self.first:
            import tensorflow as tf

            tf.profiler.experimental.start(self.folder)

    def on_train_batch_end(self, batch, logs=None):
        if batch == self.last:
            import tensorflow as tf

            tf.profiler.experimental.stop()


def main(examples=6000, batch_size=128, profile=(5, 34)):
    keras.utils.set_random_seed(0)
    (x, y), _ = keras_kd.datasets.fashion_mnist.load_data(None)
    x, y = x[:examples], y[:examples]
    teacher = keras_kd.models.build_model("fashion_mnist", "teacher", x.shape[1:], 10)
    student = keras_kd.models.build_model("fashion_mnist", "student", x.shape[1:], 10)
    distiller = keras_kd.Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer="adam", alpha=0.1, temperature=4.0)
    dataset = make_dataset(x, y, batch_size=batch_size, augmentation=keras.layers.RandomFlip("horizontal"))
    with tempfile.TemporaryDirectory() as folder:
        distiller.fit(dataset, epochs=1, verbose=0, callbacks=[ProfileBatches(folder, *profile)])
        totals, counts = xplane_totals(folder)
    steps = profile[1] - profile[0] + 1
    wait = sum(v for k, v in totals.items() if k.startswith("IteratorGetNext"))
    step_names = [k for k in totals if "train_function" in k or "one_step_on" in k or "multi_step_on" in k]
    step = max((totals[k] for k in step_names), default=float("nan"))
    top = [(k, round(v, 1), counts[k]) for k, v in totals.most_common(12)]
    figures = {
        "command": "KERAS_BACKEND=tensorflow python benchmarks/pipeline_profile.py",
        "profiled_steps": steps,
        "iterator_get_next_ms": round(wait, 2),
        "step_event": max(step_names, key=totals.get) if step_names else None,
        "step_ms": round(step, 1),
        "wait_share": round(wait / step, 4) if step == step else None,
        "wait_ms_per_step": round(wait / steps, 3),
        "top_events": top,
    }
    os.makedirs("benchmarks/results", exist_ok=True)
    with open("benchmarks/results/pipeline_profile.json", "w") as handle:
        json.dump(figures, handle, indent=2)
    print(json.dumps(figures))


if __name__ == "__main__":
    sys.exit(main())
