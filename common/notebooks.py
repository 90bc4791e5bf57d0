"""Write the nine notebooks from one template, and run a notebook headless (nbclient) with parameters.

The Version notebooks differ only in their version, so they are generated here rather than edited
by hand: ``python -m common notebooks`` rewrites them; a test checks the committed ones are current.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import nbformat
from nbformat import NotebookNode
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

KERNEL = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}

VERSION_TEXT = {
    "v1": ("one other machine type",
           "For every target machine (type + ID), a model is pretrained on **one other machine type** "
           "(all its IDs' training clips), one model per type: a fan target gets models pretrained on "
           "pump, on slider and on valve."),
    "v2": ("the other IDs of the same type",
           "For every target machine, a model is pretrained on the **other IDs of the same type**: "
           "fan/id_00 gets a model pretrained on fan/id_02, id_04 and id_06. The target's own ID never "
           "enters pretraining."),
    "v3": ("two other machine types",
           "For every target machine, models are pretrained on **each pair of two other machine types**: "
           "a fan target gets pump+slider, pump+valve and slider+valve."),
    "v4": ("all three other machine types",
           "For every target machine, one model is pretrained on **all three other machine types together** "
           "(12 machines on full MIMII): a fan target gets pump+slider+valve."),
}

SETUP = (
    "import sys\nfrom pathlib import Path\n\n"
    "sys.path.insert(0, str(Path.cwd().parent))  # the repository root, home of the shared package `common`\n\n"
    "from common.config import load_config\n"
)


def _md(text: str) -> NotebookNode:
    return new_markdown_cell(text)


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


def pretrain_notebook(version: str) -> NotebookNode:
    """make_pretrain_vN.ipynb: config -> machines -> source sets -> pretraining -> loss curves."""
    n, (short, text) = version[1:], VERSION_TEXT[version]
    return _notebook([
        _md(f"# Version {n}, step 1: pretrain on {short}\n\n{text}\n\n"
            f"This notebook trains one autoencoder per distinct source set and saves it to `model_pretrain_{version}/` "
            f"(`.keras` + a JSON sidecar with its features, sources and seed). Models that are already up to date are "
            f"not retrained. Next: `transfer_pretrain_{version}.ipynb`. Hyperparameters: edit `make_pretrain_{version}.yaml` "
            "(shared defaults in `../common/defaults.yaml`)."),
        _code(f'config_path = "make_pretrain_{version}.yaml"\noverrides = {{}}  # e.g. {{"fit": {{"epochs": 100}}}}',
              "parameters"),
        _md("## Config"),
        _code(SETUP + "\ncfg = load_config(config_path, overrides=overrides)\nprint(cfg.to_yaml())"),
        _md("## Data\n\nMachines found under the data root, with the MIMII baseline split: all abnormal clips and as many "
            "normal clips form the evaluation set; the other normal clips are the training pool."),
        _code("from common.prepare import machines_table, sources_table\n\nmachines_table(cfg)"),
        _md("## Sources\n\nWhich machines pretrain the models of each target in this version."),
        _code("sources = sources_table(cfg)\nprint(f\"{sources.source.nunique()} pretrained models serve {sources.target.nunique()} targets\")\nsources"),
        _md("## Train\n\nFeatures are extracted once and cached; each model trains on the training pools of its sources."),
        _code("from common.experiment import pretrain\n\nmade = pretrain(cfg)\n"
              "for p in made:\n    print(\"trained   \" if p.trained else \"up to date\", p.path.name)"),
        _code("from common.plots import loss_curves, read_histories\n\nloss_curves(read_histories(cfg.output.model_dir))"),
    ])


def transfer_notebook(version: str) -> NotebookNode:
    """transfer_pretrain_vN.ipynb: config -> scratch / zero-shot / transfer per target -> tables and plots."""
    n, (short, text) = version[1:], VERSION_TEXT[version]
    return _notebook([
        _md(f"# Version {n}, step 2: transfer from {short}\n\n{text}\n\n"
            "For every target machine, budget (number of target training clips) and seed, three methods are scored "
            "on the target's evaluation split: **scratch** (trained on the target budget only), **zero_shot** "
            "(the pretrained model as is) and **transfer** (the pretrained model fine-tuned on the target budget). "
            f"Run `make_pretrain_{version}.ipynb` first. Results go to `result_transfer_pretrain_{version}/`."),
        _code(f'config_path = "transfer_pretrain_{version}.yaml"\noverrides = {{}}  # e.g. {{"experiment": {{"budgets": [8, "all"]}}}}',
              "parameters"),
        _md("## Config"),
        _code(SETUP + "\ncfg = load_config(config_path, overrides=overrides)\nprint(cfg.to_yaml())"),
        _md("## Data"),
        _code("from common.prepare import machines_table\n\nmachines_table(cfg)"),
        _md("## Train and score\n\nScratch results are shared by all versions; rows already in `results.csv` for "
            "the same config are reused, so an interrupted run resumes."),
        _code("from common.experiment import transfer\n\nresults = transfer(cfg)\n"
              "print(f\"{len(results)} runs -> {cfg.output.result_dir / 'results.csv'}\")"),
        _md("## Results\n\nMean AUC and pAUC over targets per method and budget; `*_minus_scratch` pairs each run with "
            "scratch on the same target, budget and seed."),
        _code("from common.results import summarize\n\nsummarize(results)"),
        _code("from common.results import per_target\n\nper_target(results)"),
        _code("from common.plots import auc_by_target\n\nauc_by_target(results, budget=str(cfg.experiment.budgets[-1]))"),
        _md("## Report across versions\n\nStatistics over every version with results so far: mean transfer minus scratch "
            "with a 95 % bootstrap interval over targets, counts of machines improved / worsened, and a paired Wilcoxon "
            "test; plots and `report.md` go to `../report/`."),
        _code("from IPython.display import Markdown\nfrom common.report import write_report\n\n"
              "report = write_report(Path.cwd().parent)\nMarkdown(report.read_text())"),
    ])


def install_notebook() -> NotebookNode:
    """install_library.ipynb: install the requirements into the running kernel and check them."""
    return _notebook([
        _md("# Install the libraries\n\nRun this notebook once per Python environment. It installs `requirements.txt` "
            "into the running kernel, then checks the imports and whether a GPU is visible to Keras. Restart the "
            "kernel after a first install so new packages are picked up. Then open `Version1/make_pretrain_v1.ipynb`."),
        _code("%pip install -q -r requirements.txt"),
        _md("## Check the imports"),
        _code("from common.environment import accelerators, package_versions\n\n"
              "for name, version in package_versions().items():\n    print(f\"{name:<12} {version}\")"),
        _md("## Keras backend and GPU\n\nTensorFlow is the default backend; start Jupyter with `KERAS_BACKEND=jax` to use "
            "JAX. An empty list means training runs on the CPU."),
        _code("backend, gpus = accelerators()\nprint(f\"Keras backend: {backend}; GPUs visible: {gpus or 'none (CPU only)'}\")"),
    ])


def all_notebooks() -> dict[str, NotebookNode]:
    """Every notebook of the repository, keyed by its path relative to the repository root."""
    out = {"install_library.ipynb": install_notebook()}
    for version in VERSION_TEXT:
        folder = f"Version{version[1:]}"
        out[f"{folder}/make_pretrain_{version}.ipynb"] = pretrain_notebook(version)
        out[f"{folder}/transfer_pretrain_{version}.ipynb"] = transfer_notebook(version)
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
