"""Run one experiment version: pretrain a model per source set, then score every target three ways.

For each target machine, budget and seed: ``scratch`` (random init, target budget only),
``zero_shot`` (the pretrained model as is) and ``transfer`` (the pretrained model fine-tuned on the
target budget), all on the target's evaluation split. Finished work is kept: an up-to-date
pretrained model is never retrained, scratch results are shared by all versions, and results
already in ``results.csv`` for the same config are reused, so an interrupted run resumes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .config import Config, save_config
from .data import Machine, budget_subset
from .errors import DataError, ModelError
from .features import feature_key
from .io import atomic_write_text
from .metrics import auc_pauc
from .model import architecture, load_model, read_sidecar, save_model
from .prepare import MachineData, load_machine, select_machines
from .results import RESULT_COLUMNS, SCORE_COLUMNS, read_results, write_results, write_summary
from .scoring import clip_scores
from .sources import SourceSet, all_source_sets, source_sets
from .train import Trainer

METHODS = ("scratch", "zero_shot", "transfer")


def _hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _feature_sidecar(cfg: Config) -> dict[str, Any]:
    return {**cfg.feature.kwargs(), "channel": cfg.data.channel, "sample_rate": cfg.data.sample_rate}


def _data_identity(cfg: Config, files: Iterable[Path]) -> str:
    """Key of the exact clips (path, size, mtime) and feature parameters a result is computed from."""
    return feature_key(sorted(str(f) for f in files), channel=cfg.data.channel, sr=cfg.data.sample_rate,
                       **cfg.feature.kwargs())


class _Machines:
    """Each machine's split and features, loaded on first use."""

    def __init__(self, cfg: Config, *, progress: bool) -> None:
        self.cfg, self.progress, self._data = cfg, progress, {}

    def __getitem__(self, machine: Machine) -> MachineData:
        if machine not in self._data:
            self._data[machine] = load_machine(self.cfg, machine, progress=self.progress)
        return self._data[machine]


@dataclass(frozen=True)
class Pretrained:
    """A pretrained model on disk and whether this call trained it or found it up to date."""

    source: SourceSet
    path: Path
    trained: bool


def model_path(cfg: Config, source: SourceSet) -> Path:
    """Where the pretrained model of `source` lives."""
    return cfg.output.model_dir / f"{source.label}.keras"


def pretrain(cfg: Config, *, progress: bool = True) -> list[Pretrained]:
    """Train (or find up to date) one model per distinct source set of the config's version.

    Each model learns from the training pools of all its source machines (never evaluation clips).
    Its sidecar records features, architecture, sources, budget, seed and a key of all of them;
    a model whose key matches is reused.
    """
    machines = select_machines(cfg)
    version = cfg.experiment.version
    sets = all_source_sets(version, machines)
    if not sets:
        raise DataError(
            f"version {version} has no source sets among the machines {[m.name for m in machines]} "
            f"under {cfg.data.root}: v1/v3/v4 need other machine types, v2 other IDs of the same type"
        )
    data = _Machines(cfg, progress=progress)
    trainer = Trainer()
    done = []
    for source in tqdm(sets, desc=f"pretrain {version}", disable=not progress, unit="model"):
        path = model_path(cfg, source)
        train_files = [f for m in source.machines for f in data[m].split.train]
        key = _hash({"data": _data_identity(cfg, train_files), "model": cfg.to_dict()["model"],
                     "fit": cfg.to_dict()["fit"], "seed": cfg.experiment.pretrain_seed})
        if path.is_file() and path.with_suffix(".json").is_file() and read_sidecar(path).get("key") == key:
            done.append(Pretrained(source, path, trained=False))
            continue
        x = np.concatenate([data[m].vectors(data[m].split.train)[0] for m in source.machines])
        arch = architecture(x.shape[1], hidden=cfg.model.hidden, bottleneck=cfg.model.bottleneck,
                            batch_norm=cfg.model.batch_norm)
        seed = cfg.experiment.pretrain_seed
        fit = trainer.fit(arch, trainer.init_weights(arch, seed=seed), x, epochs=cfg.fit.epochs,
                          batch_size=cfg.fit.batch_size, learning_rate=cfg.fit.learning_rate,
                          validation_split=cfg.fit.validation_split, shuffle=cfg.fit.shuffle, seed=seed)
        sidecar = {
            "key": key, "version": version, "source": source.label,
            "sources": [m.name for m in source.machines], "budget": "all",
            "n_train_clips": len(train_files), "n_train_vectors": int(len(x)), "seed": seed,
            "features": _feature_sidecar(cfg), "architecture": arch, "fit": cfg.to_dict()["fit"],
            "final_loss": fit.history["loss"][-1], "train_seconds": round(fit.seconds, 3),
        }
        save_model(trainer.with_weights(arch, fit.weights), path, sidecar=sidecar)
        atomic_write_text(path.with_suffix(".history.csv"), pd.DataFrame(fit.history).rename_axis("epoch").to_csv())
        done.append(Pretrained(source, path, trained=True))
    save_config(cfg, cfg.output.model_dir / "config.yaml")
    return done


