"""The package's shape (issues 14, 29): short functions, subpackages that say what they own, import rules, no cycle."""

import ast
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import common

PACKAGE = Path(common.__file__).resolve().parent
MAX_LINES = 60  # a function, docstring included, fits on one screen
MAX_CHAIN = 12  # modules in the longest import chain (errors at its bottom)
SUBPACKAGES = ("data", "features", "models", "scoring", "methods", "experiment", "report")
# What a subpackage never imports (the kernel at the top is open to all; `config` is the YAML loader).
NEVER = {
    "features": {"config", "data", "models", "scoring", "methods", "experiment", "report", "results", "deploy"},
    "models": {"config", "data", "scoring", "methods", "experiment", "report", "results", "deploy"},
    "scoring": {"config", "data", "methods", "experiment", "report", "results", "deploy"},
    "data": {"models", "scoring", "methods", "experiment", "report", "deploy"},
    "methods": {"experiment", "report", "deploy"},
    "experiment": {"report", "deploy"},
    "report": {"models", "experiment", "features", "deploy"},
}
LOCAL_IMPORTS_ALLOWED = {"common.__main__", "common.demo"}  # the CLI and the demo import a step when it runs


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def _module_names() -> list[str]:
    names = []
    for path in _modules():
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        names.append(".".join(rel.parts).removesuffix(".__init__"))
    return names


def test_no_function_is_longer_than_a_screen():
    long = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_LINES:
                    long.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, "functions over 60 lines:\n" + "\n".join(long)


def test_the_package_docstring_maps_the_subpackages_and_each_subpackage_its_modules():
    top = {n.split(".")[1] for n in _module_names() if n.count(".") >= 1} - {"__main__"}
    missing = sorted(n for n in top if f"`{n}`" not in common.__doc__)
    assert not missing, f"common/__init__.py's docstring does not place {missing}"
    for sub in SUBPACKAGES:
        doc = importlib.import_module(f"common.{sub}").__doc__
        modules = {n.split(".")[2] for n in _module_names() if n.startswith(f"common.{sub}.")}
        unplaced = sorted(m for m in modules if f"`{m}`" not in doc)
        assert not unplaced, f"common/{sub}/__init__.py's docstring does not place {unplaced}"


def test_the_top_of_the_package_holds_at_most_twelve_modules():
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= 12, f"{len(top)} modules at the top of common/: {top}"


def test_every_module_says_its_job():
    for name in _module_names():
        module = importlib.import_module(name)
        assert module.__doc__ and module.__doc__.strip(), f"{name} has no module docstring"


def test_importing_the_package_changes_no_environment_variable():
    # The frameworks first: what they set on import themselves (jax sets TF_CPP_MIN_LOG_LEVEL) is not ours.
    code = ("import importlib, json, os, sys; import keras, tensorflow, jax; before = dict(os.environ); "
            "[importlib.import_module(n) for n in sys.argv[1:]]; "
            "print(json.dumps(sorted(k for k in set(os.environ) | set(before) if os.environ.get(k) != before.get(k))))")
    env = {k: v for k, v in os.environ.items() if k not in ("KERAS_BACKEND", "TF_CPP_MIN_LOG_LEVEL")}
    out = subprocess.run([sys.executable, "-c", code, *_module_names()], capture_output=True, text=True, env=env,
                         cwd=PACKAGE.parent, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [], "importing common set environment variables"


def _imports(path: Path, name: str) -> list[tuple[str, bool, int]]:
    """(imported common module, inside a function, line) for each import of a common module in `path`."""
    tree = ast.parse(path.read_text())
    in_function = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                   for n in ast.walk(f)}
    known, out = set(_module_names()), []
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([node.module] if node.module else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            continue
        out += [(t, id(node) in in_function, node.lineno) for t in targets
                if t in known and t != "common" and t != name]
    return out


def _graph() -> dict[str, set[str]]:
    names = dict(zip(_module_names(), _modules()))
    return {n: {t for t, _, _ in _imports(p, n)} for n, p in names.items()}


def _layer(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_subpackages_import_only_what_their_layer_may():
    broken = [f"{m} imports {t}" for m, targets in _graph().items() for t in sorted(targets)
              if _layer(t) in NEVER.get(_layer(m), ()) and not (_layer(m) == "report" and t == "common.methods.catalog")]
    broken += [f"{m} imports {t}" for m, targets in _graph().items() for t in sorted(targets)
               if _layer(m) == "report" and _layer(t) == "methods" and t != "common.methods.catalog"]
    assert not broken, "imports against the layer rules (tests/test_code_shape.py NEVER):\n" + "\n".join(broken)


def test_no_function_local_import_of_a_common_module_outside_the_cli_and_the_demo():
    local = [f"{path.relative_to(PACKAGE.parent)}:{line} imports {t}"
             for name, path in zip(_module_names(), _modules()) if name not in LOCAL_IMPORTS_ALLOWED
             for t, inside, line in _imports(path, name) if inside]
    assert not local, "function-local imports (an import cycle in hiding):\n" + "\n".join(local)


def _chains(graph: dict[str, set[str]]) -> dict[str, list[str]]:
    """The longest import chain from each module; raises on a cycle (naming it)."""
    longest: dict[str, list[str]] = {}
    visiting: list[str] = []

    def visit(m: str) -> list[str]:
        if m in visiting:
            raise AssertionError("import cycle: " + " -> ".join(visiting[visiting.index(m):] + [m]))
        if m not in longest:
            visiting.append(m)
            longest[m] = [m] + max((visit(t) for t in graph[m]), key=len, default=[])
            visiting.pop()
        return longest[m]

    for m in graph:
        visit(m)
    return longest


def test_no_import_cycle_and_the_longest_chain_is_at_most_twelve():
    graph = {m: (set() if m in LOCAL_IMPORTS_ALLOWED else t) for m, t in _graph().items()}
    chain = max(_chains(graph).values(), key=len)
    assert len(chain) <= MAX_CHAIN, f"import chain of {len(chain)} modules: " + " -> ".join(chain)


def test_the_shape_checks_can_fail():
    assert len(max(_chains({"a": {"b"}, "b": {"c"}, "c": set()}).values(), key=len)) == 3
    with pytest.raises(AssertionError, match="import cycle: a -> b -> a"):
        _chains({"a": {"b"}, "b": {"a"}})


def test_no_module_imports_keras_through_another_module():
    through = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("common"))
                    and any(alias.name == "keras" for alias in node.names)):
                through.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
    assert not through, "import keras directly, not through a common module: " + ", ".join(through)


def test_the_report_and_the_catalogue_load_without_keras():
    report = [n for n in _module_names() if n.startswith("common.report")]
    code = ("import importlib, sys; [importlib.import_module(n) for n in sys.argv[1:]]; "
            "print(sorted(m for m in ('keras', 'tensorflow', 'jax') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code, "common.methods.catalog", "common.results", *report],
                         capture_output=True, text=True, cwd=PACKAGE.parent, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]", "the report side imports a framework: " + out.stdout
