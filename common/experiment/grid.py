"""Run the transfer grid of one version: plan its cells, skip the finished ones, run the rest, store what comes back.

For each target machine, budget and seed, every method of ``experiment.methods`` (out of
`common.methods.registry.METHODS`) is scored on the target's
evaluation split. `run_cell` computes one cell from
its arguments only (it reads features from the cache and the pretrained model it needs) and writes
nothing; `transfer` plans the cells (`common.experiment.plan.plan`), reuses the rows of the result folder's
store whose config hash matches (`common.experiment.store.ResultStore`), runs the others (in order in this
process, or as tasks on Dask workers: ``experiment.executor``, `common.experiment.executor`) and stores each
row and model the moment it comes back, so a run killed at any point resumes where it stopped.
Only this process writes the result folder; a cell's result does not depend on where it ran.
results.csv shows the rows of the current config; rows of another hash are recomputed, with a
warning, and kept in the store beside the new ones.

A run holds its folders for its whole length (`common.lock.folder_lock`): its result folder
exclusively, and the model folder it reads shared, so several transfers may read one set of
pretrained models at once, but never while a pretrain rewrites them (`common.experiment.pretrain`).

Every model's decision threshold is fitted on the scores of its *own* training normal clips
(`common.scoring.threshold`, ``eval.threshold``); zero_shot uses the pretrained model's. The scratch and
transfer model of every row is saved beside the results (`common.data.names.row_model_path`, with its
`common.models.saved.Sidecar`), so the best one can be exported and used on new recordings
(`common.deploy`); a row whose model file is missing is recomputed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from common.config import Config, save_config
from common.data.mimii import Machine, budget_clips
from common.data.layouts import official_year
from common.data.dataset import CheckedMachine, Machines, n_channels, select_machines, write_skipped
from common.errors import ConfigError
from common.experiment.executor import executor, task_name
from common.io import atomic_write_text
from common.data.names import pretrained_model_path, row_model_path
from common.lock import folder_lock
from common.methods.catalog import AUTOENCODER, CLASSIFIER_PRETRAININGS, GENERAL, NO_SOURCE, STATISTICS
from common.methods.base import Adapted, CellData, Pretrained, adapted_scores
from common.methods.autoencoder import FREEZE_METHODS
from common.methods.registry import METHODS
from common.methods.fused import remember
from common.scoring.metrics import auc_pauc, decision_metrics
from common.models.saved import Sidecar, copy_model, save_weights
from common.models.kinds import build_model, holding
from common.models.soundnet import weights_sha256
from common.experiment.pretrain import check_classes, load_pretrained, pretrained_sidecar, source_key
from common.scoring.official import FORMULA_NAMES, section_score
from common.results import OFFICIAL_COLUMNS, RUN_COLUMNS, SCORE_COLUMNS, ResultRow, write_results, write_summary
from common.experiment.plan import Plan, legacy_row_problem, no_source_sets, plan, reusable, row_hash, row_sidecar, set_aside, target_identity, warn_kept
from common.methods.base import Cell, ModelOut, PretrainJob, TextOut, threshold_fields
from common.data.selection import distinct_sets, draws
from common.data.versions import VERSIONS, SourceSet, source_sets
from common.experiment.store import ResultStore
from common.models.train import Trainer


# While a run goes on, results.csv / scores.csv are rewritten at most this often (seconds); the store has every row.
RESULTS_EVERY_S = 30.0


@dataclass(frozen=True)
class CellResult:
    """What a cell gives back: its results row, the clip scores behind it and the files to write.

    `shared` files are written first (the scratch store), then `model` (the row's model; None for
    zero_shot, whose model is the pretrained one), then the row goes into the store.
    """

    cell: Cell
    row: dict[str, Any]
    scores: pd.DataFrame
    model: ModelOut | None
    shared: tuple[ModelOut | TextOut, ...] = ()


@dataclass
class _Context:
    """Per-process caches of one config, each keyed by its inputs: data, compiled models, pretrained weights."""

    cfg: Config
    machines: Machines
    trainer: Trainer = field(default_factory=Trainer)
    target_keys: dict[Machine, str] = field(default_factory=dict)
    sidecars: dict[tuple[str, str], Sidecar] = field(default_factory=dict)
    loaded: dict[tuple[str, str], tuple] = field(default_factory=dict)
    eval: dict[Machine, tuple] = field(default_factory=dict)
    scores: dict[tuple, np.ndarray] = field(default_factory=dict)
    memo: dict = field(default_factory=dict)

    def target_key(self, machine: Machine) -> str:
        if machine not in self.target_keys:
            c = self.machines.checked(machine)
            self.target_keys[machine] = target_identity(self.cfg, c.split.train, c.split.eval_files, c.skipped)
        return self.target_keys[machine]

    def sidecar(self, source: SourceSet, pretraining: str) -> Sidecar:
        key = (source.label, pretraining)
        if key not in self.sidecars:
            self.sidecars[key] = pretrained_sidecar(Path(self.cfg.transfer.init_from), source, self.cfg, pretraining,
                                                    data=self.machines)
        return self.sidecars[key]

    def pretrained_key(self, source: SourceSet | None, pretraining: str) -> str:
        """The key of what a method starts from: a pretrained model's, the source clips' (statistics), or the
        package weights' (general sound: no source set)."""
        if pretraining == GENERAL:
            return weights_sha256()
        if pretraining == STATISTICS:
            return source_key(self.cfg, self.machines, source)
        return self.sidecar(source, pretraining).key

    def pretrained(self, source: SourceSet, pretraining: str | None) -> Pretrained | None:
        if pretraining in NO_SOURCE or pretraining == STATISTICS:
            return None
        model_dir, key = Path(self.cfg.transfer.init_from), (source.label, pretraining)
        if key not in self.loaded:
            self.loaded[key] = load_pretrained(model_dir, source, self.cfg, pretraining)
        return Pretrained(pretrained_model_path(model_dir, source.label, pretraining),
                          self.sidecar(source, pretraining), *self.loaded[key])

    def eval_vectors(self, md) -> tuple:
        if md.machine not in self.eval:
            self.eval[md.machine] = md.vectors(md.split.eval_files)
        return self.eval[md.machine]


