"""Write files and folders so that a reader (or a rerun) sees the old version or the new one, never half of one.

Each writer puts its output under a hidden temporary name in the target's own folder (the
same file system), flushes it to disk, and renames it onto the target with `os.replace`,
which POSIX and Windows perform atomically. A process killed mid-write (SIGKILL, a full
disk, a power cut after the rename is durable) leaves the previous file intact and, at
worst, a `.<name>.partial-*` file beside it that the next write ignores.

Example:
>>> atomic.write_json("report.json", payload)
>>> atomic.save_model(student, "student.keras")
>>> with atomic.replaced_folder("export/student/1") as staging:   # a whole folder at once
...     tf.saved_model.save(module, staging)
"""

import contextlib
import json
import os
import shutil
import tempfile

PARTIAL_MARKER = ".partial-"


def _fsync_folder(folder):
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - Windows cannot open folders
        return
    try:
        os.fsync(descriptor)
    except OSError:  # pragma: no cover - some file systems refuse
        pass
    finally:
        os.close(descriptor)


@contextlib.contextmanager
def replaced_file(path, suffix=""):
    """Yield a temporary path beside `path`; when the block succeeds, rename it onto `path`.

    Args:
        path: the file to (re)write.
        suffix: the temporary name's ending, for writers that check it (`.keras`, `.weights.h5`, `.npz`).

    If the block raises (or the process dies), `path` keeps its previous content and the
    temporary file is removed (or, after a kill, left under a hidden `.partial-` name).
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(
        prefix=f".{os.path.basename(path)}{PARTIAL_MARKER}", suffix=suffix, dir=folder
    )
    os.close(descriptor)
    try:
        yield temporary
        with open(temporary, "rb+") as handle:  # the data reaches the disk before the rename
            os.fsync(handle.fileno())
        os.replace(temporary, path)
        _fsync_folder(folder)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def write_bytes(path, data):
    """Write `data` (bytes) to `path` atomically."""
    with replaced_file(path) as temporary, open(temporary, "wb") as handle:
        handle.write(data)


def write_text(path, text, encoding="utf-8"):
    """Write `text` to `path` atomically."""
    write_bytes(path, text.encode(encoding))


def write_json(path, payload, indent=2):
    """Write `payload` as JSON to `path` atomically (serialized first: a value JSON refuses writes nothing)."""
    write_text(path, json.dumps(payload, indent=indent) + "\n")


def _keras_suffix(path):
    for suffix in (".weights.h5", ".keras", ".h5", ".npz"):
        if os.fspath(path).endswith(suffix):
            return suffix
    return ""


def save_model(model, path, **kwargs):
    """`model.save(path, **kwargs)` atomically, for a `.keras` or `.h5` file."""
    with replaced_file(path, suffix=_keras_suffix(path)) as temporary:
        model.save(temporary, **kwargs)


def save_weights(model, path, **kwargs):
    """`model.save_weights(path)` atomically (a `.weights.h5` file on Keras 3; `.h5` on tf_keras)."""
    with replaced_file(path, suffix=_keras_suffix(path)) as temporary:
        model.save_weights(temporary, **kwargs)


@contextlib.contextmanager
def replaced_folder(path):
    """Yield an empty staging folder beside `path`; when the block succeeds it becomes `path`.

    An existing `path` is moved aside, the staging folder renamed into place, and the old one
    deleted, so `path` is at every moment either the complete old folder or the complete new
    one (between the two renames it is briefly absent; a rerun finds the old one under
    `.<name>.old-*` and `restore_folder` puts it back).
    """
    path = os.path.abspath(os.fspath(path))
    parent, name = os.path.dirname(path), os.path.basename(path)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{name}{PARTIAL_MARKER}", dir=parent)
    try:
        yield staging
        old = None
        if os.path.exists(path):
            old = tempfile.mkdtemp(prefix=f".{name}.old-", dir=parent)
            os.replace(path, os.path.join(old, name))
        os.replace(staging, path)
        _fsync_folder(parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def restore_folder(path):
    """Put back a folder that a kill between `replaced_folder`'s two renames left aside; True if it did."""
    path = os.path.abspath(os.fspath(path))
    parent, name = os.path.dirname(path), os.path.basename(path)
    if os.path.exists(path) or not os.path.isdir(parent):
        return False
    for entry in sorted(os.listdir(parent)):
        aside = os.path.join(parent, entry, name)
        if entry.startswith(f".{name}.old-") and os.path.isdir(aside):
            os.replace(aside, path)
            shutil.rmtree(os.path.join(parent, entry), ignore_errors=True)
            return True
    return False
