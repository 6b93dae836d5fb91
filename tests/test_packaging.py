"""The wheel and the sdist: built from pyproject.toml, installed into a new virtual environment.

A release check, not part of the library's suite: it builds with `python -m build
--no-isolation` (the running interpreter's setuptools, nothing fetched), then makes a new virtual
environment and `pip install`s the wheel there, which takes the dependencies from the package
index (or pip's cache). Run by .ci/release_checks.sh, or by hand:

    KERAS_KD_RELEASE_CHECKS=1 python -m pytest -q tests/test_packaging.py
"""

import email.parser
import os
import pathlib
import subprocess
import sys
import tarfile
import zipfile

import pytest

pytestmark = pytest.mark.skipif(
    os.environ.get("KERAS_KD_RELEASE_CHECKS") != "1", reason="release check: set KERAS_KD_RELEASE_CHECKS=1"
)

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXTRAS = {"tf-keras", "tfmot", "text", "tune", "tensorboard", "jax", "torch", "docs", "test", "dev", "mutation"}


def source_modules():
    """Every module of the package in the source tree, as a dotted name."""
    names = set()
    for path in (ROOT / "keras_kd").rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names.add(".".join(parts))
    return names


def version():
    namespace = {}
    for line in (ROOT / "keras_kd" / "__init__.py").read_text().splitlines():
        if line.startswith("__version__"):
            exec(line, namespace)
    return namespace["__version__"]


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    result = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    wheels = sorted(out.glob("*.whl"))
    sdists = sorted(out.glob("*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, sorted(p.name for p in out.iterdir())
    return wheels[0], sdists[0]


def test_wheel_holds_every_module_and_the_declared_metadata(dist):
    wheel, _ = dist
    assert wheel.name == f"keras_kd-{version()}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        info = next(n for n in names if n.endswith(".dist-info/METADATA"))
        metadata = email.parser.Parser().parsestr(archive.read(info).decode())
        entry_points = archive.read(info.replace("METADATA", "entry_points.txt")).decode()
    in_wheel = {
        ".".join(pathlib.PurePosixPath(n).with_suffix("").parts).removesuffix(".__init__")
        for n in names
        if n.endswith(".py")
    }
    assert in_wheel == source_modules()
    assert not [n for n in names if n.startswith("tests/")]
    assert metadata["Name"] == "keras-kd" and metadata["Version"] == version()
    assert set(metadata.get_all("Provides-Extra")) == EXTRAS
    requires = metadata.get_all("Requires-Dist")
    assert any(r.startswith("tensorflow") and "extra" not in r for r in requires)
    assert 'torch==2.13.0; extra == "torch"' in requires
    assert "keras-kd = keras_kd.cli.main:entry_point" in entry_points


def test_sdist_can_run_its_own_tests(dist):
    _, sdist = dist
    prefix = sdist.name.removesuffix(".tar.gz")
    with tarfile.open(sdist) as archive:
        names = {n.removeprefix(prefix + "/") for n in archive.getnames()}
    for needed in (
        "pyproject.toml",
        "setup.py",
        "README.md",
        "CHANGELOG.md",
        "pytest.ini",
        "tests/conftest.py",
        "tests/reference.py",
        "tests/minilm_reference.py",
        "keras_kd/distiller.py",
    ):
        assert needed in names, needed


# Modules that import an extra's package at import time, and that package: the base install
# lacks it. keras_kd.distiller imports tf_keras_steps only when TF_USE_LEGACY_KERAS=1 selects
# tf_keras, which needs the [tf-keras] extra.
NEEDS_EXTRA = {"keras_kd.tf_keras_steps": "tf_keras"}

IMPORT_EVERYTHING = """
import importlib, json, pathlib, pkgutil, sys
import keras_kd
failed = {}
names = []
for info in pkgutil.walk_packages(keras_kd.__path__, "keras_kd."):
    names.append(info.name)
    try:
        importlib.import_module(info.name)
    except Exception as error:  # noqa: BLE001 - reported to the test
        failed[info.name] = repr(error)
public = {name: type(getattr(keras_kd, name)).__name__ for name in keras_kd.__all__}
print(json.dumps({"file": keras_kd.__file__, "modules": names, "failed": failed, "public": public}))
"""


def test_wheel_installs_into_a_new_environment_and_runs(dist, tmp_path):
    wheel, _ = dist
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", str(wheel)], capture_output=True, text=True, timeout=1200
    )
    assert install.returncode == 0, install.stderr[-3000:]

    # Outside the source tree, so that nothing can come from the checkout.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TF_USE_LEGACY_KERAS", "VIRTUAL_ENV")}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    help_run = subprocess.run(
        [str(venv / "bin" / "keras-kd"), "--help"], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300
    )
    assert help_run.returncode == 0, help_run.stderr[-3000:]
    for subcommand in ("distill", "compress", "tune"):
        assert subcommand in help_run.stdout
    distill_help = subprocess.run(
        [str(venv / "bin" / "keras-kd"), "distill", "--help"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
    )
    assert distill_help.returncode == 0, distill_help.stderr[-3000:]
    assert "--output_dir" in distill_help.stdout + distill_help.stderr

    imports = subprocess.run(
        [str(python), "-c", IMPORT_EVERYTHING], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600
    )
    assert imports.returncode == 0, imports.stderr[-3000:]
    import json

    report = json.loads(imports.stdout.strip().splitlines()[-1])
    assert report["file"].startswith(str(venv)), report["file"]
    assert set(report["modules"]) == source_modules() - {"keras_kd"}
    # A module that needs an extra may fail to import here, but only for want of that extra.
    for module, error in report["failed"].items():
        assert module in NEEDS_EXTRA, f"{module} does not import from the wheel: {error}"
        assert f"No module named '{NEEDS_EXTRA[module]}'" in error, error
    assert set(report["failed"]) == set(NEEDS_EXTRA)
    assert report["public"]["Distiller"] == "type" and report["public"]["losses"] == "module"