def _score(trainer: Trainer, arch, weights, md: MachineData, eval_x, eval_offsets, max_fpr):
    scores = clip_scores(trainer.with_weights(arch, weights), eval_x, eval_offsets)
    auc, pauc = auc_pauc(md.split.eval_labels, scores, max_fpr=max_fpr, name=md.machine.name)
    return scores, auc, pauc


def _scratch(cfg: Config, trainer: Trainer, md: MachineData, budget, seed, x, arch, eval_x, eval_offsets):
    """Scratch result of (target, budget, seed): read from the shared store or computed and stored."""
    train_files = budget_subset(md.split.train, budget, seed=seed)
    key = _hash({"train": _data_identity(cfg, train_files), "eval": _data_identity(cfg, md.split.eval_files),
                 "model": cfg.to_dict()["model"], "fit": cfg.to_dict()["fit"], "seed": seed,
                 "max_fpr": cfg.eval.max_fpr})
    store = cfg.output.scratch_dir / f"{md.machine.type}_{md.machine.id}_{budget}_{seed}_{key}.json"
    if store.is_file():
        return json.loads(store.read_text())
    fit = trainer.fit(arch, trainer.init_weights(arch, seed=seed), x, epochs=cfg.fit.epochs,
                      batch_size=cfg.fit.batch_size, learning_rate=cfg.fit.learning_rate,
                      validation_split=cfg.fit.validation_split, shuffle=cfg.fit.shuffle, seed=seed)
    scores, auc, pauc = _score(trainer, arch, fit.weights, md, eval_x, eval_offsets, cfg.eval.max_fpr)
    result = {"key": key, "auc": auc, "pauc": pauc, "scores": scores.tolist(), "train_seconds": fit.seconds}
    atomic_write_text(store, json.dumps(result))
    return result