_CONTEXT: list[_Context] = []  # at most one: the config this process last ran cells of


def _context(cfg: Config, *, progress: bool = False, fresh: bool = False) -> _Context:
    """The caches of `cfg` in this process (new ones when `fresh`, or for another config)."""
    if fresh or not _CONTEXT or _CONTEXT[0].cfg != cfg:
        _CONTEXT[:] = [_Context(cfg, Machines(cfg, progress=progress))]
    return _CONTEXT[0]


def run_cell(cfg: Config, cell: Cell) -> CellResult:
    """Compute one cell of the grid: its row, its clip scores and the model to save; writes nothing.

    Reads the target's features from the cache and the pretrained model the method starts from
    (``transfer.init_from``, checked against the config). Caches of this process are reused when
    they are of the same config.
    """
    ctx = _context(cfg)
    method, md = METHODS[cell.method], ctx.machines[cell.target]
    eval_x, eval_offsets = ctx.eval_vectors(md)
    data = CellData(cfg, cell, md, ctx.trainer, eval_x, eval_offsets,
                    budget_clips(md.split, cell.budget, seed=cell.seed),
                    pretrained=None if cell.source is None else ctx.pretrained(cell.source, method.pretrains),
                    machines=ctx.machines, memo=ctx.memo)
    adapted = method.adapt(data)
    shared_key = None if adapted.scores_key is None else adapted.scores_key + (md.machine,)
    scores = adapted.scores if adapted.scores is not None else ctx.scores.get(shared_key)
    if scores is None:
        scores = adapted_scores(ctx.trainer, adapted, eval_x, eval_offsets, n_mels=cfg.feature.n_mels,
                                inputs_memo=data.inputs_memo("eval"))
        if shared_key is not None:  # the same model in other cells (zero_shot: every budget and seed)
            ctx.scores[shared_key] = scores
    remember(ctx.memo, cell, adapted, scores)  # for the fused rows of this cell's group
    pretrained_key = None if method.pretrains is None else ctx.pretrained_key(cell.source, method.pretrains)
    row = dataclasses.replace(_row(cfg, cell, md, adapted, scores, ctx.target_key(cell.target), pretrained_key),
                              **_official(md, scores, official_year(md.machine, ctx.machines.layout)))
    facts = row.to_dict()
    return CellResult(cell, facts, _score_table(row, md, scores), _row_model(cfg, data, adapted, facts),
                      adapted.shared)


