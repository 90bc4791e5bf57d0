"""Run one experiment version: pretrain a model per source set, then score every target three ways.

For each target machine, budget and seed: ``scratch`` (random init, target budget only),
``zero_shot`` (the pretrained model as is) and ``transfer`` (the pretrained model fine-tuned on the
target budget), all on the target's evaluation split. Finished work is kept: an up-to-date
pretrained model is never retrained, scratch results are shared by all versions, and every finished
result row is persisted at once (`common.results.save_row`), so a run killed at any point resumes
where it stopped when the same command is run again.

Each row carries a ``config_hash`` of everything that produced it: the config (less where files go
and how many workers run), the target's exact clips (path, size, mtime) and skipped clips, and for
zero_shot / transfer the pretrained model's key. Rows of an earlier run with another hash are
recomputed, with a warning; they are never mixed with new ones.

Every model gets a decision threshold fitted on the scores of its *own* training normal clips
(`common.threshold`, ``eval.threshold``): a pretrained model on its source clips, scratch and
transfer models on the target budget; zero_shot uses the pretrained model's. Each row reports it
with the precision / recall / F1 of ``score > threshold`` on the evaluation split. The scratch and
transfer model of every row is saved beside the results (`row_model_path`, with a sidecar of its
features, sources, budget, seed, threshold and AUC), so the best one can be exported and used on
new recordings (`common.deploy`); a row whose model file is missing is recomputed.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .config import Config, save_config
from .data import Machine, budget_subset
from .errors import DataError, ModelError
from .features import feature_key
from .io import atomic_write_text
from .metrics import auc_pauc, decision_metrics
from .model import architecture, check_features, copy_model, keras, load_model, read_sidecar, save_model
from .prepare import CheckedMachine, MachineData, check_machine, load_machine, select_machines, write_skipped
from .results import SCORE_COLUMNS, clear_rows, read_results, save_row, write_results, write_summary
from .scoring import clip_scores
from .sources import SourceSet, all_source_sets, source_sets
from .threshold import fit_threshold
from .train import Trainer, VectorSet

METHODS = ("scratch", "zero_shot", "transfer")

# Keys of the data section that change where or how fast work runs, not its results. The effect of
# data.on_bad_file (which clips are left out) is in each row's hash through the clips themselves.
_NOT_HASHED = ("jobs", "cache_dir", "on_bad_file")


def _fit_identity(cfg: Config) -> dict[str, Any]:
    """The fit settings with the backend Keras actually runs on (``auto`` resolved): part of every key."""
    return cfg.to_dict()["fit"] | {"backend": keras.backend.backend()}


def _hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _feature_sidecar(cfg: Config) -> dict[str, Any]:
    return {**cfg.feature.kwargs(), "channel": cfg.data.channel, "sample_rate": cfg.data.sample_rate}


def _threshold_fields(cfg: Config, train_scores) -> dict[str, Any]:
    """The decision threshold of a model from its training clips' scores, as stored in sidecars."""
    method, level = cfg.eval.threshold_spec()
    return {"threshold": fit_threshold(train_scores, method=method, level=level), "threshold_method": method,
            "threshold_level": level, "n_threshold_clips": len(train_scores)}


def row_model_path(out: Path, row: Mapping[str, Any]) -> Path:
    """Where the model of a results.csv `row` (scratch or transfer) is saved under the result folder `out`.

    ``out/models/<target_type>_<target_id>/<method>_<source>_budget-<budget>_seed-<seed>.keras``
    (+ ``.json`` sidecar). A zero_shot row has no file of its own: its model is the pretrained one.
    """
    name = f"{row['method']}_{row['source']}_budget-{row['budget']}_seed-{row['seed']}.keras"
    return Path(out) / "models" / f"{row['target_type']}_{row['target_id']}" / name


def _has_model(out: Path, row: Mapping[str, Any]) -> bool:
    """Whether the model behind `row` is on disk, saved by the run that computed the row."""
    if row["method"] == "zero_shot":
        return True  # the pretrained model, checked when the run starts
    path = row_model_path(out, row)
    try:
        return read_sidecar(path).get("config_hash") == row["config_hash"]
    except ModelError:
        return False


