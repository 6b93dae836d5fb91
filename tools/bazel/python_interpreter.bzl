"""A Python toolchain for the interpreter that has keras-kd's requirements installed.

No download: the repository rule looks the interpreter up on this machine, in this order:
$PYTHON_BIN_PATH, then `python3` on PATH (an activated virtual environment comes first), and
declares it as the py_runtime of Bazel's native py_library/py_test. Third-party packages
(TensorFlow, Keras, NumPy, ...) are whatever that interpreter has installed (`pip install -e .[test]`).
"""

def _python_interpreter_impl(repository_ctx):
    python = repository_ctx.os.environ.get("PYTHON_BIN_PATH", "")
    if not python:
        found = repository_ctx.which("python3")
        if not found:
            fail("keras-kd: no python3 on PATH; activate the virtual environment or set PYTHON_BIN_PATH")
        python = str(found)

    # Not resolved further: a virtual environment's python3 is a link whose own path tells
    # Python where the environment is.
    result = repository_ctx.execute([python, "-c", "import sys; print(sys.version_info[0])"])
    if result.return_code != 0 or result.stdout.strip() != "3":
        fail("keras-kd: %s is not a working Python 3 interpreter: %s" % (python, result.stderr))
    repository_ctx.file("BUILD", """
load("@bazel_tools//tools/python:toolchain.bzl", "py_runtime_pair")

py_runtime(
    name = "py3_runtime",
    interpreter_path = "{python}",
    python_version = "PY3",
)

py_runtime_pair(
    name = "runtime_pair",
    py3_runtime = ":py3_runtime",
)

toolchain(
    name = "toolchain",
    toolchain = ":runtime_pair",
    toolchain_type = "@bazel_tools//tools/python:toolchain_type",
)
""".format(python = python))

python_interpreter = repository_rule(
    implementation = _python_interpreter_impl,
    environ = ["PATH", "PYTHON_BIN_PATH", "VIRTUAL_ENV"],
    local = True,
)