def _row(cfg: Config, cell: Cell, md, adapted: Adapted, scores, target_key: str, pretrained_key) -> ResultRow:
    """The results.csv row of a finished cell: its AUCs and its decision metrics at its model's threshold."""
    auc, pauc = auc_pauc(md.split.eval_labels, scores, max_fpr=cfg.eval.max_fpr, name=md.machine.name)
    threshold = threshold_fields(cfg, adapted.train_scores)["threshold"]
    precision, recall, f1 = decision_metrics(md.split.eval_labels, scores, threshold=threshold, name=md.machine.name)
    config_hash = row_hash(cfg, cell, target_key, pretrained_key)
    return ResultRow(version=cfg.experiment.version, target_type=md.machine.type, target_id=md.machine.id,
                     source=cell.source_label, method=cell.method, budget=str(cell.budget), seed=cell.seed,
                     auc=auc, pauc=pauc, n_train_clips=adapted.n_train_clips,
                     n_eval_clips=len(md.split.eval_files), train_seconds=round(float(adapted.seconds), 3),
                     config_hash=config_hash, n_skipped_clips=len(md.skipped),
                     threshold=float(threshold), precision=precision, recall=recall, f1=f1)


def _score_table(row: ResultRow, md, scores) -> pd.DataFrame:
    """The scores.csv rows behind `row`: its run's columns, then every evaluation clip's path, label and score."""
    clips = {"path": [str(f) for f in md.split.eval_files], "label": md.split.eval_labels,
             "score": np.asarray(scores, dtype=float), "domain": [d or "" for d in md.split.eval_domains]}
    return pd.DataFrame({**{k: getattr(row, k) for k in RUN_COLUMNS}, **clips}, columns=SCORE_COLUMNS)


def _official(md, scores, year: int | None) -> dict[str, Any]:
    """The row's `OFFICIAL_COLUMNS`: its DCASE formula, the section's official score and per-domain terms."""
    fields: dict[str, Any] = {c: float("nan") for c in OFFICIAL_COLUMNS}  # blank cells, as pandas reads them
    if year is None:
        return fields
    terms, score = section_score(md.split.eval_labels, scores, md.split.eval_domains, year=year,
                                 name=md.machine.name)
    return fields | {k: v for k, v in terms.items() if k in fields} | {
        "official_formula": FORMULA_NAMES[year], "official_score": score}


def _row_model(cfg: Config, data: CellData, adapted: Adapted, row: dict[str, Any]) -> ModelOut | None:
    """The row's own model file with its sidecar; None for a zero-shot method (its model is the pretrained one)."""
    if not adapted.own_model:
        return None
    scorer = {} if adapted.scorer is None else {"scorer": adapted.scorer}
    sidecar = row_sidecar(cfg, row, target=data.md.machine.name, train_clips=data.train_files,
                          n_channels=n_channels(data.md.split.train), architecture=adapted.architecture,
                          train_scores=adapted.train_scores, **scorer, **adapted.sidecar)
    path = row_model_path(cfg.output.result_dir, row)
    if adapted.saved is not None:
        return ModelOut(path, sidecar, copy_from=adapted.saved)
    return ModelOut(path, sidecar, adapted.architecture, adapted.weights, head=adapted.head)


