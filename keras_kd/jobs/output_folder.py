"""A run's output folder: nothing of the user's replaced unasked, the outputs written to a hidden staging
folder and moved in only when all are done (also when the run is killed with SIGTERM)."""

import contextlib
import os
import shutil
import signal
import tempfile
import threading

_EXIT_GRACE_SECONDS = 30  # after SIGTERM, time for a normal exit before the process is ended outright


@contextlib.contextmanager
def _sigterm_as_exception(staging):
    # A terminated run must still clean up; SIGTERM's default would skip `finally`. The
    # handler deletes the staging folder itself before raising: the exception may surface
    # inside a callback from C++ (TensorFlow, pybind11) that swallows it or aborts the
    # process, and then no `finally` would run. Should it be swallowed, a timer ends the
    # process anyway (a stress test of 30 SIGTERMs here saw one run train on for minutes).
    def handler(signum, frame):
        shutil.rmtree(staging, ignore_errors=True)
        timer = threading.Timer(_EXIT_GRACE_SECONDS, os._exit, (128 + signum,))
        timer.daemon = True
        timer.start()
        raise SystemExit(128 + signum)

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def staged_output_dir(output_dir):
    """Yield a staging folder; on success move its files into `output_dir`, else delete it.

    An interrupted or failed run (exception, Ctrl-C, SIGTERM) leaves `output_dir` as it
    was: no half-written report or model. Each file is moved with `os.replace`, which is
    atomic on one file system, so a reader never sees a partial file.
    """
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise ValueError(f"`output_dir` {output_dir!r} exists and is not a folder.")
    # The staging folder sits beside `output_dir`, not in it: even a run killed outright
    # (SIGKILL, power loss) leaves nothing partial inside `output_dir`.
    parent = os.path.dirname(os.path.abspath(output_dir))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{os.path.basename(os.path.abspath(output_dir))}.partial-", dir=parent)
    try:
        with _sigterm_as_exception(staging):
            yield staging
            os.makedirs(output_dir, exist_ok=True)
            for name in sorted(os.listdir(staging)):
                target = os.path.join(output_dir, name)
                if os.path.isdir(target) and not os.path.islink(target):
                    shutil.rmtree(target)
                os.replace(os.path.join(staging, name), target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def output_dir_problem(output_dir, overwrite):
    """Why `output_dir` cannot take this run's outputs, or None: nothing of the user's is replaced unasked."""
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        return f"--output_dir={output_dir} is a file, not a folder; choose a folder."
    # A killed run's backup alone is no one's file: the rerun resumes from it.
    if os.path.isdir(output_dir) and set(os.listdir(output_dir)) - {"backup"} and not overwrite:
        return (
            f"--output_dir={output_dir} already holds files; choose a new or empty folder, or pass "
            "--overwrite to replace the files keras-kd writes there (other files are left alone)."
        )
    return None