def _data_identity(cfg: Config, files: Iterable[Path]) -> str:
    """Key of the exact clips (path, size, mtime) and feature parameters a result is computed from."""
    return feature_key(sorted(str(f) for f in files), channel=cfg.data.channel, sr=cfg.data.sample_rate,
                       **cfg.feature.kwargs())


class _Machines:
    """Each machine's checked split and features, each loaded on first use."""

    def __init__(self, cfg: Config, *, progress: bool) -> None:
        self.cfg, self.progress = cfg, progress
        self._checked: dict[Machine, CheckedMachine] = {}
        self._data: dict[Machine, MachineData] = {}

    def checked(self, machine: Machine) -> CheckedMachine:
        if machine not in self._checked:
            self._checked[machine] = check_machine(self.cfg, machine, progress=self.progress)
        return self._checked[machine]

    def __getitem__(self, machine: Machine) -> MachineData:
        if machine not in self._data:
            self._data[machine] = load_machine(self.cfg, machine, progress=self.progress,
                                               checked=self.checked(machine))
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
    Its sidecar records features, architecture, sources, budget, seed, skipped clips and a key of
    the exact training clips and settings; a model whose key matches is reused. Each model is
    saved atomically the moment it is trained, so a killed run resumes with the next one.
    ``model_dir/skipped.csv`` lists the bad clips left out under ``data.on_bad_file: skip``.
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
    used = sorted({m for s in sets for m in s.machines})
    write_skipped(cfg.output.model_dir, {m: data.checked(m).skipped for m in used})
    trainer = Trainer(in_memory_bytes=cfg.fit.max_in_memory_mb * 2**20)
    done = []
    for source in tqdm(sets, desc=f"pretrain {version}", disable=not progress, unit="model"):
        path = model_path(cfg, source)
        train_files = [f for m in source.machines for f in data.checked(m).split.train]
        key = _hash({"data": _data_identity(cfg, train_files), "model": cfg.to_dict()["model"],
                     "fit": _fit_identity(cfg), "seed": cfg.experiment.pretrain_seed})
        if path.is_file() and path.with_suffix(".json").is_file() and read_sidecar(path).get("key") == key:
            _update_threshold(cfg, path, source, data)
            done.append(Pretrained(source, path, trained=False))
            continue
        # Over fit.max_in_memory_mb, streamed from the memory-mapped feature caches (never concatenated).
        x = VectorSet.from_clips([(data[m].features, data[m].split.train) for m in source.machines])
        arch = architecture(x.dim, hidden=cfg.model.hidden, bottleneck=cfg.model.bottleneck,
                            batch_norm=cfg.model.batch_norm)
        seed = cfg.experiment.pretrain_seed
        fit = trainer.fit(arch, trainer.init_weights(arch, seed=seed), x, epochs=cfg.fit.epochs,
                          batch_size=cfg.fit.batch_size, learning_rate=cfg.fit.learning_rate,
                          validation_split=cfg.fit.validation_split, shuffle=cfg.fit.shuffle, seed=seed)
        train_scores = _train_scores(trainer.with_weights(arch, fit.weights), [data[m] for m in source.machines])
        skipped = sorted(p for m in source.machines for p in data.checked(m).skipped)
        sidecar = {
            "key": key, "version": version, "source": source.label,
            "sources": [m.name for m in source.machines], "budget": "all",
            "n_train_clips": len(train_files), "n_train_vectors": int(len(x)), "seed": seed,
            "n_skipped_clips": len(skipped), "skipped_clips": skipped,
            "features": _feature_sidecar(cfg), "architecture": arch, "fit": cfg.to_dict()["fit"],
            "final_loss": fit.history["loss"][-1], "train_seconds": round(fit.seconds, 3), "streamed": fit.streamed,
            "train_scores": train_scores.tolist(), **_threshold_fields(cfg, train_scores),
        }
        save_model(trainer.with_weights(arch, fit.weights), path, sidecar=sidecar)
        atomic_write_text(path.with_suffix(".history.csv"), pd.DataFrame(fit.history).rename_axis("epoch").to_csv())
        done.append(Pretrained(source, path, trained=True))
    save_config(cfg, cfg.output.model_dir / "config.yaml")
    return done