def _check_budgets(cfg: Config, checked: dict[Machine, CheckedMachine]) -> None:
    """Refuse a budget larger than a target's budget pool (`Split.budget_pool`) before any row is computed."""
    for machine, c in checked.items():
        pool = len(c.split.budget_pool)
        what = "training clips" if c.split.budget_pool == c.split.train else "target-domain training clips"
        for budget in cfg.experiment.budgets:
            if budget != "all" and budget > pool:
                raise ConfigError(
                    f"{cfg.source}: 'experiment.budgets' has {budget}, more than the {pool} {what} of "
                    f"{machine.name} under {cfg.data.root}: use a budget of at most {pool} or 'all'"
                )


def _model_dir_lock(model_dir: Path, out: Path, what: str):
    """A shared lock on the model folder transfer reads (none when missing, or when it is the result folder)."""
    if not model_dir.is_dir() or model_dir.resolve() == out.resolve():
        return contextlib.nullcontext()
    return folder_lock(model_dir, what=what, shared=True)


def run_grid(cfg: Config, *, progress: bool = True) -> pd.DataFrame:
    """Score the methods of ``experiment.methods`` for every target, source, budget and seed; write the results.

    Writes ``results.csv`` (one row per target, source, method, budget, seed of this config),
    ``scores.csv`` (every evaluation clip's score behind each row), ``summary.csv``, ``skipped.csv``
    (bad clips left out) and the resolved ``config.yaml`` into ``output.result_dir``. Each row goes
    into the folder's store (`common.experiment.store.ResultStore`) the moment it is finished and
    results.csv / scores.csv are rewritten atomically after the first target and then at most every
    `RESULTS_EVERY_S` when a target is done, so a killed run resumes:
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
        raise no_source_sets(cfg, machines)
    out, model_dir = cfg.output.result_dir, Path(cfg.transfer.init_from)
    what = f"transfer {cfg.source}"
    with folder_lock(out, what=what), _model_dir_lock(model_dir, out, what):
        try:
            return _transfer(cfg, targets, progress=progress)
        finally:
            _CONTEXT.clear()  # release the data and models of this run


def _plan(cfg: Config, ctx: _Context, targets) -> Plan:
    """Check everything up front (clips, budgets, pretrained models, frozen layers), then plan every cell."""
    checked = {t: ctx.machines.checked(t) for t, _ in targets}
    _check_budgets(cfg, checked)
    found = draws(cfg, ctx.machines, [t for t, _ in targets], select_machines(cfg))
    per_draw = VERSIONS[cfg.experiment.version].per_draw  # v5: the sets depend on each budget draw
    if per_draw:
        targets = [(t, distinct_sets(found, t)) for t, _ in targets]
    methods = {name: m.pretrains for name, m in METHODS.items() if name in cfg.experiment.methods}
    sets = sorted({s for _, target_sets in targets for s in target_sets}, key=lambda s: s.label)
    # A classifier of one class is refused as pretrain refuses it (not as "not found: run pretrain").
    check_classes(cfg, [PretrainJob(s, p, cfg.experiment.pretrain_seed) for s in sets
                        for p in CLASSIFIER_PRETRAININGS if p in methods.values()], ctx.machines)
    # Pretrained models are checked only when a listed method starts from one (not for `methods: [scratch]`).
    keys = {(s.label, pre): ctx.pretrained_key(s, pre) for s in sets for pre in set(methods.values())
            if pre not in NO_SOURCE}
    if GENERAL in methods.values():  # the package weights, read (and refused when missing) before any work
        keys[("none", GENERAL)] = ctx.pretrained_key(None, GENERAL)
    if set(methods) & set(FREEZE_METHODS):
        for s in sets:
            _check_freeze(cfg, ctx.sidecar(s, AUTOENCODER), pretrained_model_path(cfg.transfer.init_from, s.label))
    return plan(cfg, targets, {t: ctx.target_key(t) for t, _ in targets}, keys, methods,
                found if per_draw else None)


def _check_freeze(cfg: Config, sidecar: Sidecar, path: Path) -> None:
    """``transfer.freeze`` names only layers of the pretrained model it fine-tunes: refused before any row."""
    if not cfg.transfer.freeze or not isinstance(sidecar.architecture, dict):
        return
    known = [layer.name for layer in build_model(sidecar.architecture).layers]
    unknown = [name for name in cfg.transfer.freeze if name not in known]
    if unknown:
        raise ConfigError(f"{cfg.source}: 'transfer.freeze' names {unknown}, which the pretrained model {path} "
                          f"does not have; its layers: {', '.join(known)}")


def _transfer(cfg: Config, targets, *, progress: bool) -> pd.DataFrame:
    """`transfer` with its folders locked: check everything up front, then compute what the store lacks.

    The cells run on the executor of ``experiment.executor``; each result is stored here, the
    moment it arrives, and results.csv is rewritten when the last cell of a target is in (the first target's
    at once, then at most every `RESULTS_EVERY_S`: each rewrite writes every clip score again).
    """
    out = cfg.output.result_dir
    ctx = _context(cfg, progress=progress, fresh=True)
    the_plan = _plan(cfg, ctx, targets)
    store = ResultStore(out)
    store.open(verify=functools.partial(legacy_row_problem, out, max_fpr=cfg.eval.max_fpr))
    done = reusable(store, the_plan.hashes, out)
    save_config(cfg, out / "config.yaml")
    write_skipped(out, {t: ctx.machines.checked(t).skipped for t, _ in targets})
    todo = [c for c in the_plan.cells if c.key not in done]
    left = Counter(c.target for c in todo)
    bar = tqdm(total=len(the_plan.cells), initial=len(the_plan.cells) - len(todo),
               desc=f"transfer {cfg.experiment.version}", disable=not progress, unit="run")
    written = None  # when results.csv was last rewritten
    with executor(cfg, tasks=len(todo)) as ex:
        if ex.remote:
            _load_features(ctx, todo)
        for cell, result in ex.run(functools.partial(run_cell, cfg), todo, name=_cell_name):
            _save(ctx, store, result)
            done[cell.key] = (result.row, result.scores)
            bar.update(1)
            left[cell.target] -= 1
            if not left[cell.target] and (written is None or time.monotonic() - written >= RESULTS_EVERY_S):
                _write(out, done)
                written = time.monotonic()
    bar.close()
    results = _write(out, done)
    write_summary(out, results)
    warn_kept(store, the_plan.hashes, out)
    return results


def _load_features(ctx: _Context, cells) -> None:
    """Load (extract once, into the cache) the features of every machine the cells read, before workers do."""
    for machine in sorted({m for c in cells for m in (c.target, *(c.source.machines if c.source else ()))}):
        ctx.machines[machine]


def _cell_name(cell: Cell) -> str:
    return task_name("cell", cell.target.type, cell.target.id, cell.source_label, cell.method, cell.budget, cell.seed)


def _save(ctx: _Context, store: ResultStore, result: CellResult) -> None:
    """Write what a cell gave back: its shared files, its model (another config's goes to the store), its row."""
    for item in result.shared + ((result.model,) if result.model is not None else ()):
        if isinstance(item, TextOut):
            atomic_write_text(item.path, item.text)
            continue
        if item is result.model:
            set_aside(store.out, item.path, result.row["config_hash"])
        if item.copy_from is not None:
            copy_model(item.copy_from, item.path, sidecar=item.sidecar)
            continue
        save_weights(item.architecture, item.weights, item.path, sidecar=item.sidecar, head=item.head,
                     model=lambda: holding(item.architecture, item.weights, trainer=ctx.trainer))
    store.save(result.row, result.scores)


def _write(out: Path, done: dict[tuple, tuple[dict[str, Any], pd.DataFrame]]) -> pd.DataFrame:
    rows, scores = zip(*done.values()) if done else ((), ())
    return write_results(out, list(rows), list(scores))
