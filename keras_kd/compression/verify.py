"""Reload an exported artifact in a fresh process and compare its outputs with the Keras student's.

A fresh process proves the file stands alone: no Python object of the training run, no
custom class, is needed to serve it. One process checks every artifact of a run (each process
pays TensorFlow's import, seconds). Run as
`python -m keras_kd.compression.verify INPUTS.npy OUTPUTS.npz {saved_model|tflite} PATH [KIND PATH ...]`.
"""

import os
import subprocess
import sys
import tempfile

import numpy as np


def run_saved_model(path, inputs):
    """The outputs of the SavedModel at `path` on `inputs`, through its serving signature."""
    import tensorflow as tf

    from keras_kd.compression.export import INPUT_NAME, OUTPUT_NAME, SIGNATURE

    loaded = tf.saved_model.load(path)
    outputs = loaded.signatures[SIGNATURE](**{INPUT_NAME: tf.constant(inputs, tf.float32)})
    return outputs[OUTPUT_NAME].numpy()


def run_tflite(path, inputs):
    """Run a TFLite file one example at a time, (de)quantizing int8 inputs and outputs."""
    from keras_kd.compression.artifacts import make_interpreter

    interpreter = make_interpreter(path)
    interpreter.allocate_tensors()
    input_detail = interpreter.get_input_details()[0]
    output_detail = interpreter.get_output_details()[0]
    results = []
    for row in inputs:
        value = row[None].astype("float32")
        if input_detail["dtype"] == np.int8:
            scale, zero_point = input_detail["quantization"]
            value = np.clip(np.round(value / scale + zero_point), -128, 127).astype(np.int8)
        interpreter.set_tensor(input_detail["index"], value)
        interpreter.invoke()
        out = interpreter.get_tensor(output_detail["index"])
        if output_detail["dtype"] == np.int8:
            scale, zero_point = output_detail["quantization"]
            out = (out.astype("float32") - zero_point) * scale
        results.append(out[0])
    return np.stack(results)


RUNNERS = {"saved_model": run_saved_model, "tflite": run_tflite}


def outputs_in_fresh_process(kind, path, inputs, timeout=600):
    """The artifact's outputs on `inputs`, computed by a new Python process."""
    return outputs_of_artifacts_in_fresh_process([(kind, path)], inputs, timeout=timeout)[0]


def outputs_of_artifacts_in_fresh_process(artifacts, inputs, timeout=600):
    """Each `(kind, path)` artifact's outputs on `inputs`, in order, all computed by one new process."""
    artifacts = list(artifacts)
    for kind, _ in artifacts:
        if kind not in RUNNERS:
            raise ValueError(f"`kind` must be one of {sorted(RUNNERS)}; received {kind!r}.")
    with tempfile.TemporaryDirectory() as folder:
        inputs_path, outputs_path = os.path.join(folder, "inputs.npy"), os.path.join(folder, "outputs.npz")
        np.save(inputs_path, np.asarray(inputs, dtype="float32"))
        pairs = [str(part) for artifact in artifacts for part in artifact]
        command = [sys.executable, "-m", "keras_kd.compression.verify", inputs_path, outputs_path, *pairs]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
        if result.returncode != 0:
            paths = ", ".join(str(path) for _, path in artifacts)
            raise RuntimeError(f"Reloading {paths} in a fresh process failed:\n{result.stderr[-3000:]}")
        with np.load(outputs_path) as outputs:
            return [outputs[str(i)] for i in range(len(artifacts))]


def main(argv):
    """The fresh process's entry point: `argv` is `[prog, inputs.npy, outputs.npz, kind, path, ...]`."""
    inputs_path, outputs_path, *pairs = argv[1:]
    if not pairs or len(pairs) % 2:
        raise SystemExit("usage: verify INPUTS.npy OUTPUTS.npz KIND PATH [KIND PATH ...]")
    inputs = np.load(inputs_path)
    outputs = {str(i): RUNNERS[kind](path, inputs) for i, (kind, path) in enumerate(zip(pairs[::2], pairs[1::2]))}
    np.savez(outputs_path, **outputs)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