SCORE_CLIPS = 64  # clips scored at once (64 x 309 vectors = 25 MB; scoring holds ~4 copies)


def _train_scores(model, machines: list[MachineData]) -> np.ndarray:
    """Scores of the training clips of `machines`, in order, reading a few clips at a time.

    Read with `VectorSet` (from the cache files, not through their memory maps), so the pages of
    a many-machine source set never pile up in the process's resident set.
    """
    scores = []
    for md in machines:
        clips = md.split.train
        for i in range(0, len(clips), SCORE_CLIPS):
            part = VectorSet.from_clips([(md.features, clips[i:i + SCORE_CLIPS])])
            scores.append(clip_scores(model, part.read(), part.clip_offsets))
            part.close()
    return np.concatenate(scores) if scores else np.zeros(0)


def _update_threshold(cfg: Config, path: Path, source: SourceSet, data: _Machines) -> None:
    """Give an up-to-date pretrained model the threshold the config asks for, without retraining it.

    Models saved before thresholds existed get the scores of their training clips first.
    """
    sidecar = read_sidecar(path)
    if "train_scores" not in sidecar:
        model, _ = load_model(path, features=_feature_sidecar(cfg))
        sidecar["train_scores"] = _train_scores(model, [data[m] for m in source.machines]).tolist()
    fields = _threshold_fields(cfg, sidecar["train_scores"])
    if any(sidecar.get(k) != v for k, v in fields.items()):
        atomic_write_text(path.with_suffix(".json"), json.dumps(sidecar | fields, indent=2, sort_keys=True))


def _score(trainer: Trainer, arch, weights, md: MachineData, eval_x, eval_offsets, max_fpr):
    scores = clip_scores(trainer.with_weights(arch, weights), eval_x, eval_offsets)
    auc, pauc = auc_pauc(md.split.eval_labels, scores, max_fpr=max_fpr, name=md.machine.name)
    return scores, auc, pauc


def _scratch(cfg: Config, trainer: Trainer, md: MachineData, budget, seed, train, arch, eval_x, eval_offsets):
    """Scratch result of (target, budget, seed): read from the shared store or computed and stored.

    The store holds ``<name>.json`` (eval scores, AUC, the training clips' scores) and the model
    ``<name>.model.keras`` (+ sidecar); an entry without its model or training scores (an older
    run's) is computed again. `train` is the budget's (vectors, offsets).
    """
    train_files = budget_subset(md.split.train, budget, seed=seed)
    key = _hash({"train": _data_identity(cfg, train_files), "eval": _data_identity(cfg, md.split.eval_files),
                 "model": cfg.to_dict()["model"], "fit": _fit_identity(cfg), "seed": seed,
                 "max_fpr": cfg.eval.max_fpr})
    store = cfg.output.scratch_dir / f"{md.machine.type}_{md.machine.id}_{budget}_{seed}_{key}.json"
    model_file = store.with_suffix(".model.keras")
    if store.is_file() and model_file.is_file() and model_file.with_suffix(".json").is_file():
        result = json.loads(store.read_text())
        if "train_scores" in result:
            return result | {"model": model_file}
    fit = trainer.fit(arch, trainer.init_weights(arch, seed=seed), train[0], epochs=cfg.fit.epochs,
                      batch_size=cfg.fit.batch_size, learning_rate=cfg.fit.learning_rate,
                      validation_split=cfg.fit.validation_split, shuffle=cfg.fit.shuffle, seed=seed)
    train_scores = clip_scores(trainer.with_weights(arch, fit.weights), *train)
    scores, auc, pauc = _score(trainer, arch, fit.weights, md, eval_x, eval_offsets, cfg.eval.max_fpr)
    save_model(trainer.with_weights(arch, fit.weights), model_file, sidecar={
        "key": key, "target": md.machine.name, "method": "scratch", "budget": str(budget), "seed": seed,
        "train_clips": [str(f) for f in train_files], "features": _feature_sidecar(cfg), "architecture": arch,
        "fit": cfg.to_dict()["fit"]})
    result = {"key": key, "auc": auc, "pauc": pauc, "scores": scores.tolist(), "train_seconds": fit.seconds,
              "train_scores": train_scores.tolist()}
    atomic_write_text(store, json.dumps(result))
    return result | {"model": model_file}


