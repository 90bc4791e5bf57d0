"""The eleven notebooks: committed clean and current, and each runs top to bottom headless on tiny data."""

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from common.notebooks import TEMPLATES, all_notebooks, execute_notebook
from conftest import jax_cache_environ, tiny_overrides, write_config

REPO = Path(__file__).resolve().parent.parent
# One budget: a headless run of every cell is the point here; budgets are covered by test_experiment.
TINY = tiny_overrides(experiment={"budgets": ["all"]})


@pytest.mark.parametrize("rel", sorted(all_notebooks()))
def test_committed_notebook_is_clean_and_current(rel):
    path = REPO / rel
    raw = json.loads(path.read_text())
    assert raw["metadata"]["kernelspec"]["name"] == "python3"
    for cell in raw["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None, f"{rel} has outputs"
    assert nbformat.reads(path.read_text(), as_version=4) == all_notebooks()[rel], (
        f"{rel} differs from its template: run `python -m common notebooks`")


def test_version_notebooks_are_thin():
    for rel, nb in all_notebooks().items():
        for cell in nb.cells:
            assert "def " not in cell.source and "class " not in cell.source, rel


@pytest.mark.parametrize("template", sorted(TEMPLATES.glob("*.py")), ids=lambda p: p.name)
def test_templates_are_python_and_nothing_touches_sys_path(template):
    ast.parse(template.read_text(), filename=str(template))  # what an editor and a linter read
    assert "sys.path" not in template.read_text()


def test_no_sys_path_lines_in_notebooks_or_benchmarks():
    files = [REPO / rel for rel in all_notebooks()] + sorted((REPO / "benchmarks").glob("*.py"))
    assert [f.name for f in files if "sys.path" in f.read_text()] == []


@pytest.fixture(scope="module")
def repo_copy(tmp_path_factory, pytestconfig):
    """A temporary copy of the repository (code, YAML, notebooks) and a tiny 3-type data set; the kernels started
    meanwhile share the session's compilation cache (conftest)."""
    from common.data.synth import generate_dataset

    tmp = tmp_path_factory.mktemp("nb")
    copy = tmp / "repo"
    ignore = shutil.ignore_patterns("__pycache__", "model_pretrain_*", "result_transfer_*")
    shutil.copytree(REPO / "common", copy / "common", ignore=ignore)
    for n in range(1, 6):
        shutil.copytree(REPO / f"Version{n}", copy / f"Version{n}", ignore=ignore)
    for name in ("install_library.ipynb", "requirements.txt", "requirements-nodeps.txt", "pyproject.toml", "README.md"):
        shutil.copy(REPO / name, copy / name)
    root = tmp / "data"
    generate_dataset(root, n_normal=6, n_abnormal=2, seconds=1.0, channels=2, seed=0,
                     types=("fan", "pump", "valve"), ids=("id_00", "id_02"), progress=False)
    overrides = dict(TINY, data={"root": str(root), "cache_dir": str(tmp / "cache"), "jobs": 1},
                     output={"scratch_dir": str(tmp / "scratch")})
    with pytest.MonkeyPatch.context() as patch:
        for key, value in jax_cache_environ(pytestconfig).items():
            patch.setenv(key, value)
        yield copy, overrides


@pytest.fixture(scope="module")
def shared_kernel(repo_copy):
    """A notebook client class whose notebooks all run, cell by cell, in one real kernel: its start (Python, Keras,
    JAX, TensorFlow) is paid once, not ten times. Before each notebook the kernel's namespace is emptied
    (``%reset -f``) and its working folder moved to the notebook's, as a kernel started there would have them."""
    import nbclient
    from jupyter_client import AsyncKernelManager
    from jupyter_core.utils import run_sync

    km = AsyncKernelManager(kernel_name="python3")

    class SharedKernelClient(nbclient.NotebookClient):
        def __init__(self, nb, **kw):
            super().__init__(nb, km=km, **kw)

        async def async_start_new_kernel_client(self):
            kc = await super().async_start_new_kernel_client()
            folder = self.resources["metadata"]["path"]
            reply = await kc.execute_interactive(f"import os; os.chdir({folder!r})\n%reset -f", store_history=False,
                                                 timeout=60)
            assert reply["content"]["status"] == "ok", reply["content"]
            return kc

        async def async_execute(self, reset_kc=False, **kwargs):
            try:
                return await super().async_execute(reset_kc=reset_kc, **kwargs)
            finally:
                if self.kc is not None:
                    self.kc.stop_channels()

        execute = run_sync(async_execute)

    yield SharedKernelClient
    if km.has_kernel:
        run_sync(km.shutdown_kernel)(now=True)


@pytest.fixture
def one_kernel(shared_kernel, monkeypatch):
    """`execute_notebook` runs as it is, in the module's shared kernel (the other tests start their own)."""
    import nbclient

    monkeypatch.setattr(nbclient, "NotebookClient", shared_kernel)


def outputs_text(nb) -> str:
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            parts.append(out.get("text", "") + str(out.get("data", {}).get("text/plain", "")))
    return "\n".join(parts)


@pytest.mark.parametrize("version", ["v1", "v2", "v3", "v4", "v5"])
def test_version_notebooks_run_headless(repo_copy, one_kernel, version):
    copy, overrides = repo_copy
    folder = copy / f"Version{version[1:]}"
    pre = execute_notebook(folder / f"make_pretrain_{version}.ipynb", parameters={"overrides": overrides})
    assert "trained" in outputs_text(pre)
    assert any(o.get("data", {}).get("image/png") for c in pre.cells for o in c.get("outputs", [])), "no loss plot"
    assert list((folder / f"model_pretrain_{version}").glob("*.keras"))
    post = execute_notebook(folder / f"transfer_pretrain_{version}.ipynb", parameters={"overrides": overrides})
    assert "results.csv" in outputs_text(post)
    results = pd.read_csv(folder / f"result_transfer_pretrain_{version}" / "results.csv")
    assert set(results["method"]) == {"scratch", "zero_shot", "transfer"}


def test_notebook_and_cli_give_the_same_results(repo_copy, pytestconfig):
    copy, overrides = repo_copy
    folder = copy / "Version1"
    if not (folder / "result_transfer_pretrain_v1" / "results.csv").is_file():
        execute_notebook(folder / "make_pretrain_v1.ipynb", parameters={"overrides": overrides})
        execute_notebook(folder / "transfer_pretrain_v1.ipynb", parameters={"overrides": overrides})
    # The notebook's settings; the models it pretrained (relative paths resolve against Version1/).
    cli_yaml = write_config(folder, overrides["data"]["root"], name="cli.yaml",
                            **{**overrides, "output": {"model_dir": "model_pretrain_v1", "result_dir": "cli_results",
                                                       "scratch_dir": str(copy / "cli_scratch")}})
    env = {k: v for k, v in os.environ.items() if k not in jax_cache_environ(pytestconfig)}  # compiles on its own
    run = subprocess.run([sys.executable, "-m", "common", "transfer", str(cli_yaml)], cwd=copy, env=env,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    cols = ["target_type", "target_id", "source", "method", "budget", "seed", "auc", "pauc", "n_train_clips"]
    nb_results = pd.read_csv(folder / "result_transfer_pretrain_v1" / "results.csv")[cols]
    cli_results = pd.read_csv(folder / "cli_results" / "results.csv")[cols]
    pd.testing.assert_frame_equal(nb_results, cli_results)


def test_install_notebook_runs(repo_copy):
    copy, _ = repo_copy
    # --dry-run: pip resolves the requirements and the package but installs nothing, so the shared venv's
    # editable install keeps pointing at this checkout, not at the temporary copy.
    nb = execute_notebook(copy / "install_library.ipynb", parameters={"pip_options": "-q --dry-run"})
    text = outputs_text(nb)
    assert "keras" in text and "Keras backend:" in text
