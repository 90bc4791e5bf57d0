"""The package's shape (issue 14): short functions, a package docstring that places every module."""

import ast
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import common

PACKAGE = Path(common.__file__).resolve().parent
MAX_LINES = 60  # a function, docstring included, fits on one screen


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


def test_package_docstring_maps_every_module_to_its_job():
    names = {n.removeprefix("common.") for n in _module_names()} - {"common", "__main__"}
    missing = sorted(n for n in names if f"`{n}`" not in common.__doc__)
    assert not missing, f"common/__init__.py's docstring does not place the modules {missing}"


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


# The model layer imports each other only at module level (no cycle hidden in a function), and Keras directly.
MODEL_LAYER = {"autoencoder", "batches", "compiled_fit", "embedding", "model", "model_kinds", "train"}


def _common_imports(node: ast.AST) -> list[str]:
    """The `common` modules an import node names (relative ``from .x import`` or ``from common.x import``)."""
    if isinstance(node, ast.ImportFrom):
        if node.level == 1 and node.module:
            return [node.module.split(".")[0]]
        if node.level == 1:
            return [alias.name for alias in node.names]
        if node.module and node.module.startswith("common."):
            return [node.module.split(".")[1]]
    return []


def test_the_model_layer_has_no_function_local_import_of_itself():
    local = []
    for name in sorted(MODEL_LAYER):
        path = PACKAGE / f"{name}.py"
        for func in ast.walk(ast.parse(path.read_text())):
            if isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
                local += [f"{name}.py:{n.lineno} imports {m}" for n in ast.walk(func)
                          for m in _common_imports(n) if m in MODEL_LAYER]
    assert not local, "function-local imports inside the model layer (an import cycle in hiding):\n" + "\n".join(local)


def test_no_module_imports_keras_through_another_module():
    through = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if _common_imports(node) and any(alias.name == "keras" for alias in node.names):
                through.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
    assert not through, "import keras directly, not through a common module: " + ", ".join(through)
