"""keras-kd: knowledge distillation for Keras 3 and tf_keras.

A thin shim: the name, version, dependencies, extras and entry point are declared once, in
pyproject.toml. `pip install .`, `python -m build` and `python setup.py ...` all read them there.
"""

from setuptools import setup

setup()
