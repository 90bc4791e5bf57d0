"""What must run and what a run records: the plan of cells, their config hashes, sidecars and reuse checks.

A transfer run is a list of cells (`Cell`: target, source set, method, budget, seed) and the
pretraining jobs they need (`PretrainJob`). Each cell's row carries a ``config_hash`` of everything
that produced it: the config (less where files go and how many workers run), the target's exact
clips (path, size, mtime ...) and skipped clips, and for a method that starts from a pretrained
model that model's key. A stored row is reused only when its hash is the planned one and its model
file is there (`reusable`); a row model of another hash is kept in the store (``.store/models/``)
and comes back when its config runs again.
"""

from __future__ import annotations

import functools
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from common.methods.base import Cell, PretrainJob, data_identity, feature_sidecar, fit_identity, key_of, threshold_fields
from common.config import Config
from common.data.mimii import Machine
from common.errors import DataError, ModelError, ProjectError
from common.data.names import row_model_path
from common.methods.catalog import MODEL_PRETRAININGS, NO_SOURCE, is_zero_shot, method_definition, method_sections
from common.scoring.metrics import auc_pauc, decision_metrics
from common.models.saved import Sidecar, head_path, model_problem
from common.results import ROW_FIELDS
from common.data.versions import SourceSet
from common.experiment.store import STORE_DIR, ResultStore

# Keys of the data section that change where or how fast work runs, not its results. The effect of
# data.on_bad_file (which clips are left out) is in each row's hash through the clips themselves.
_NOT_HASHED = ("jobs", "cache_dir", "on_bad_file", "layout")  # layout: the target's data key names its files


@dataclass(frozen=True)
class Plan:
    """The cells a config asks for, in the order they run, with each cell's config hash; the pretraining they need."""

    cells: tuple[Cell, ...]
    hashes: dict[tuple, str]
    pretrain: tuple[PretrainJob, ...]


def target_identity(cfg: Config, train: Sequence[Path], eval_files: Sequence[Path], skipped: Iterable[str]) -> str:
    """Key of a target's clips (training pool, evaluation split) and the bad clips left out: part of its rows' hashes."""
    return key_of([data_identity(cfg, list(train) + list(eval_files)), sorted(skipped)])


@functools.lru_cache(maxsize=256)
def run_hash(cfg: Config, method: str | None = None) -> str:
    """Key of the config sections the rows of `method` depend on (less the data keys of `_NOT_HASHED`).

    The common sections, and those the method's catalogue row names (`common.methods.catalog`), and a fused
    method's parts (`method_definition`). Memoised: a Config is frozen, and a run asks for it twice per cell.
    """
    d = cfg.to_dict() | {"fit": fit_identity(cfg)}
    sections = ("feature", "model", "fit", "transfer", "eval") + method_sections(method)
    definition = method_definition(method)
    return key_of({k: v for k, v in d.items() if k in sections}
                  | {"data": {k: v for k, v in d["data"].items() if k not in _NOT_HASHED}}
                  | ({"method": definition} if definition else {}))


def cell_hash(cfg_hash: str, target_key: str, pretrained_key: str | None, *, pretrained: bool) -> str:
    """The config hash of a cell's row: the config, the target's data and (if it starts from one) the pretrained model."""
    return key_of([cfg_hash, target_key, pretrained_key]) if pretrained else key_of([cfg_hash, target_key])


def row_hash(cfg: Config, cell: Cell, target_key: str, pretrained_key: str | None) -> str:
    """The config hash of `cell`'s row: `cell_hash` of its method's sections, its target and what it starts from.

    A cell starts from something when it has a source set, or when its method has weights of its own without one
    (`common.methods.catalog.GENERAL`: `pretrained_key` is then theirs).
    """
    return cell_hash(run_hash(cfg, cell.method), target_key, pretrained_key,
                     pretrained=cell.source is not None or pretrained_key is not None)


