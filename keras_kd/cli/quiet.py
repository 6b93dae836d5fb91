"""TensorFlow started without the C++ lines that read as failures on a CPU machine."""

import os
import sys


def import_tensorflow_quietly():
    """Import TensorFlow with its C++ start-up lines (CUDA probing, oneDNN notes) left out.

    On a CPU machine they read as failures (`E0000 ... failed call to cuInit`), and since
    TensorFlow 2.16 they come through absl, which `TF_CPP_MIN_LOG_LEVEL` no longer silences;
    so the process's stderr is pointed at /dev/null while TensorFlow starts. A user who set
    `TF_CPP_MIN_LOG_LEVEL` sees everything.
    """
    if "TF_CPP_MIN_LOG_LEVEL" in os.environ or "tensorflow" in sys.modules:
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        import tensorflow as tf

        tf.config.list_physical_devices()  # the CUDA probe happens here
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
