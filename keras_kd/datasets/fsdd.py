"""Free Spoken Digit Dataset: 3,000 mono 8 kHz recordings `{digit}_{speaker}_{index}.wav`.

Split as the data set's documentation suggests: recordings with index 0-4 are the test set
(300), the others (2,700) train. `load_data` returns log-mel spectrograms computed with
TensorFlow's signal ops, so the same features can be computed on a device.
"""

import os
import re
import tempfile
import urllib.request
import zipfile

import numpy as np

from keras_kd.datasets.local_data import candidate_dirs, find_dir

SAMPLE_RATE = 8000
CLIP_SAMPLES = 8000  # one second: recordings are cropped or zero-padded to it
URL = "https://github.com/Jakobovski/free-spoken-digit-dataset/archive/refs/heads/master.zip"
NAME = re.compile(r"^(\d)_([a-z]+)_(\d+)\.wav$")


def _complete(folder):
    return os.path.isdir(folder) and sum(bool(NAME.match(n)) for n in os.listdir(folder)) > 0


def _recordings_dir(data_dir):
    folder = find_dir(os.path.join("fsdd", "recordings"), _complete, data_dir) or find_dir(
        "recordings", _complete, data_dir
    )
    return folder


def _download():
    folder = tempfile.mkdtemp(prefix="fsdd-")
    archive = os.path.join(folder, "fsdd.zip")
    urllib.request.urlretrieve(URL, archive)  # noqa: S310 (a fixed https address)
    with zipfile.ZipFile(archive) as handle:
        handle.extractall(folder)
    return os.path.join(folder, "free-spoken-digit-dataset-master", "recordings")


def read_recordings(folder):
    """`(waveforms (n, CLIP_SAMPLES) float32 in [-1, 1], digits, speakers, indices)`, sorted by file name."""
    from scipy.io import wavfile

    waves, digits, speakers, indices = [], [], [], []
    for name in sorted(os.listdir(folder)):
        match = NAME.match(name)
        if not match:
            continue
        rate, data = wavfile.read(os.path.join(folder, name))
        if rate != SAMPLE_RATE:
            raise ValueError(f"{name}: sample rate {rate}, expected {SAMPLE_RATE}.")
        data = data.astype("float32") / 32768.0 if data.dtype == np.int16 else data.astype("float32")
        clip = np.zeros(CLIP_SAMPLES, "float32")
        clip[: min(len(data), CLIP_SAMPLES)] = data[:CLIP_SAMPLES]
        waves.append(clip)
        digits.append(int(match.group(1)))
        speakers.append(match.group(2))
        indices.append(int(match.group(3)))
    if not waves:
        raise FileNotFoundError(f"No FSDD recordings in {folder}.")
    return np.stack(waves), np.array(digits, "int64"), np.array(speakers), np.array(indices)


def log_mel(waveforms, frame_length=256, frame_step=128, mel_bins=40):
    """Log-mel spectrograms `(n, frames, mel_bins, 1)` with `tf.signal`."""
    import tensorflow as tf

    stft = tf.signal.stft(tf.constant(waveforms), frame_length=frame_length, frame_step=frame_step)
    power = tf.abs(stft) ** 2
    matrix = tf.signal.linear_to_mel_weight_matrix(mel_bins, power.shape[-1], SAMPLE_RATE, 20.0, 4000.0)
    mel = tf.tensordot(power, matrix, 1)
    return tf.math.log(mel + 1e-6).numpy()[..., np.newaxis].astype("float32")


def load_data(data_dir=None, download=True):
    """`(x_train, y_train), (x_test, y_test)`: log-mel features and digits; test = recording index 0-4."""
    folder = _recordings_dir(data_dir)
    if folder is None:
        if not download:
            raise FileNotFoundError(
                "FSDD recordings not found in "
                + ", ".join(candidate_dirs(os.path.join("fsdd", "recordings"), data_dir))
            )
        folder = _download()
    waves, digits, _, indices = read_recordings(folder)
    features = log_mel(waves)
    test = indices <= 4
    return (features[~test], digits[~test]), (features[test], digits[test])


def load_standardized(data_dir=None, download=True):
    """`load_data`, the features standardised with the training set's mean and spread.

    What the CLI and the model presets use (`--dataset=fsdd`): the statistics come from the
    training recordings only, so nothing of the test set leaks into training.
    """
    (x_train, y_train), (x_test, y_test) = load_data(data_dir, download)
    mean, std = float(x_train.mean()), float(x_train.std())
    return (((x_train - mean) / std).astype("float32"), y_train), (((x_test - mean) / std).astype("float32"), y_test)
