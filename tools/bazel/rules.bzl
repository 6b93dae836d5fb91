"""Macros that expand the tables of //:BUILD: a py_library per keras_kd module, a py_test per test file."""

TEST_DATA = ["pytest.ini", "examples/configs/**/*.yaml"]

def kd_library(name, srcs, deps, data = []):
    """One keras_kd module (or modules that import each other) with the modules it imports."""
    native.py_library(
        name = name,
        srcs = srcs,
        data = data,
        deps = [":keras_kd_init"] + [":" + dep for dep in deps],
    )

def pytest_file(src, fast):
    """`src` run by pytest; tagged "slow" (and sized large) unless `fast`."""
    native.py_test(
        name = src[len("tests/"):-len(".py")],
        size = "medium" if fast else "large",
        srcs = native.glob(["tests/*.py"]),  # test files import each other's helpers
        main = "tests/bazel_pytest_main.py",
        args = ["-q", "-p", "no:cacheprovider", "$(location %s)" % src],
        data = ["pytest.ini"] + native.glob(TEST_DATA[1:]),
        tags = [] if fast else ["slow"],
        deps = [":test_support"],
    )
