"""Writes //:BUILD from the source tree: one py_library per module, one py_test per test file.

Each library's deps are the keras_kd modules its file imports (read with `ast`, imports inside
functions included); every module also depends on `:keras_kd_init`, the package's
`__init__.py`, which Python runs before any `keras_kd.*` import. `:keras_kd` is the whole
public package. Third-party packages are not targets: they come from the interpreter that
tools/bazel/python_interpreter.bzl finds.

    python tools/bazel/generate_build.py          # rewrite BUILD
    python tools/bazel/generate_build.py --check  # exit 1 if BUILD is out of date
    python tools/bazel/generate_build.py --rev=HEAD  # from a commit, not the work tree

Modules that import each other share one py_library (Bazel allows no cycle). Test files are
tagged "slow" unless MEASURED_SECONDS below has them at FAST_SECONDS or less.
"""

import ast
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]

# Wall times of the test files under Bazel on the 2-core build machine (Keras 3 engine, one test
# at a time, 2026-11-25). `bazel test //...` runs the files measured at 20 s or less (about 90 s
# of tests); the others, and test files not measured yet, are tagged "slow". Run everything with
# `bazel test --test_tag_filters= //...`. Measure a new test file and add it here.
MEASURED_SECONDS = {
    "tests/test_backend.py": 24,
    "tests/test_callbacks.py": 9,
    "tests/test_cli.py": 85,
    "tests/test_compress_cli.py": 55,
    "tests/test_compression.py": 51,
    "tests/test_configs.py": 56,
    "tests/test_crd.py": 10,
    "tests/test_datasets.py": 9,
    "tests/test_distiller.py": 27,
    "tests/test_distiller_methods.py": 24,
    "tests/test_kd_loss.py": 8,
    "tests/test_method_losses.py": 9,
    "tests/test_recipes.py": 12,
    "tests/test_saving.py": 21,
    "tests/test_text_teacher.py": 10,
    "tests/test_transfer_data.py": 20,
    "tests/test_tune.py": 42,
    "tests/test_user_data.py": 50,
    "tests/test_acceptance.py": 150,
    "tests/test_validation.py": 22,
}
FAST_SECONDS = 20

# Test files that are not part of the library's suite at all: they need a fresh virtual
# environment, a built docs site or a browser, and run in .ci/release_checks.sh.
RELEASE_CHECKS = {"tests/test_packaging.py", "tests/test_docs_site.py", "tests/test_examples.py"}


