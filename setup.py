"""keras-kd: knowledge distillation for Keras 3 and tf_keras."""

import re

from setuptools import find_packages, setup

with open("keras_kd/__init__.py") as handle:
    VERSION = re.search(r'__version__ = "([^"]+)"', handle.read()).group(1)

with open("README.md") as handle:
    LONG_DESCRIPTION = handle.read()

setup(
    name="keras-kd",
    version=VERSION,
    description="Knowledge distillation for Keras: a Distiller, correct losses, compression and export.",
    long_description=LONG_DESCRIPTION,
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["keras_kd", "keras_kd.*"]),
    install_requires=[
        "tensorflow>=2.16,<2.22",
        "keras>=3.5,<3.16",
        "numpy",
        "absl-py",
        "matplotlib",
        "scikit-learn",
        "pyyaml",
    ],
    extras_require={
        # The tf_keras engine (TF_USE_LEGACY_KERAS=1) and what needs it.
        "tf-keras": ["tf-keras>=2.16,<2.22"],
        "tfmot": ["tf-keras>=2.16,<2.22", "tensorflow-model-optimization==0.8.1"],
        "tune": ["keras-tuner==1.4.8"],
        # The pretrained text teacher (keras_kd.models.minilm); its weights: requirements-text.txt.
        "text": ["keras-hub==0.32.0", "safetensors"],
        # Everything the suite imports, so the README's test command works on a fresh machine.
        "test": [
            "pytest>=7",
            "scipy",
            "tf-keras>=2.16,<2.22",
            "tensorflow-model-optimization==0.8.1",
            "keras-tuner==1.4.8",
            "keras-hub==0.32.0",
            "safetensors",
        ],
    },
    entry_points={"console_scripts": ["keras-kd=keras_kd.cli.main:entry_point"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