def _run_hash(cfg: Config) -> str:
    d = cfg.to_dict() | {"fit": _fit_identity(cfg)}
    return _hash({k: v for k, v in d.items() if k in ("feature", "model", "fit", "transfer", "eval")}
                 | {"data": {k: v for k, v in d["data"].items() if k not in _NOT_HASHED}})


def _plan(cfg: Config, targets, checked: dict[Machine, CheckedMachine], sidecars: dict[str, dict]) -> dict[tuple, str]:
    """The config hash of every row the config asks for, keyed like `common.results.KEY`, before any work."""
    run_hash = _run_hash(cfg)
    plan = {}
    for target, sets in targets:
        c = checked[target]
        data_key = _hash([_data_identity(cfg, c.split.train + c.split.eval_files), sorted(c.skipped)])
        for budget in cfg.experiment.budgets:
            for seed in cfg.experiment.seeds:
                unit = (str(budget), seed)
                plan[(target.type, target.id, "none", "scratch", *unit)] = _hash([run_hash, data_key])
                for s in sets:
                    h = _hash([run_hash, data_key, sidecars[s.label].get("key")])
                    plan[(target.type, target.id, s.label, "zero_shot", *unit)] = h
                    plan[(target.type, target.id, s.label, "transfer", *unit)] = h
    return plan


def _warn_outdated(previous: dict[tuple, tuple], plan: dict[tuple, str], out: Path) -> None:
    stale = sum(1 for k, (row, _) in previous.items() if k in plan and row["config_hash"] != plan[k])
    dropped = sum(1 for k in previous if k not in plan)
    if stale:
        warnings.warn(
            f"{stale} row(s) of {out / 'results.csv'} were computed with another config or other data "
            "(their config_hash differs) and are recomputed. Use another output.result_dir to keep the old "
            "results, or delete them to silence this warning.",
            stacklevel=3,
        )
    if dropped:
        warnings.warn(
            f"{dropped} row(s) of {out / 'results.csv'} are for targets, sources, budgets or seeds this config "
            "does not ask for and are dropped. Use another output.result_dir to keep them.",
            stacklevel=3,
        )


