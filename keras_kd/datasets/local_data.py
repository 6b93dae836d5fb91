"""Finding a data set's local folder: an argument, $KERAS_KD_DATA_DIR, then the project's shared data."""

import os

DATA_DIR_ENV = "KERAS_KD_DATA_DIR"


def candidate_dirs(subfolder, data_dir=None):
    """Folders to look in, in order: `data_dir` (or its `subfolder`), the same under
    $KERAS_KD_DATA_DIR, and `../shared/data/<subfolder>` from the working directory."""
    dirs = []
    for root in (data_dir, os.environ.get(DATA_DIR_ENV)):
        if root:
            dirs += [root, os.path.join(root, subfolder)]
    dirs.append(os.path.join(os.pardir, "shared", "data", subfolder))
    return dirs


def find_dir(subfolder, is_complete, data_dir=None):
    """The first candidate folder for which `is_complete(folder)` holds, or None."""
    for folder in candidate_dirs(subfolder, data_dir):
        if os.path.isdir(folder) and is_complete(folder):
            return folder
    return None
