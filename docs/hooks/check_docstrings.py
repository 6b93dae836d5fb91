"""MkDocs hook: every public symbol that the API reference renders must have a docstring.

mkdocstrings renders an undocumented class or function as a bare signature without a word of
warning. This hook reads the package statically (griffe, as mkdocstrings does: nothing is
imported), finds each `::: identifier` of docs/api/, and logs a warning for every public module,
class and function in it that has no docstring. `mkdocs build --strict` turns the warnings into
a failed build.

Public: a name without a leading underscore, defined in that module (not imported into it), and
listed in the module's `__all__` where it has one. Methods are not required to have docstrings:
most are Keras overrides (`call`, `get_config`, `on_epoch_end`) that Keras documents.
"""

import logging
import pathlib
import re

import griffe

log = logging.getLogger("mkdocs.plugins.keras_kd_docstrings")

IDENTIFIER = re.compile(r"^:::\s+([\w.]+)", re.MULTILINE)


def rendered_identifiers(docs_dir):
    for page in sorted(pathlib.Path(docs_dir, "api").glob("*.md")):
        for identifier in IDENTIFIER.findall(page.read_text()):
            yield page.name, identifier


def missing_docstrings(obj):
    """Paths of the public objects under `obj` (a module, class or function) without a docstring."""
    missing = [] if obj.docstring else [obj.path]
    if not obj.is_module:
        return missing
    exported = obj.exports if obj.exports is not None else None
    for name, member in obj.members.items():
        if member.is_alias or name.startswith("_"):
            continue
        if exported is not None and name not in exported:
            continue
        if (member.is_class or member.is_function) and not member.docstring:
            missing.append(member.path)
    return missing


def on_pre_build(config, **kwargs):
    root = pathlib.Path(config["config_file_path"]).parent
    package = griffe.load("keras_kd", search_paths=[str(root)], allow_inspection=False)
    count = 0
    for page, identifier in rendered_identifiers(config["docs_dir"]):
        obj = package[identifier.removeprefix("keras_kd.")] if identifier != "keras_kd" else package
        for path in missing_docstrings(obj):
            count += 1
            log.warning("api/%s renders %s, which has no docstring", page, path)
    if count:
        log.warning("%d public symbols in the API reference have no docstring", count)