def transfer(cfg: Config, *, progress: bool = True) -> pd.DataFrame:
    """Score scratch, zero_shot and transfer for every target, source, budget and seed; write the results.

    Writes ``results.csv`` (one row per target, source, method, budget, seed), ``scores.csv`` (every
    evaluation clip's score behind each row), ``summary.csv``, ``skipped.csv`` (bad clips left out)
    and the resolved ``config.yaml`` into ``output.result_dir``. Each row is persisted the moment it
    is finished and results.csv / scores.csv are rewritten atomically after each target, so a killed
    run resumes: rows whose config hash matches are reused, others recomputed (with a warning).

    Raises
    ------
    AudioError
        A clip is bad and ``data.on_bad_file`` is ``error`` (raised before any work).
    ModelError
        A needed pretrained model is missing or was trained on other features.
    """
    machines = select_machines(cfg)
    version = cfg.experiment.version
    out = cfg.output.result_dir
    model_dir = Path(cfg.transfer.init_from) if cfg.transfer.init_from != "scratch" else None
    targets = [(t, sets) for t in machines if (sets := source_sets(version, t, machines))]
    data = _Machines(cfg, progress=progress)
    checked = {t: data.checked(t) for t, _ in targets}
    sidecars = {s.label: _pretrained_sidecar(model_dir, s, cfg) for _, sets in targets for s in sets}
    plan = _plan(cfg, targets, checked, sidecars)

    previous = read_results(out)
    _warn_outdated(previous, plan, out)
    done = {k: v for k, v in previous.items() if plan.get(k) == v[0]["config_hash"]}
    done = _drop_without_model(done, out)
    save_config(cfg, out / "config.yaml")
    write_skipped(out, {t: checked[t].skipped for t, _ in targets})

    trainer = Trainer()
    weights: dict[str, list[np.ndarray]] = {}
    bar = tqdm(total=len(plan), initial=sum(k in done for k in plan), desc=f"transfer {version}",
               disable=not progress, unit="run")
    for target, sets in targets:
        if all(k in done for k in plan if k[:2] == (target.type, target.id)):
            continue
        md = data[target]
        eval_x, eval_offsets = md.vectors(md.split.eval_files)
        zero_shot: dict[str, tuple] = {}
        for budget in cfg.experiment.budgets:
            for seed in cfg.experiment.seeds:
                train_files = budget_subset(md.split.train, budget, seed=seed)
                train = None  # the budget's (vectors, offsets), loaded when a fit needs them

                def key(source: str, method: str) -> tuple:
                    return (target.type, target.id, source, method, str(budget), seed)

                def finish(source: str, method: str, clip_scores_, auc, pauc, n_train, seconds, threshold,
                           store_model=None) -> None:
                    k = key(source, method)
                    precision, recall, f1 = decision_metrics(md.split.eval_labels, clip_scores_, threshold=threshold,
                                                             name=md.machine.name)
                    row = {"version": version, "target_type": target.type, "target_id": target.id,
                           "source": source, "method": method, "budget": str(budget), "seed": seed,
                           "auc": auc, "pauc": pauc, "n_train_clips": n_train,
                           "n_eval_clips": len(md.split.eval_files), "train_seconds": round(float(seconds), 3),
                           "config_hash": plan[k], "n_skipped_clips": len(md.skipped),
                           "threshold": float(threshold), "precision": precision, "recall": recall, "f1": f1}
                    if store_model is not None:
                        store_model(row)  # the row's model is on disk before the row is
                    table = pd.DataFrame({
                        "version": version, "target_type": target.type, "target_id": target.id,
                        "source": source, "method": method, "budget": str(budget), "seed": seed,
                        "path": [str(f) for f in md.split.eval_files], "label": md.split.eval_labels,
                        "score": np.asarray(clip_scores_, dtype=float)}, columns=SCORE_COLUMNS)
                    save_row(out, row, table)  # persisted now: a kill from here on keeps this row
                    done[k] = (row, table)
                    bar.update(1)

                def row_sidecar(row: dict, arch, train_scores, **extra) -> dict[str, Any]:
                    return {**{k: row[k] for k in ("version", "target_type", "target_id", "method", "source",
                                                   "budget", "seed", "n_train_clips", "auc", "pauc", "precision",
                                                   "recall", "f1", "n_eval_clips", "config_hash")},
                            "target": target.name, "train_clips": [str(f) for f in train_files],
                            "features": _feature_sidecar(cfg), "architecture": arch,
                            "train_scores": np.asarray(train_scores, dtype=float).tolist(),
                            **_threshold_fields(cfg, train_scores), **extra}

                if key("none", "scratch") not in done:
                    train = md.vectors(train_files)
                    arch = architecture(train[0].shape[1], hidden=cfg.model.hidden, bottleneck=cfg.model.bottleneck,
                                        batch_norm=cfg.model.batch_norm)
                    r = _scratch(cfg, trainer, md, budget, seed, train, arch, eval_x, eval_offsets)
                    finish("none", "scratch", r["scores"], r["auc"], r["pauc"], len(train_files), r["train_seconds"],
                           _threshold_fields(cfg, r["train_scores"])["threshold"],
                           lambda row: copy_model(r["model"], row_model_path(out, row), sidecar=row_sidecar(
                               row, arch, r["train_scores"], sources=[], fit=cfg.to_dict()["fit"])))
                for s in sets:
                    side = sidecars[s.label]
                    if s.label not in weights and not (key(s.label, "zero_shot") in done
                                                       and key(s.label, "transfer") in done):
                        weights[s.label] = _load_pretrained(model_dir, s, cfg)
                    if key(s.label, "zero_shot") not in done:
                        if s.label not in zero_shot:
                            zero_shot[s.label] = _score(trainer, side["architecture"], weights[s.label], md,
                                                        eval_x, eval_offsets, cfg.eval.max_fpr)
                        # The pretrained model's own threshold: from its source clips, never the target's.
                        finish(s.label, "zero_shot", *zero_shot[s.label], 0, 0.0,
                               _threshold_fields(cfg, side["train_scores"])["threshold"])
                    if key(s.label, "transfer") not in done:
                        if train is None:
                            train = md.vectors(train_files)
                        arch = side["architecture"]
                        fit = trainer.fit(arch, weights[s.label], train[0], epochs=cfg.transfer.epochs,
                                          batch_size=cfg.fit.batch_size, learning_rate=cfg.transfer.learning_rate,
                                          validation_split=cfg.fit.validation_split, shuffle=cfg.fit.shuffle,
                                          seed=seed, freeze=cfg.transfer.freeze)
                        train_scores = clip_scores(trainer.with_weights(arch, fit.weights), *train)
                        finish(s.label, "transfer",
                               *_score(trainer, arch, fit.weights, md, eval_x, eval_offsets, cfg.eval.max_fpr),
                               len(train_files), fit.seconds, _threshold_fields(cfg, train_scores)["threshold"],
                               lambda row: save_model(trainer.with_weights(arch, fit.weights), row_model_path(out, row),
                                                      sidecar=row_sidecar(
                                                          row, arch, train_scores, sources=side["sources"],
                                                          pretrained=str(model_dir / f"{s.label}.keras"),
                                                          pretrained_key=side.get("key"),
                                                          transfer=cfg.to_dict()["transfer"])))
        _write(out, done)
    bar.close()
    results = _write(out, done)
    clear_rows(out)  # every finished row is in results.csv now; what is left belongs to no planned row
    write_summary(out, results)
    return results


