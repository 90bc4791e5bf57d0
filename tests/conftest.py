"""Shared fixtures and helpers: one seeded RNG, tiny synthetic data sets written as real WAV files, one config
writer (`make_config`), one in-process CLI runner (`run_main`) and one shared pretrain + transfer run (`pipeline`)."""

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

# Before any test module: the package sets Keras' backend default (JAX) when it is imported, and Keras reads its
# backend once, at its own import. A test module that imports keras first (test_embedding) would otherwise put
# every later test of its process on TensorFlow, and a subset such as `pytest tests/test_embedding.py
# tests/test_pinned_results.py` then failed the pin.
import common  # noqa: F401,E402

# Every test process compiles the same small Keras models again and again (each fit is a new jitted function): JAX's
# persistent compilation cache, one per session in its temporary folder, shared by both xdist workers, lets a
# compiled program be compiled once. Only the pytest processes (and the notebook kernels, test_notebooks) use it:
# they all run on every CPU. Processes started with fewer CPUs (Dask workers pin their cores) may compile other
# code (XLA sizes its parallel tasks by the CPUs), so the variable is not set for child processes here.
JAX_CACHE = {"jax_persistent_cache_min_compile_time_secs": 0.0, "jax_persistent_cache_min_entry_size_bytes": 0}


# The files that take longest (`--durations=0` summed per file, longest first). `make test` deals whole files to its two
# workers (--dist loadfile), each taking the next file when it runs dry: the long ones go first, so the short ones
# fill the gaps at the end. (xdist's own order, most tests first, left a long file of few tests for the end.)
LONGEST_FILES = ("test_train_backends.py", "test_executor.py", "test_untrusted.py", "test_families.py",
                 "test_hangs_and_messages.py", "test_notebooks.py", "test_cli_errors.py", "test_reliability.py",
                 "test_pinned_results.py", "test_demo.py", "test_report.py", "test_general_sound.py",
                 "test_report_families.py", "test_code_shape.py", "test_worlds.py", "test_embedding.py")


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: a file's tests keep their order


@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False  # the order of LONGEST_FILES
    if os.environ.get("JAX_COMPILATION_CACHE_DIR") or os.environ.get("KERAS_BACKEND") != "jax":
        return  # the caller's own cache, or another backend (test_train_backends' subprocess)
    worker = hasattr(config, "workerinput")
    if config.getoption("numprocesses", None) and not worker:
        return  # the xdist controller runs no test
    base = config._tmp_path_factory.getbasetemp()
    folder = (base.parent if worker else base) / "jax-cache"
    folder.mkdir(exist_ok=True)
    config.jax_cache_dir = folder
    import jax

    jax.config.update("jax_compilation_cache_dir", str(folder))
    for key, value in JAX_CACHE.items():
        jax.config.update(key, value)


def jax_cache_environ(config) -> dict[str, str]:
    """The environment variables that give a child process (on every CPU) this session's compilation cache."""
    folder = getattr(config, "jax_cache_dir", None)
    if folder is None:
        return {}
    return {"JAX_COMPILATION_CACHE_DIR": str(folder), "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
            "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(seed=440)


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory) -> Path:
    """Two types x two IDs, 8 normal + 3 abnormal clips of 2 s, 2 channels each (read-only for tests)."""
    from common.data.synth import generate_dataset

    root = tmp_path_factory.mktemp("tiny") / "Sample_data"
    generate_dataset(root, progress=False, **TINY_DATA)
    return root


TINY_DATA = {"snr": -6, "n_normal": 8, "n_abnormal": 3, "seconds": 2.0, "channels": 2, "seed": 0,
             "types": ("fan", "valve"), "ids": ("id_00", "id_02")}


TINY_SIZES = {
    "feature": {"n_mels": 16, "frames": 2, "n_fft": 512, "hop_length": 256},
    "model": {"hidden": [16], "bottleneck": 4},
    "fit": {"epochs": 2, "batch_size": 64},
    "transfer": {"epochs": 1},
    "experiment": {"budgets": [2, "all"], "seeds": [0]},
}


def tiny_overrides(**sections: dict) -> dict:
    """Config overrides that make a full pretrain + transfer run take seconds; `sections` update them."""
    out = {k: dict(v) for k, v in TINY_SIZES.items()}
    for name, values in sections.items():
        out.setdefault(name, {}).update(values)
    return out


def write_wav(path: Path, data: np.ndarray, sr: int = 16000, **kwargs) -> Path:
    """Write `data` [shape=(n,) or (n, channels)] as a WAV file (16-bit PCM unless `subtype` says otherwise)."""
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, data, sr, **{"subtype": "PCM_16", **kwargs})
    return path


def write_config(folder: Path, root: Path, version: str = "v1", *, name: str = "cfg.yaml", **overrides) -> Path:
    """Write a complete tiny Version YAML ``folder/name`` (not validated: it may be a bad config on purpose).

    Every setting is in the file, so ``python -m common`` in a subprocess sees the same config. Models,
    results, scratch store and feature cache default to ``folder/{models,results,scratch,cache}``;
    ``transfer.init_from`` defaults to ``output.model_dir``. `overrides` update single sections, e.g.
    ``fit={"epochs": 1}`` or ``data={"ids": ["id_00"]}``.
    """
    import yaml

    doc = tiny_overrides(experiment={"version": version},
                         data={"root": str(root), "cache_dir": str(folder / "cache"), "jobs": 1},
                         output={"model_dir": str(folder / "models"), "result_dir": str(folder / "results"),
                                 "scratch_dir": str(folder / "scratch")})
    for section, values in overrides.items():
        doc.setdefault(section, {}).update(values)
    doc["transfer"].setdefault("init_from", doc["output"]["model_dir"])
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def make_config(folder: Path, root: Path, version: str = "v1", *, name: str = "cfg.yaml", **overrides):
    """The Config of `write_config` (same arguments); its YAML is ``cfg.source``."""
    from common.config import load_config

    return load_config(write_config(folder, root, version, name=name, **overrides))


