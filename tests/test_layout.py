"""The house's rules, read from the source: imports point one way (the command line calls the jobs,
the jobs the building blocks) with no circle, and the public surface is said once (the API
reference's table lists exactly `keras_kd.__all__`; every module is on a reference page)."""

import ast
import pathlib
import re

import keras_kd
from tools.bazel.generate_build import strongly_connected

ROOT = pathlib.Path(__file__).resolve().parents[1]
API = ROOT / "docs" / "api"

# Modules no user calls: the command line (docs/cli.md), tf_keras's steps, the engine shims.
INTERNAL = {
    "keras_kd.backend.tf_ops",
    "keras_kd.cli",
    "keras_kd.compression.tfmot.loader",
    "keras_kd.jobs.report.environment",
    "keras_kd.tf_keras_steps",
}


def _package_modules():
    names = set()
    for path in (ROOT / "keras_kd").rglob("*.py"):
        names.add(".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"))
    return names


def test_the_reference_table_names_exactly_the_package_s_public_names():
    index = (API / "index.md").read_text()
    table = [line for line in index.splitlines() if line.startswith("| `keras_kd.")]
    listed = set()
    for row in table:
        first_cell = row.split("|")[1]
        listed.update(name.removeprefix("keras_kd.") for name in re.findall(r"`(keras_kd\.\w+)`", first_cell))
    assert listed == set(keras_kd.__all__)


def test_every_module_is_on_a_reference_page():
    documented = set()
    for page in API.glob("*.md"):
        documented.update(re.findall(r"^::: ([\w.]+)", page.read_text(), re.M))
    modules = _package_modules()

    def on_a_page(name):  # the module itself, or a class of it (`keras_kd.distiller.Distiller`)
        return any(entry == name or entry.rpartition(".")[0] == name for entry in documented)

    def internal(name):
        return any(name == inner or name.startswith(inner + ".") for inner in INTERNAL)

    missing = sorted(name for name in modules if not on_a_page(name) and not internal(name))
    assert not missing, f"not on any docs/api page: {missing}"
    unknown = sorted(entry for entry in documented if entry not in modules and entry.rpartition(".")[0] not in modules)
    assert not unknown, f"a docs/api page names what does not exist: {unknown}"


def _imports(path, lazy):
    """The keras_kd modules `path` imports: at load time, or (`lazy`) inside functions as well."""
    modules = _package_modules()
    found = set()

    def visit(nodes):
        for node in nodes:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                if lazy:
                    visit(node.body)
                continue
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.stmt):
                    visit([child])

    visit(ast.parse(path.read_text()).body)
    resolved = set()
    for name in found:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        if name and name != "keras_kd":
            resolved.add(name)
    return resolved


def _graph(lazy):
    graph = {}
    for path in (ROOT / "keras_kd").rglob("*.py"):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        graph[name] = _imports(path, lazy) - {name}
    return graph


def _circles(graph):
    """The strongly connected components of more than one module, each sorted (the BUILD generator's
    Tarjan, which groups such modules into one target)."""
    return sorted(sorted(component) for component in strongly_connected(graph) if len(component) > 1)


def test_no_import_circle_at_load_time():
    assert _circles(_graph(lazy=False)) == []


def test_the_only_circle_through_a_function_is_the_loss_package_resolving_its_own_names():
    # `WeightedLosses` (losses/keras_losses.py) resolves its parts by name through `keras_kd.losses.get`,
    # the package that registers it: the one circle kept, closed inside a function.
    assert _circles(_graph(lazy=True)) in ([], [["keras_kd.losses", "keras_kd.losses.keras_losses"]])


def test_building_blocks_import_no_job_and_jobs_no_command_line():
    graph = _graph(lazy=True)
    for name, imported in graph.items():
        if not name.startswith(("keras_kd.jobs", "keras_kd.cli")):
            assert not {m for m in imported if m.startswith(("keras_kd.jobs", "keras_kd.cli"))}, name
        if name.startswith("keras_kd.jobs"):
            assert not {m for m in imported if m.startswith("keras_kd.cli")}, name