class Tree:
    """The files of the work tree, or of a git revision (`--rev`), under ROOT."""

    def __init__(self, rev=None):
        self.rev = rev

    def files(self, folder, pattern):
        if self.rev is None:
            return sorted((ROOT / folder).glob(pattern))
        listed = subprocess.run(
            ["git", "ls-tree", "-r", "--name-only", self.rev, folder],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        return sorted(
            ROOT / name
            for name in listed
            if pathlib.PurePosixPath(name).match(pattern)
            and (pattern.startswith("**") or "/" not in name[len(folder) + 1 :])
        )

    def read(self, path):
        if self.rev is None:
            return path.read_text()
        rel = path.relative_to(ROOT).as_posix()
        return subprocess.run(
            ["git", "show", f"{self.rev}:{rel}"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout


TREE = Tree()


def module_name(path):
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path, name, modules):
    """The keras_kd modules that `path` (module `name`) imports, anywhere in the file."""
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(TREE.read(path), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and name == "keras_kd":
            found.add(node.value)  # the lazy table of keras_kd/__init__.py names its modules as strings
    if name == "keras_kd":
        found.update(f"keras_kd.{sub}" for sub in _lazy_submodules(path))
    deps = set()
    for module in found:
        # `from keras_kd import losses` names a module; `from keras_kd.losses import KDLoss` a class.
        while module and module not in modules:
            module = module.rpartition(".")[0]
        if module and module != name and module != "keras_kd":
            deps.add(module)
    return deps


def _lazy_submodules(path):
    for node in ast.walk(ast.parse(TREE.read(path))):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "_SUBMODULES" for t in node.targets):
            elements = node.value.values if isinstance(node.value, ast.Dict) else node.value.elts
            return [element.value.removeprefix("keras_kd.") for element in elements]
    return []


def test_imports(path):
    """The `tests.*` modules a test file imports (another test file's helpers, for example)."""
    found = set()
    for node in ast.walk(ast.parse(TREE.read(path), str(path))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tests."):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("tests."))
    return found


def strongly_connected(graph):
    """The strongly connected components of `graph` (Tarjan), each a set of nodes."""
    index, low, stack, on_stack, components = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in graph:
                continue
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            components.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def generate():
    paths = TREE.files("keras_kd", "**/*.py")
    modules = {module_name(path): path for path in paths}
    graph = {name: imported_modules(path, name, modules) for name, path in modules.items() if name != "keras_kd"}
    target = {}  # module -> the target that holds it
    for component in strongly_connected(graph):
        for name in component:
            target[name] = min(component, key=lambda n: (n.count("."), n))
    libraries = []
    for owner in sorted(set(target.values())):
        members = sorted(n for n in target if target[n] == owner)
        deps = sorted({target[d] for n in members for d in graph[n] if d in target} - {owner})
        srcs = [modules[n].relative_to(ROOT).as_posix() for n in members]
        libraries.append(f'    ("{owner}", {quoted_list(srcs)}, {quoted_list(deps)}),')
    public = sorted({target[m] for m in imported_modules(modules["keras_kd"], "keras_kd", modules)})
    everything = sorted(set(target.values()))
    tests = [test.relative_to(ROOT).as_posix() for test in TREE.files("tests", "test_*.py")]
    tests = [test for test in tests if test not in RELEASE_CHECKS]
    fast = sorted(test for test in tests if MEASURED_SECONDS.get(test, FAST_SECONDS + 1) <= FAST_SECONDS)
    support = sorted(
        path.relative_to(ROOT).as_posix() for path in TREE.files("tests", "*.py") if not path.name.startswith("test_")
    )
    out = [
        "# Generated by tools/bazel/generate_build.py; edit that script, not this file.",
        "# One py_library per module and one py_test per test file (macros in tools/bazel/rules.bzl);",
        "# Bazel's native rules, run offline (see WORKSPACE). Third-party packages come from the",
        "# interpreter the toolchain finds.",
        "",
        'load("//tools/bazel:rules.bzl", "kd_library", "pytest_file")',
        "",
        'package(default_visibility = ["//visibility:public"])',
        "",
        'exports_files(["pytest.ini"])',
        "",
        "# keras_kd/__init__.py alone: Python runs it before any keras_kd.* module.",
        'py_library(name = "keras_kd_init", srcs = ["keras_kd/__init__.py"])',
        "",
        "# (target, sources, keras_kd targets it imports); modules that import each other share a target,",
        "# as Bazel allows no cycle.",
        "LIBRARIES = [",
        *libraries,
        "]",
        "",
        '[kd_library(name, srcs, deps) for name, srcs, deps in LIBRARIES if name != "keras_kd.cli"]',
        "",
        'kd_library("keras_kd.cli", ["keras_kd/cli/__init__.py"], [], data = glob(["examples/configs/**/*.yaml"]))'
        if "keras_kd.cli" in target.values()
        else "",
        "",
        "# The public package: keras_kd/__init__.py and every module it loads on first use.",
        f'py_library(name = "keras_kd", deps = {quoted_list([":keras_kd_init"] + [":" + m for m in public])})',
        "",
        "# Every module of the package, the command line included (what the tests import).",
        f'py_library(name = "keras_kd_all", deps = {quoted_list([":keras_kd"] + [":" + m for m in everything])})',
        "",
        'py_binary(name = "keras-kd", srcs = ["keras_kd/cli/main.py"], main = "keras_kd/cli/main.py", '
        'deps = [":keras_kd_all"])',
        "",
        f'py_library(name = "test_support", testonly = True, srcs = {quoted_list(support)}, deps = [":keras_kd_all"])',
        "",
        f"# Test files measured at {FAST_SECONDS} s or less under Bazel (MEASURED_SECONDS in the generator); every",
        '# other one is tagged "slow": `bazel test --test_tag_filters= //...` runs them too.',
        f"FAST_TESTS = {quoted_list(fast)}",
        "",
        "[pytest_file(src, src in FAST_TESTS) for src in glob(",
        '    ["tests/test_*.py"],',
        f"    exclude = {quoted_list(sorted(RELEASE_CHECKS))},",
        ")]",
    ]
    return "\n".join(out).rstrip() + "\n"


def quoted_list(items):
    return "[" + ", ".join(f'"{item}"' for item in items) + "]"


def main(argv):
    global TREE
    for arg in argv:
        if arg.startswith("--rev="):
            TREE = Tree(arg.split("=", 1)[1])
    text = generate()
    build = ROOT / "BUILD"
    if "--check" in argv:
        if build.read_text() != text:
            print("BUILD is out of date: run python tools/bazel/generate_build.py", file=sys.stderr)
            return 1
        return 0
    build.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
