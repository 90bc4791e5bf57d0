"""Run one experiment version: pretrain a model per source set, then score every target three ways.

For each target machine, budget and seed: ``scratch`` (random init, target budget only),
``zero_shot`` (the pretrained model as is) and ``transfer`` (the pretrained model fine-tuned on the
target budget), all on the target's evaluation split. Finished work is kept: an up-to-date
pretrained model is never retrained, scratch results are shared by all versions, and every finished
result row goes into the result folder's store at once (`common.store.ResultStore`), so a run
killed at any point resumes where it stopped when the same command is run again. The store keeps
every row ever finished there; results.csv shows those of the current config.

Each row carries a ``config_hash`` of everything that produced it: the config (less where files go
and how many workers run), the target's exact clips (path, size, mtime) and skipped clips, and for
zero_shot / transfer the pretrained model's key. Rows of an earlier run with another hash are
recomputed, with a warning, and kept in the store beside the new ones; they are never mixed.

A run holds its folders for its whole length (`common.lock.folder_lock`): `pretrain` its model
folder, `transfer` its result folder, both exclusively, and `transfer` the model folder it reads
shared: several transfers may read one set of pretrained models at once, but never while a
pretrain rewrites them.

Every model gets a decision threshold fitted on the scores of its *own* training normal clips
(`common.threshold`, ``eval.threshold``): a pretrained model on its source clips, scratch and
transfer models on the target budget; zero_shot uses the pretrained model's. Each row reports it
with the precision / recall / F1 of ``score > threshold`` on the evaluation split. The scratch and
transfer model of every row is saved beside the results (`row_model_path`, with a sidecar of its
features, channel count, sources, budget, seed, threshold and AUC), so the best one can be exported
and used on new recordings (`common.deploy`); a row whose model file is missing is recomputed. When
a row of another config hash replaces a row model, the old model moves into the store
(``.store/models/``) and comes back when its config runs again.
"""

from __future__ import annotations

import contextlib
import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .audio import wav_info
from .cache import VectorSet, feature_key
from .config import Config, save_config
from .data import Machine, budget_subset
from .errors import ConfigError, DataError, ModelError
from .io import atomic_write_text, digest
from .layout import pretrained_model_path, row_model_path
from .lock import folder_lock
from .metrics import auc_pauc, decision_metrics
from .model import architecture, check_features, copy_model, keras, load_model, read_sidecar, save_model
from .prepare import CheckedMachine, MachineData, check_machine, load_machine, select_machines, write_skipped
from .results import SCORE_COLUMNS, write_results, write_summary
from .store import STORE_DIR, ResultStore
from .scoring import clip_scores
from .sources import SourceSet, all_source_sets, source_sets
from .threshold import fit_threshold
from .train import Trainer

METHODS = ("scratch", "zero_shot", "transfer")

# Keys of the data section that change where or how fast work runs, not its results. The effect of
# data.on_bad_file (which clips are left out) is in each row's hash through the clips themselves.
_NOT_HASHED = ("jobs", "cache_dir", "on_bad_file")


def _fit_identity(cfg: Config) -> dict[str, Any]:
    """The fit settings with the backend Keras actually runs on (``auto`` resolved): part of every key."""
    return cfg.to_dict()["fit"] | {"backend": keras.backend.backend()}


def _hash(obj: Any) -> str:
    return digest(obj, length=16, compact=False)


def _feature_sidecar(cfg: Config) -> dict[str, Any]:
    return {**cfg.feature.kwargs(), "channel": cfg.data.channel, "sample_rate": cfg.data.sample_rate}


def _threshold_fields(cfg: Config, train_scores) -> dict[str, Any]:
    """The decision threshold of a model from its training clips' scores, as stored in sidecars."""
    method, level = cfg.eval.threshold_spec()
    return {"threshold": fit_threshold(train_scores, method=method, level=level), "threshold_method": method,
            "threshold_level": level, "n_threshold_clips": len(train_scores)}


def _model_hash(path: Path) -> str | None:
    """The config hash of the row a saved row model belongs to (None when the model or its sidecar is missing)."""
    try:
        return read_sidecar(path).get("config_hash")
    except ModelError:
        return None


def _kept_model_path(out: Path, path: Path, config_hash: str) -> Path:
    """Where the store keeps the row model at `path` of `config_hash` while another config's model is there."""
    return out / STORE_DIR / "models" / path.parent.name / f"{path.stem}__{config_hash}.keras"


