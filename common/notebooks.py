"""Write the eleven notebooks from their percent-script templates, and run a notebook headless (nbclient).

The cells' code lives in ``notebook_templates/*.py`` at the repository root: jupytext percent scripts
(``# %%`` cells), real Python that an editor and a linter read. The Version notebooks differ only in
their version, so one template serves five: ``$version``, ``$n``, ``$short`` and ``$text`` are filled
from `common.data.versions.VERSIONS`. ``python -m common notebooks`` rewrites the ``.ipynb`` files; a test
checks the committed ones are current.
"""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any, Mapping

import nbformat
from nbformat import NotebookNode
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from common.errors import ProjectError
from common.data.versions import VERSIONS

KERNEL = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
TEMPLATES = Path(__file__).resolve().parent.parent / "notebook_templates"


def _code(source: str, *tags: str) -> NotebookNode:
    cell = new_code_cell(source)
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


def _notebook(cells: list[NotebookNode]) -> NotebookNode:
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = dict(KERNEL)
    nb.metadata["language_info"] = {"name": "python"}
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i}"  # stable ids keep regenerated notebooks byte-identical
    return nb


def from_template(name: str, **fields: str) -> NotebookNode:
    """The notebook of ``notebook_templates/<name>.py``, its ``$field`` placeholders filled, without outputs.

    Raises
    ------
    ProjectError
        jupytext (a development requirement) is not installed.
    KeyError
        The template names a placeholder that `fields` lacks.
    """
    try:
        import jupytext
    except ImportError as exc:
        raise ProjectError("writing the notebooks needs jupytext: pip install -r requirements-dev.txt") from exc
    text = string.Template((TEMPLATES / f"{name}.py").read_text()).substitute(fields)
    cells = []
    for cell in jupytext.reads(text, fmt="py:percent").cells:
        if cell.cell_type == "markdown":
            cells.append(new_markdown_cell(cell.source))
        else:
            cells.append(_code(cell.source, *cell.metadata.get("tags", [])))
    return _notebook(cells)


def version_fields(version: str) -> dict[str, str]:
    """A Version template's placeholders: ``version`` ("v1"), ``n`` ("1"), ``short`` and ``text``."""
    entry = VERSIONS[version]
    return {"version": version, "n": version[1:], "short": entry.short, "text": entry.text}


def all_notebooks() -> dict[str, NotebookNode]:
    """Every notebook of the repository, keyed by its path relative to the repository root."""
    out = {"install_library.ipynb": from_template("install_library")}
    for version in VERSIONS:
        folder = f"Version{version[1:]}"
        for step in ("make_pretrain", "transfer_pretrain"):
            out[f"{folder}/{step}_{version}.ipynb"] = from_template(step, **version_fields(version))
    return out


def write_notebooks(repo: str | Path) -> list[Path]:
    """(Re)write all notebooks under `repo`, without outputs."""
    written = []
    for rel, nb in all_notebooks().items():
        path = Path(repo) / rel
        nbformat.write(nb, path)
        written.append(path)
    return written


def execute_notebook(path: str | Path, *, parameters: Mapping[str, Any] | None = None,
                     timeout: int = 900, kernel_name: str = "python3") -> NotebookNode:
    """Run a notebook top to bottom in its own folder, papermill-style: `parameters` go in a cell
    right after the one tagged ``parameters``. Returns the executed notebook; a failing cell raises
    ``nbclient.exceptions.CellExecutionError`` naming the cell."""
    from nbclient import NotebookClient

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    if parameters:
        index = next((i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])), -1)
        source = "\n".join(f"{k} = {v!r}" for k, v in parameters.items())
        nb.cells.insert(index + 1, _code("# injected parameters\n" + source, "injected-parameters"))
    NotebookClient(nb, timeout=timeout, kernel_name=kernel_name,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    return nb