def _drop_without_model(done: dict[tuple, tuple], out: Path) -> dict[tuple, tuple]:
    """The reusable rows less those whose model file is missing (or of another run), with a warning."""
    kept = {k: v for k, v in done.items() if _has_model(out, v[0])}
    if missing := len(done) - len(kept):
        warnings.warn(
            f"{missing} row(s) of {out / 'results.csv'} have no model file of their run under {out / 'models'} "
            "and are recomputed (deployment needs each row's model). Keep the models folder with the results "
            "to silence this warning.",
            stacklevel=3,
        )
    return kept


def _write(out: Path, done: dict[tuple, tuple[dict[str, Any], pd.DataFrame]]) -> pd.DataFrame:
    rows, scores = zip(*done.values()) if done else ((), ())
    return write_results(out, list(rows), list(scores))


def _pretrained_sidecar(model_dir: Path | None, source: SourceSet, cfg: Config) -> dict[str, Any]:
    """The sidecar of the model pretrained on `source`, checked against the config's features."""
    if model_dir is None:
        raise ModelError("transfer.init_from is 'scratch': transfer needs a folder of pretrained models")
    path = model_dir / f"{source.label}.keras"
    if not path.is_file():
        raise ModelError(
            f"pretrained model {path} not found: run `python -m common pretrain` with the make_pretrain "
            f"YAML of {cfg.experiment.version} first"
        )
    sidecar = read_sidecar(path)
    check_features(sidecar, _feature_sidecar(cfg), path=path)
    if "train_scores" not in sidecar:
        raise ModelError(
            f"pretrained model {path} has no scores of its training clips to fit a decision threshold on: run "
            f"`python -m common pretrain` with the make_pretrain YAML of {cfg.experiment.version} again (it adds "
            "them without retraining)"
        )
    return sidecar


def _load_pretrained(model_dir: Path | None, source: SourceSet, cfg: Config) -> list[np.ndarray]:
    """Weights of the model pretrained on `source` (Keras safe mode; features checked again)."""
    model, _ = load_model(model_dir / f"{source.label}.keras", features=_feature_sidecar(cfg))
    return model.get_weights()