def plan(cfg: Config, targets: Sequence[tuple[Machine, list[SourceSet]]], target_keys: Mapping[Machine, str],
         pretrained_keys: Mapping[tuple[str, str], str | None], methods: Mapping[str, str | None],
         draws: Mapping[Machine, Mapping[tuple, list[SourceSet]]] | None = None) -> Plan:
    """Every cell the config asks for, in run order, with its config hash; before any work.

    `methods` maps each method name (in table order) to what it pretrains (None: nothing);
    `pretrained_keys` maps (source label, pretraining) to the key of what it starts from (``("none",
    GENERAL)``: the package weights'). Per target, budget and seed, the methods without a source set
    (`common.methods.catalog.NO_SOURCE`) run first (source ``none``), then for each source set those that
    start from it. `draws` (v5, `common.data.selection.draws`) gives a
    target's sets per (budget, seed) where they depend on the budget draw; else every draw has `sets`.
    """
    cells, hashes = [], {}
    plain = [m for m, pre in methods.items() if pre in NO_SOURCE]
    jobs = {(s.label, pre): PretrainJob(s, pre, cfg.experiment.pretrain_seed)
            for _, sets in targets for s in sets for pre in methods.values() if pre in MODEL_PRETRAININGS}
    for target, sets in targets:
        for budget in cfg.experiment.budgets:
            for seed in cfg.experiment.seeds:
                unit = [Cell(target, None, m, budget, seed) for m in plain]
                chosen = sets if draws is None else draws[target][(budget, seed)]
                unit += [Cell(target, s, m, budget, seed) for s in chosen for m, pre in methods.items()
                         if pre not in NO_SOURCE]
                for cell in unit:
                    key = pretrained_keys.get((cell.source_label, methods[cell.method]))
                    hashes[cell.key] = row_hash(cfg, cell, target_keys[target], key)
                cells += unit
    return Plan(tuple(cells), hashes, tuple(jobs[k] for k in sorted(jobs)))


def no_source_sets(cfg: Config, machines: list[Machine]) -> DataError:
    """The error of a version with no source set among the selected machines."""
    return DataError(
        f"version {cfg.experiment.version} has no source sets among the machines {[m.name for m in machines]} "
        f"under {cfg.data.root}: v1/v3/v4 need other machine types, v2 other IDs of the same type"
        + (" (a DCASE 2023-2025 set has one section per machine type, so v2 has none there)"
           if cfg.experiment.version == "v2" and machines and all(m.id.startswith("section_") for m in machines) else "")
    )


def row_sidecar(cfg: Config, row: Mapping[str, Any], *, target: str, train_clips: Sequence[Path], n_channels: int,
                architecture: Mapping[str, Any], train_scores, **extra: Any) -> Sidecar:
    """The sidecar of a row's (scratch or transfer) model: the row, its clips, features and threshold."""
    return Sidecar(**{k: row[k] for k in ROW_FIELDS}, target=target, train_clips=[str(f) for f in train_clips], n_channels=n_channels,
                   features=feature_sidecar(cfg), architecture=dict(architecture),
                   train_scores=np.asarray(train_scores, dtype=float).tolist(),
                   **threshold_fields(cfg, train_scores), **extra)


# --- reuse: which stored rows stand, and their models --------------------------------------------------


def _model_hash(path: Path) -> str | None:
    """The config hash of the row a saved row model belongs to (None when the model or its sidecar is missing)."""
    try:
        return Sidecar.read(path).config_hash
    except ModelError:
        return None


def _kept_model_path(out: Path, path: Path, config_hash: str) -> Path:
    """Where the store keeps the row model at `path` of `config_hash` while another config's model is there."""
    return out / STORE_DIR / "models" / path.parent.name / f"{path.stem}__{config_hash}.keras"


