"""What a run ran on: the engine, Python, the machine and the version of every package it imported.

`write_report` records this in every report (`metadata["environment"]`), beside the seed that
the jobs record, so that a figure can be traced to the software that produced it and a run
repeated on the same versions.
"""

import importlib.metadata
import platform
import sys

# Packages whose version matters to the numbers even when this process has not imported them.
_ALWAYS = ("keras-kd", "keras", "tensorflow", "tf-keras", "numpy", "jax", "jaxlib", "torch")


def package_versions():
    """`{distribution name: version}` for every installed package this process has imported, and `_ALWAYS`."""
    try:
        owners = importlib.metadata.packages_distributions()
    except Exception:  # pragma: no cover - a broken installation's metadata
        owners = {}
    names = set()
    for module in list(sys.modules):
        top = module.partition(".")[0]
        if top and not top.startswith("_"):
            names.update(owners.get(top, ()))
    versions = {}
    for name in sorted(names.union(_ALWAYS), key=str.lower):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def run_environment():
    """The engine and backend, Python, the platform and `package_versions()`, as a JSON-able dict."""
    from keras_kd.backend import ENGINE_DESCRIPTION

    return {
        "engine": ENGINE_DESCRIPTION,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": package_versions(),
    }