def run_main(argv: list[str]) -> tuple[int | str, str]:
    """Run ``python -m common ARGV`` in this process: (exit status, warnings + stdout + stderr).

    An exception escaping `main` gives the status ``"escaped"`` and its traceback in the output.
    """
    import contextlib
    import io
    import traceback
    import warnings

    from common.__main__ import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out), warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")  # pytest records warnings; the CLI would print them on stderr
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse
            code = exc.code
        except Exception:  # noqa: BLE001 - an escaped exception is what the CLI tests exist to catch
            code = "escaped"
            out.write(traceback.format_exc())
    return code, "".join(f"{w.category.__name__}: {w.message}\n" for w in seen) + out.getvalue()


@dataclass(frozen=True)
class Run:
    """One pretrain + transfer of v1 on the tiny set, shared by the whole session: read it, never write to it.

    ``repo/Version1`` holds its YAMLs (``make_pretrain_v1.yaml``, ``transfer_pretrain_v1.yaml``: what `export`
    looks for), ``models/``, ``results/`` and ``scratch/``; the feature cache is shared by every run. Tests that
    damage or extend results copy ``results/`` (and ``scratch/``) and keep ``init_from`` on ``models/``.
    """

    repo: Path
    cfg: object  # the transfer Config
    made: list  # what pretrain returned
    results: pd.DataFrame
    fitted: list  # every training set Trainer.fit was given, in call order (np.ndarray)
    fitted_kinds: list  # the type name of each (VectorSet: streamed from the cache; ndarray)

    @property
    def models(self) -> Path:
        return self.cfg.output.model_dir

    @property
    def cache(self) -> Path:
        return self.cfg.data.cache_dir

    @property
    def scratch(self) -> Path:
        return self.cfg.output.scratch_dir

    @property
    def scores(self) -> pd.DataFrame:
        return pd.read_csv(self.cfg.output.result_dir / "scores.csv", dtype={"budget": str})


@pytest.fixture(scope="session")
def pipeline(tiny_root, tmp_path_factory):
    """``pipeline(ids=None, budgets=(2, "all"))`` -> the shared `Run` of v1 on those machines, run once per key.

    ``ids=None``: every machine of `tiny_root` (4 targets); ``ids=("id_00",)``: fan/id_00 and valve/id_00.
    """
    from common.features.vectorset import VectorSet
    from common.experiment.grid import run_grid
    from common.experiment.pretrain import pretrain
    from common.models.train import Trainer

    base = tmp_path_factory.mktemp("pipeline")
    runs: dict[tuple, Run] = {}

    def get(ids: tuple[str, ...] | None = None, budgets: tuple = (2, "all")) -> Run:
        key = (ids, tuple(budgets))
        if key not in runs:
            repo = base / f"run{len(runs)}"
            data = {"cache_dir": str(base / "cache")} | ({"ids": list(ids)} if ids else {})
            sizes = {"data": data, "experiment": {"budgets": list(budgets), "seeds": [0]}}
            folder = repo / "Version1"
            make = make_config(folder, tiny_root, name="make_pretrain_v1.yaml", **sizes)
            cfg = make_config(folder, tiny_root, name="transfer_pretrain_v1.yaml", **sizes)
            fitted, kinds = [], []
            original = Trainer.fit

            def recording_fit(self, arch, weights, x, **kw):
                fitted.append(x.read() if isinstance(x, VectorSet) else np.array(x))
                kinds.append(type(x).__name__)
                return original(self, arch, weights, x, **kw)

            Trainer.fit = recording_fit
            try:
                made = pretrain(make, progress=False)
                results = run_grid(cfg, progress=False)
            finally:
                Trainer.fit = original
            runs[key] = Run(repo, cfg, made, results, fitted, kinds)
        return runs[key]

    return get


# The official evaluators' README result blocks and the 2020 baseline README's result table, copied verbatim.
EVALUATORS = Path(__file__).resolve().parent / "data" / "evaluators"


def evaluator_blocks() -> list[tuple[int, str, pd.DataFrame]]:
    """(year, system, per-type table) of every ``_seed13711_official_score_paper.csv`` block in tests/data/evaluators:
    the blocks of nttcslab/dcase2023_task2_evaluator README.md @ 3aa8a9f, nttcslab/dcase2024_task2_evaluator
    README.md @ b5d17f6 and the nttcslab/dcase2025_task2_evaluator README (a stored copy), copied verbatim."""
    out = []
    for path in sorted(EVALUATORS.glob("dcase*_seed13711_official_score_paper.csv")):
        block = pd.read_csv(path)
        for system, rows in block.groupby("System", sort=True):
            out.append((int(path.name[5:9]), system, rows.set_index("metric")))
    return out