def _move_model(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if head_path(src).is_file():
        os.replace(head_path(src), head_path(dst))
    os.replace(src, dst)
    os.replace(src.with_suffix(".json"), dst.with_suffix(".json"))


def set_aside(out: Path, path: Path, config_hash: str) -> None:
    """Move the row model at `path` into the store before a row of another `config_hash` replaces it."""
    old = _model_hash(path)
    if old is not None and old != config_hash:
        keep = _kept_model_path(out, path, old)
        if _model_hash(keep) == old:
            return  # already kept: the copy at `path` is the same model
        _move_model(path, keep)


def _has_model(out: Path, row: Mapping[str, Any]) -> bool:
    """Whether the model behind `row` is at `row_model_path`, brought back from the store if another config's is."""
    if is_zero_shot(row["method"]):
        return True  # the pretrained model, checked when the run starts
    path = row_model_path(out, row)
    if _model_hash(path) == row["config_hash"] and model_problem(path) is None:
        return True
    kept = _kept_model_path(out, path, row["config_hash"])
    if _model_hash(kept) != row["config_hash"] or model_problem(kept) is not None:
        return False
    set_aside(out, path, row["config_hash"])
    _move_model(kept, path)
    return True


def _drop_without_model(done: dict[tuple, tuple], out: Path) -> dict[tuple, tuple]:
    """The reusable rows less those whose model file is missing, damaged (`model_problem`) or of another run, with a
    warning."""
    kept = {k: v for k, v in done.items() if _has_model(out, v[0])}
    if missing := len(done) - len(kept):
        warnings.warn(
            f"{missing} row(s) of {out / 'results.csv'} have no model file of their run under {out / 'models'} "
            "(or a damaged one) and are recomputed (deployment needs each row's model). Keep the models folder with "
            "the results to silence this warning.",
            stacklevel=4,
        )
    return kept


def reusable(store: ResultStore, hashes: Mapping[tuple, str], out: Path) -> dict[tuple, tuple]:
    """The planned rows found intact in the store with their planned hash (and their model), with warnings.

    A planned cell stored only with another hash is recomputed; the old row stays in the store.
    """
    names = store.names()
    cells = {n.rsplit("__", 1)[0] for n in names}
    done, stale = {}, 0
    for key, config_hash in hashes.items():
        name = store.path(key, config_hash).name
        if name in names:
            if (found := store.load(key, config_hash)) is not None:  # a damaged entry warns itself
                done[key] = found
        elif name.rsplit("__", 1)[0] in cells:
            stale += 1
    if stale:
        warnings.warn(
            f"{stale} row(s) of {out / 'results.csv'} were computed with another config or other data "
            f"(their config_hash differs) and are recomputed; the old rows stay in {store.folder}. Use another "
            "output.result_dir per config to silence this warning.",
            stacklevel=3,
        )
    return _drop_without_model(done, out)


def legacy_row_problem(out: Path, row: Mapping[str, Any], scores: pd.DataFrame, *, max_fpr: float) -> str | None:
    """Why a row of a result folder without its store cannot be trusted (None: it is verified and may be imported).

    results.csv and scores.csv carry no checksum; what the run itself wrote beside them can vouch for
    a row: its AUC, pAUC, precision, recall and F1 must be those of its clip scores and labels in
    scores.csv (at `max_fpr` and the row's threshold), and a row with a model file of its own must
    match the results row its sidecar records (`common.results.ROW_FIELDS` and the threshold).
    """
    try:
        labels, values = scores["label"].to_numpy(), scores["score"].to_numpy(dtype=float)
        computed = dict(zip(("auc", "pauc"), auc_pauc(labels, values, max_fpr=max_fpr)))
        computed |= dict(zip(("precision", "recall", "f1"),
                             decision_metrics(labels, values, threshold=float(row["threshold"]))))
    except (ProjectError, ValueError, TypeError, KeyError) as exc:
        return f"its clip scores cannot be checked ({exc})"
    if differ := [k for k, v in computed.items() if not _same(row.get(k), v)]:
        return f"its {', '.join(differ)} differ from those of its clip scores in scores.csv"
    if is_zero_shot(row["method"]):
        return None  # no model of its own: the pretrained model's
    path = row_model_path(out, row)
    try:
        side = Sidecar.read(path).to_dict()
    except ModelError:
        return f"its model {path} (or its sidecar) is missing"
    if "auc" not in side or "config_hash" not in side:
        return f"the sidecar of its model {path} records no results row"
    if differ := [k for k in (*ROW_FIELDS, "threshold") if k in side and not _same(side[k], row.get(k))]:
        return f"its {', '.join(differ)} differ from those the sidecar of its model {path} records"
    return None


def _same(a: Any, b: Any) -> bool:
    """Equal, counting two NaNs (blank cells) as equal."""
    both_nan = isinstance(a, float) and isinstance(b, float) and np.isnan(a) and np.isnan(b)
    return both_nan or a == b


def warn_kept(store: ResultStore, hashes: Mapping[tuple, str], out: Path) -> None:
    """Say how many stored rows results.csv does not show (other cells or configs) and where they are."""
    others = len(store.names() - {store.path(k, h).name for k, h in hashes.items()})
    if others:
        warnings.warn(
            f"{others} other row(s) (other targets, sources, budgets, seeds or configs) are kept in {store.folder}; "
            f"{out / 'results.csv'} shows the {len(hashes)} row(s) of this config. Run their config again to show "
            "them (they are reused, not recomputed); use one output.result_dir per config to silence this warning.",
            stacklevel=3,
        )