def _move_model(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    os.replace(src, dst)
    os.replace(src.with_suffix(".json"), dst.with_suffix(".json"))


def _set_aside(out: Path, path: Path, config_hash: str) -> None:
    """Move the row model at `path` into the store before a row of another `config_hash` replaces it."""
    old = _model_hash(path)
    if old is not None and old != config_hash:
        keep = _kept_model_path(out, path, old)
        if _model_hash(keep) == old:
            return  # already kept: the copy at `path` is the same model
        _move_model(path, keep)


def _has_model(out: Path, row: Mapping[str, Any]) -> bool:
    """Whether the model behind `row` is at `row_model_path`, brought back from the store if another config's is."""
    if row["method"] == "zero_shot":
        return True  # the pretrained model, checked when the run starts
    path = row_model_path(out, row)
    if _model_hash(path) == row["config_hash"]:
        return True
    kept = _kept_model_path(out, path, row["config_hash"])
    if _model_hash(kept) != row["config_hash"]:
        return False
    _set_aside(out, path, row["config_hash"])
    _move_model(kept, path)
    return True


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
    return pretrained_model_path(cfg.output.model_dir, source.label)


def _no_source_sets(cfg: Config, machines: list[Machine]) -> DataError:
    version = cfg.experiment.version
    return DataError(
        f"version {version} has no source sets among the machines {[m.name for m in machines]} "
        f"under {cfg.data.root}: v1/v3/v4 need other machine types, v2 other IDs of the same type"
    )


def _n_channels(files) -> int:
    """Channel count of a machine's clips (all of one machine share it), from the first clip's header."""
    return wav_info(files[0]).channels


def pretrain(cfg: Config, *, progress: bool = True) -> list[Pretrained]:
    """Train (or find up to date) one model per distinct source set of the config's version.

    Each model learns from the training pools of all its source machines (never evaluation clips).
    Its sidecar records features, channel count, architecture, sources, budget, seed, skipped clips
    and a key of the exact training clips and settings; a model whose key matches is reused. Each
    model is saved atomically the moment it is trained, so a killed run resumes with the next one.
    ``model_dir/skipped.csv`` lists the bad clips left out under ``data.on_bad_file: skip``.

    Raises
    ------
    DataError
        The data has no source set for the version (before any file is touched).
    LockError
        Another run holds ``output.model_dir``.
    """
    machines = select_machines(cfg)
    sets = all_source_sets(cfg.experiment.version, machines)
    if not sets:
        raise _no_source_sets(cfg, machines)
    with folder_lock(cfg.output.model_dir, what=f"pretrain {cfg.source}"):
        data = _Machines(cfg, progress=progress)
        used = sorted({m for s in sets for m in s.machines})
        write_skipped(cfg.output.model_dir, {m: data.checked(m).skipped for m in used})
        trainer = Trainer(in_memory_bytes=cfg.fit.max_in_memory_mb * 2**20)
        bar = tqdm(sets, desc=f"pretrain {cfg.experiment.version}", disable=not progress, unit="model")
        done = [_pretrain_one(cfg, trainer, data, source) for source in bar]
        save_config(cfg, cfg.output.model_dir / "config.yaml")
    return done


def _pretrain_one(cfg: Config, trainer: Trainer, data: _Machines, source: SourceSet) -> Pretrained:
    """Train the model of `source` and save it with its sidecar, unless an up-to-date one is on disk."""
    path = model_path(cfg, source)
    train_files = [f for m in source.machines for f in data.checked(m).split.train]
    seed = cfg.experiment.pretrain_seed
    key = _hash({"data": _data_identity(cfg, train_files), "model": cfg.to_dict()["model"],
                 "fit": _fit_identity(cfg), "seed": seed})
    if path.is_file() and path.with_suffix(".json").is_file() and read_sidecar(path).get("key") == key:
        _update_threshold(cfg, path, source, data)
        return Pretrained(source, path, trained=False)
    # Over fit.max_in_memory_mb, streamed from the memory-mapped feature caches (never concatenated).
    x = VectorSet.from_clips([(data[m].features, data[m].split.train) for m in source.machines])
    arch = architecture(x.dim, hidden=cfg.model.hidden, bottleneck=cfg.model.bottleneck,
                        batch_norm=cfg.model.batch_norm)
    fit = trainer.fit(arch, trainer.init_weights(arch, seed=seed), x, epochs=cfg.fit.epochs,
                      batch_size=cfg.fit.batch_size, learning_rate=cfg.fit.learning_rate,
                      validation_split=cfg.fit.validation_split, shuffle=cfg.fit.shuffle, seed=seed)
    train_scores = _train_scores(trainer.with_weights(arch, fit.weights), [data[m] for m in source.machines])
    skipped = sorted(p for m in source.machines for p in data.checked(m).skipped)
    sidecar = {
        "key": key, "version": cfg.experiment.version, "source": source.label,
        "sources": [m.name for m in source.machines], "budget": "all",
        "n_train_clips": len(train_files), "n_train_vectors": int(len(x)), "seed": seed,
        "n_skipped_clips": len(skipped), "skipped_clips": skipped, "n_channels": _n_channels(train_files),
        "features": _feature_sidecar(cfg), "architecture": arch, "fit": cfg.to_dict()["fit"],
        "final_loss": fit.history["loss"][-1], "train_seconds": round(fit.seconds, 3), "streamed": fit.streamed,
        "train_scores": train_scores.tolist(), **_threshold_fields(cfg, train_scores),
    }
    save_model(trainer.with_weights(arch, fit.weights), path, sidecar=sidecar)
    atomic_write_text(path.with_suffix(".history.csv"), pd.DataFrame(fit.history).rename_axis("epoch").to_csv())
    return Pretrained(source, path, trained=True)


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

    Models saved before thresholds (or channel counts) existed get the scores of their training
    clips (and their clips' channel count) first.
    """
    sidecar = read_sidecar(path)
    if "train_scores" not in sidecar:
        model, _ = load_model(path, features=_feature_sidecar(cfg))
        sidecar["train_scores"] = _train_scores(model, [data[m] for m in source.machines]).tolist()
    fields = _threshold_fields(cfg, sidecar["train_scores"]) | {
        "n_channels": _n_channels(data.checked(source.machines[0]).split.train)}
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
        "train_clips": [str(f) for f in train_files], "n_channels": _n_channels(md.split.train),
        "features": _feature_sidecar(cfg), "architecture": arch, "fit": cfg.to_dict()["fit"]})
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


def _reusable(store: ResultStore, plan: dict[tuple, str], out: Path) -> dict[tuple, tuple]:
    """The planned rows found intact in the store with their planned hash (and their model), with warnings.

    A planned cell stored only with another hash is recomputed; the old row stays in the store.
    """
    names = store.names()
    cells = {n.rsplit("__", 1)[0] for n in names}
    done, stale = {}, 0
    for key, config_hash in plan.items():
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


def _warn_kept(store: ResultStore, plan: dict[tuple, str], out: Path) -> None:
    """Say how many stored rows results.csv does not show (other cells or configs) and where they are."""
    others = len(store.names() - {store.path(k, h).name for k, h in plan.items()})
    if others:
        warnings.warn(
            f"{others} other row(s) (other targets, sources, budgets, seeds or configs) are kept in {store.folder}; "
            f"{out / 'results.csv'} shows the {len(plan)} row(s) of this config. Run their config again to show "
            "them (they are reused, not recomputed); use one output.result_dir per config to silence this warning.",
            stacklevel=3,
        )


def _check_budgets(cfg: Config, checked: dict[Machine, CheckedMachine]) -> None:
    """Refuse a budget larger than a target's training pool before any row is computed."""
    for machine, c in checked.items():
        pool = len(c.split.train)
        for budget in cfg.experiment.budgets:
            if budget != "all" and budget > pool:
                raise ConfigError(
                    f"{cfg.source}: 'experiment.budgets' has {budget}, more than the {pool} training clips of "
                    f"{machine.name} under {cfg.data.root}: use a budget of at most {pool} or 'all'"
                )


def _model_dir_lock(model_dir: Path, out: Path, what: str):
    """A shared lock on the model folder transfer reads (none when missing, or when it is the result folder)."""
    if not model_dir.is_dir() or model_dir.resolve() == out.resolve():
        return contextlib.nullcontext()
    return folder_lock(model_dir, what=what, shared=True)


def transfer(cfg: Config, *, progress: bool = True) -> pd.DataFrame:
    """Score scratch, zero_shot and transfer for every target, source, budget and seed; write the results.

    Writes ``results.csv`` (one row per target, source, method, budget, seed of this config),
    ``scores.csv`` (every evaluation clip's score behind each row), ``summary.csv``, ``skipped.csv``
    (bad clips left out) and the resolved ``config.yaml`` into ``output.result_dir``. Each row goes
    into the folder's store (`common.store.ResultStore`) the moment it is finished and
    results.csv / scores.csv are rewritten atomically after each target, so a killed run resumes:
    stored rows whose config hash matches are reused, others recomputed (with a warning). Rows of
    other cells or configs stay in the store (a warning says how many).

    Raises
    ------
    DataError
        No target has a source set in this version (before any file is touched).
    ConfigError
        A budget is larger than a target's training pool (before any work).
    AudioError
        A clip is bad and ``data.on_bad_file`` is ``error`` (raised before any work).
    ModelError
        A needed pretrained model is missing, was trained on other features or on other machines
        than its planned source set (before any work).
    LockError
        Another run holds ``output.result_dir``, or a pretrain run holds the model folder.
    """
    machines = select_machines(cfg)
    targets = [(t, sets) for t in machines if (sets := source_sets(cfg.experiment.version, t, machines))]
    if not targets:
        raise _no_source_sets(cfg, machines)
    out, model_dir = cfg.output.result_dir, Path(cfg.transfer.init_from)
    what = f"transfer {cfg.source}"
    with folder_lock(out, what=what), _model_dir_lock(model_dir, out, what):
        return _transfer(cfg, targets, model_dir, progress=progress)


@dataclass
class _Run:
    """What every row of one transfer run shares: config, folders, plan, store, finished rows, weights."""

    cfg: Config
    out: Path
    model_dir: Path
    plan: dict[tuple, str]
    store: ResultStore
    done: dict[tuple, tuple]
    sidecars: dict[str, dict]
    trainer: Trainer
    bar: Any
    weights: dict[str, list[np.ndarray]] = field(default_factory=dict)


@dataclass
class _Cell:
    """One target, budget and seed: the target's data, evaluation vectors and budget of training clips."""

    md: MachineData
    budget: int | str
    seed: int
    eval_x: np.ndarray
    eval_offsets: np.ndarray
    train_files: tuple = ()
    _train: tuple | None = None

    def key(self, source: str, method: str) -> tuple:
        return (self.md.machine.type, self.md.machine.id, source, method, str(self.budget), self.seed)

    def train(self) -> tuple:
        """The budget's (vectors, offsets), loaded when a fit first needs them."""
        if self._train is None:
            self._train = self.md.vectors(self.train_files)
        return self._train


def _transfer(cfg: Config, targets, model_dir: Path, *, progress: bool) -> pd.DataFrame:
    """`transfer` with its folders locked: check everything up front, then compute what the store lacks."""
    out = cfg.output.result_dir
    data = _Machines(cfg, progress=progress)
    checked = {t: data.checked(t) for t, _ in targets}
    _check_budgets(cfg, checked)
    sidecars = {s.label: _pretrained_sidecar(model_dir, s, cfg) for _, sets in targets for s in sets}
    plan = _plan(cfg, targets, checked, sidecars)
    store = ResultStore(out)
    store.open()
    done = _reusable(store, plan, out)
    save_config(cfg, out / "config.yaml")
    write_skipped(out, {t: checked[t].skipped for t, _ in targets})

    bar = tqdm(total=len(plan), initial=sum(k in done for k in plan), desc=f"transfer {cfg.experiment.version}",
               disable=not progress, unit="run")
    run = _Run(cfg, out, model_dir, plan, store, done, sidecars, Trainer(), bar)
    for target, sets in targets:
        if not all(k in done for k in plan if k[:2] == (target.type, target.id)):
            _run_target(run, data[target], sets)
            _write(out, done)
    bar.close()
    results = _write(out, done)
    write_summary(out, results)
    _warn_kept(store, plan, out)
    return results


def _run_target(run: _Run, md: MachineData, sets: list[SourceSet]) -> None:
    """Compute every row of one target the store lacks, budget by budget and seed by seed."""
    eval_x, eval_offsets = md.vectors(md.split.eval_files)
    zero_shot: dict[str, tuple] = {}  # the pretrained models' scores: the same for every budget and seed
    for budget in run.cfg.experiment.budgets:
        for seed in run.cfg.experiment.seeds:
            cell = _Cell(md, budget, seed, eval_x, eval_offsets, budget_subset(md.split.train, budget, seed=seed))
            if cell.key("none", "scratch") not in run.done:
                _run_scratch(run, cell)
            for s in sets:
                _run_source(run, cell, s, zero_shot)


def _run_scratch(run: _Run, cell: _Cell) -> None:
    cfg, train = run.cfg, cell.train()
    arch = architecture(train[0].shape[1], hidden=cfg.model.hidden, bottleneck=cfg.model.bottleneck,
                        batch_norm=cfg.model.batch_norm)
    r = _scratch(cfg, run.trainer, cell.md, cell.budget, cell.seed, train, arch, cell.eval_x, cell.eval_offsets)
    row = _row(run, cell, "none", "scratch", r["scores"], r["auc"], r["pauc"], len(cell.train_files),
               r["train_seconds"], _threshold_fields(cfg, r["train_scores"])["threshold"])
    # The row's model is on disk before the row is stored; another config's model there goes to the store.
    _set_aside(run.out, row_model_path(run.out, row), row["config_hash"])
    copy_model(r["model"], row_model_path(run.out, row), sidecar=_row_sidecar(
        cfg, cell, row, arch, r["train_scores"], sources=[], fit=cfg.to_dict()["fit"]))
    _keep(run, cell, row, r["scores"])


def _run_source(run: _Run, cell: _Cell, s: SourceSet, zero_shot: dict[str, tuple]) -> None:
    """The zero_shot and transfer rows of source set `s` in `cell` that the store lacks."""
    side = run.sidecars[s.label]
    zs, tr = cell.key(s.label, "zero_shot"), cell.key(s.label, "transfer")
    if zs in run.done and tr in run.done:
        return
    if s.label not in run.weights:
        run.weights[s.label] = _load_pretrained(run.model_dir, s, run.cfg)
    if zs not in run.done:
        if s.label not in zero_shot:
            zero_shot[s.label] = _score(run.trainer, side["architecture"], run.weights[s.label], cell.md,
                                        cell.eval_x, cell.eval_offsets, run.cfg.eval.max_fpr)
        # The pretrained model's own threshold: from its source clips, never the target's.
        threshold = _threshold_fields(run.cfg, side["train_scores"])["threshold"]
        row = _row(run, cell, s.label, "zero_shot", *zero_shot[s.label], 0, 0.0, threshold)
        _keep(run, cell, row, zero_shot[s.label][0])
    if tr not in run.done:
        _run_transfer(run, cell, s)


def _run_transfer(run: _Run, cell: _Cell, s: SourceSet) -> None:
    """Fine-tune the model pretrained on `s` on the cell's budget; store its row and model."""
    cfg, trainer, side, train = run.cfg, run.trainer, run.sidecars[s.label], cell.train()
    arch = side["architecture"]
    fit = trainer.fit(arch, run.weights[s.label], train[0], epochs=cfg.transfer.epochs,
                      batch_size=cfg.fit.batch_size, learning_rate=cfg.transfer.learning_rate,
                      validation_split=cfg.fit.validation_split, shuffle=cfg.fit.shuffle,
                      seed=cell.seed, freeze=cfg.transfer.freeze)
    train_scores = clip_scores(trainer.with_weights(arch, fit.weights), *train)
    scores, auc, pauc = _score(trainer, arch, fit.weights, cell.md, cell.eval_x, cell.eval_offsets, cfg.eval.max_fpr)
    row = _row(run, cell, s.label, "transfer", scores, auc, pauc, len(cell.train_files), fit.seconds,
               _threshold_fields(cfg, train_scores)["threshold"])
    _set_aside(run.out, row_model_path(run.out, row), row["config_hash"])
    save_model(trainer.with_weights(arch, fit.weights), row_model_path(run.out, row), sidecar=_row_sidecar(
        cfg, cell, row, arch, train_scores, sources=side["sources"],
        pretrained=str(pretrained_model_path(run.model_dir, s.label)), pretrained_key=side.get("key"),
        transfer=cfg.to_dict()["transfer"]))
    _keep(run, cell, row, scores)


def _row(run: _Run, cell: _Cell, source: str, method: str, clip_scores_, auc, pauc, n_train: int, seconds,
         threshold) -> dict[str, Any]:
    """The results.csv row of one finished model: its AUCs and its decision metrics at `threshold`."""
    md = cell.md
    precision, recall, f1 = decision_metrics(md.split.eval_labels, clip_scores_, threshold=threshold,
                                             name=md.machine.name)
    return {"version": run.cfg.experiment.version, "target_type": md.machine.type, "target_id": md.machine.id,
            "source": source, "method": method, "budget": str(cell.budget), "seed": cell.seed,
            "auc": auc, "pauc": pauc, "n_train_clips": n_train,
            "n_eval_clips": len(md.split.eval_files), "train_seconds": round(float(seconds), 3),
            "config_hash": run.plan[cell.key(source, method)], "n_skipped_clips": len(md.skipped),
            "threshold": float(threshold), "precision": precision, "recall": recall, "f1": f1}


def _keep(run: _Run, cell: _Cell, row: dict[str, Any], clip_scores_) -> None:
    """Store a finished row with its clip scores: from here on a kill keeps it."""
    md = cell.md
    table = pd.DataFrame({
        "version": row["version"], "target_type": row["target_type"], "target_id": row["target_id"],
        "source": row["source"], "method": row["method"], "budget": row["budget"], "seed": row["seed"],
        "path": [str(f) for f in md.split.eval_files], "label": md.split.eval_labels,
        "score": np.asarray(clip_scores_, dtype=float)}, columns=SCORE_COLUMNS)
    run.store.save(row, table)
    run.done[cell.key(row["source"], row["method"])] = (row, table)
    run.bar.update(1)


def _row_sidecar(cfg: Config, cell: _Cell, row: dict, arch, train_scores, **extra) -> dict[str, Any]:
    """The sidecar of a row's (scratch or transfer) model: the row, its clips, features and threshold."""
    return {**{k: row[k] for k in ("version", "target_type", "target_id", "method", "source", "budget", "seed",
                                   "n_train_clips", "auc", "pauc", "precision", "recall", "f1", "n_eval_clips",
                                   "config_hash")},
            "target": cell.md.machine.name, "train_clips": [str(f) for f in cell.train_files],
            "n_channels": _n_channels(cell.md.split.train),
            "features": _feature_sidecar(cfg), "architecture": arch,
            "train_scores": np.asarray(train_scores, dtype=float).tolist(),
            **_threshold_fields(cfg, train_scores), **extra}


def _drop_without_model(done: dict[tuple, tuple], out: Path) -> dict[tuple, tuple]:
    """The reusable rows less those whose model file is missing (or of another run), with a warning."""
    kept = {k: v for k, v in done.items() if _has_model(out, v[0])}
    if missing := len(done) - len(kept):
        warnings.warn(
            f"{missing} row(s) of {out / 'results.csv'} have no model file of their run under {out / 'models'} "
            "and are recomputed (deployment needs each row's model). Keep the models folder with the results "
            "to silence this warning.",
            stacklevel=4,
        )
    return kept


def _write(out: Path, done: dict[tuple, tuple[dict[str, Any], pd.DataFrame]]) -> pd.DataFrame:
    rows, scores = zip(*done.values()) if done else ((), ())
    return write_results(out, list(rows), list(scores))


def _pretrained_sidecar(model_dir: Path, source: SourceSet, cfg: Config) -> dict[str, Any]:
    """The sidecar of the model pretrained on `source`, checked against the config's features and machines."""
    path = pretrained_model_path(model_dir, source.label)
    if not path.is_file():
        raise ModelError(
            f"pretrained model {path} not found: run `python -m common pretrain` with the make_pretrain "
            f"YAML of {cfg.experiment.version} first"
        )
    sidecar = read_sidecar(path)
    check_features(sidecar, _feature_sidecar(cfg), path=path)
    planned = [m.name for m in source.machines]
    if sorted(sidecar.get("sources") or []) != sorted(planned):
        raise ModelError(
            f"pretrained model {path} was trained on the machines {sidecar.get('sources')}, but this run plans it "
            f"for the source set {source.label} = {planned} (other data.types / data.ids than its pretrain run): "
            f"pretrain with this config's data selection, or set transfer.init_from to another model folder"
        )
    if "train_scores" not in sidecar:
        raise ModelError(
            f"pretrained model {path} has no scores of its training clips to fit a decision threshold on: run "
            f"`python -m common pretrain` with the make_pretrain YAML of {cfg.experiment.version} again (it adds "
            "them without retraining)"
        )
    return sidecar


def _load_pretrained(model_dir: Path, source: SourceSet, cfg: Config) -> list[np.ndarray]:
    """Weights of the model pretrained on `source` (Keras safe mode; features checked again)."""
    model, _ = load_model(pretrained_model_path(model_dir, source.label), features=_feature_sidecar(cfg))
    return model.get_weights()