def transfer(cfg: Config, *, progress: bool = True) -> pd.DataFrame:
    """Score scratch, zero_shot and transfer for every target, source, budget and seed; write the results.

    Writes ``results.csv`` (one row per target, source, method, budget, seed), ``scores.csv`` (every
    evaluation clip's score behind each row), ``summary.csv`` and the resolved ``config.yaml`` into
    ``output.result_dir``, rewriting them atomically after each target so an interrupted run resumes.

    Raises
    ------
    ModelError
        A needed pretrained model is missing or was trained on other features.
    """
    machines = select_machines(cfg)
    version = cfg.experiment.version
    out = cfg.output.result_dir
    model_dir = Path(cfg.transfer.init_from) if cfg.transfer.init_from != "scratch" else None
    run_hash = _hash({k: v for k, v in cfg.to_dict().items() if k in ("feature", "model", "fit", "transfer", "eval")}
                     | {"data": {k: v for k, v in cfg.to_dict()["data"].items() if k not in ("jobs", "cache_dir")}})
    previous = read_results(out)
    rows: list[dict[str, Any]] = []
    scores: list[pd.DataFrame] = []
    data = _Machines(cfg, progress=progress)
    trainer = Trainer()
    save_config(cfg, out / "config.yaml")
    targets = [(t, source_sets(version, t, machines)) for t in machines]
    n_units = sum(len(s) for _, s in targets) * len(cfg.experiment.budgets) * len(cfg.experiment.seeds)
    bar = tqdm(total=n_units, desc=f"transfer {version}", disable=not progress, unit="run")
    for target, sets in targets:
        if not sets:
            continue
        md = data[target]
        eval_x, eval_offsets = md.vectors(md.split.eval_files)
        pretrained = {s.label: _load_pretrained(model_dir, s, cfg) for s in sets}
        zero_shot: dict[str, tuple] = {}
        for budget in cfg.experiment.budgets:
            for seed in cfg.experiment.seeds:
                train_files = budget_subset(md.split.train, budget, seed=seed)
                x = None
                base = {"version": version, "target_type": target.type, "target_id": target.id,
                        "budget": str(budget), "seed": seed, "n_eval_clips": len(md.split.eval_files)}

                def reuse(source: str, method: str, hash_: str) -> bool:
                    old = previous.get((target.type, target.id, source, method, str(budget), seed))
                    if old is None or old[0]["config_hash"] != hash_:
                        return False
                    rows.append(old[0])
                    scores.append(old[1])
                    return True

                def add(source: str, method: str, hash_: str, clip_scores_, auc, pauc, n_train, seconds):
                    rows.append({**base, "source": source, "method": method, "auc": auc, "pauc": pauc,
                                 "n_train_clips": n_train, "train_seconds": round(float(seconds), 3),
                                 "config_hash": hash_})
                    scores.append(pd.DataFrame({
                        "version": version, "target_type": target.type, "target_id": target.id,
                        "source": source, "method": method, "budget": str(budget), "seed": seed,
                        "path": [str(f) for f in md.split.eval_files], "label": md.split.eval_labels,
                        "score": np.asarray(clip_scores_, dtype=float)}))

                if not reuse("none", "scratch", run_hash):
                    x = md.vectors(train_files)[0]
                    arch = architecture(x.shape[1], hidden=cfg.model.hidden, bottleneck=cfg.model.bottleneck,
                                        batch_norm=cfg.model.batch_norm)
                    r = _scratch(cfg, trainer, md, budget, seed, x, arch, eval_x, eval_offsets)
                    add("none", "scratch", run_hash, r["scores"], r["auc"], r["pauc"], len(train_files), r["train_seconds"])
                for s in sets:
                    weights, side = pretrained[s.label]
                    h = _hash([run_hash, side["key"]])
                    if not reuse(s.label, "zero_shot", h):
                        if s.label not in zero_shot:
                            zero_shot[s.label] = _score(trainer, side["architecture"], weights, md, eval_x,
                                                        eval_offsets, cfg.eval.max_fpr)
                        add(s.label, "zero_shot", h, *zero_shot[s.label], 0, 0.0)
                    if not reuse(s.label, "transfer", h):
                        if x is None:
                            x = md.vectors(train_files)[0]
                        fit = trainer.fit(side["architecture"], weights, x, epochs=cfg.transfer.epochs,
                                          batch_size=cfg.fit.batch_size, learning_rate=cfg.transfer.learning_rate,
                                          validation_split=cfg.fit.validation_split, shuffle=cfg.fit.shuffle,
                                          seed=seed, freeze=cfg.transfer.freeze)
                        add(s.label, "transfer", h,
                            *_score(trainer, side["architecture"], fit.weights, md, eval_x, eval_offsets,
                                    cfg.eval.max_fpr),
                            len(train_files), fit.seconds)
                    bar.update(1)
        write_results(out, rows, scores)
    bar.close()
    results = write_results(out, rows, scores)
    write_summary(out, results)
    return results


def _load_pretrained(model_dir: Path | None, source: SourceSet, cfg: Config) -> tuple[list[np.ndarray], dict]:
    if model_dir is None:
        raise ModelError("transfer.init_from is 'scratch': transfer needs a folder of pretrained models")
    path = model_dir / f"{source.label}.keras"
    if not path.is_file():
        raise ModelError(
            f"pretrained model {path} not found: run `python -m common pretrain` with the make_pretrain "
            f"YAML of {cfg.experiment.version} first"
        )
    model, sidecar = load_model(path, features=_feature_sidecar(cfg))
    return model.get_weights(), sidecar
