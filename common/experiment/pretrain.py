"""The pretrained models of each source set (or found up to date), their training clips' scores and threshold.

Three pretrainings, each run when a method of ``experiment.methods`` starts from it: ``autoencoder``
(the dense autoencoder fitted on the source clips), ``embedding`` (the machine-ID classifier of
`common.models.classifier`, one class per source machine; saved with a bank of its source clips'
embeddings, the zero-shot scorer of ``embed_zero_shot``) and ``spectrogram`` (the spectrogram classifier of
`common.models.spec_classifier`, the same classes and bank; `common.experiment.pretrain_classifier` trains both). Each model learns from the training
pools of all its source machines (never evaluation clips) and is saved with its sidecar the moment
it is trained, so a killed run resumes with the next one. Each model is one job (`pretrain_job`),
run in this process or as a task on Dask workers (``experiment.executor``), which then write the
model. A transfer run reads these models back (`pretrained_sidecar`, `load_pretrained`), checked
against its own features and source sets.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from common.models.autoencoder import architecture
from common.features.vectorset import VectorSet
from common.config import Config, save_config
from common.data.dataset import Machines, MachineData, n_channels, select_machines, write_skipped
from common.experiment.pretrain_classifier import pretrain_classifier, source_classes
from common.errors import ConfigError, DataError, ModelError
from common.experiment.executor import executor, task_name
from common.io import atomic_write_text
from common.data.names import pretrained_model_path
from common.lock import check_still_locked, folder_lock
from common.methods.catalog import (AUTOENCODER, CLASSIFIER_PRETRAININGS, METHODS_CATALOG, MODEL_PRETRAININGS,
                                   methods_pretraining)
from common.models.saved import Sidecar, check_features, load_head, load_model, save_model, up_to_date, write_sidecar
from common.experiment.plan import no_source_sets
from common.methods.base import PretrainJob, data_fields, data_identity, feature_sidecar, fit_identity, key_of, threshold_fields
from common.scoring.reconstruction import clip_scores
from common.data.selection import distinct_sets, draws
from common.data.versions import SourceSet, all_source_sets
from common.models.train import Trainer

SCORE_CLIPS = 64  # clips scored at once (64 x 309 vectors = 25 MB; scoring holds ~4 copies)


@dataclass(frozen=True)
class PretrainedFile:
    """A pretrained model on disk and whether this call trained it or found it up to date."""

    source: SourceSet
    path: Path
    trained: bool


def model_path(cfg: Config, source: SourceSet, pretraining: str = AUTOENCODER) -> Path:
    """Where the model of `pretraining` on `source` lives."""
    return pretrained_model_path(cfg.output.model_dir, source.label, pretraining)


def pretrainings(cfg: Config) -> list[str]:
    """The pretrainings the methods of ``experiment.methods`` start from, in a fixed order."""
    wanted = {METHODS_CATALOG[m].pretrains for m in cfg.experiment.methods}
    return [p for p in MODEL_PRETRAININGS if p in wanted]


def check_classes(cfg: Config, jobs: list[PretrainJob], data: Machines) -> None:
    """Refuse, before any training, a classifier pretraining (`CLASSIFIER_PRETRAININGS`) of fewer than two classes: a
    source set of one machine whose clips name no domain or attributes (`pretrain_classifier.source_classes`)."""

    single = sorted({j.source.label for j in jobs if j.method in CLASSIFIER_PRETRAININGS
                     and len(j.source.machines) < 2 and len(source_classes(data, j.source.machines)) < 2})
    if single:
        embed = [m for p in CLASSIFIER_PRETRAININGS for m in methods_pretraining(cfg.experiment.methods, p)]
        raise DataError(
            f"{cfg.source}: the source set(s) {single} of {cfg.experiment.version} hold one machine each, but "
            f"{embed} pretrain a classifier of the source machines, which needs at least two: select more "
            "machines (data.types / data.ids) or leave those methods out of 'experiment.methods'")


def source_key(cfg: Config, machines: Machines, source: SourceSet) -> str:
    """Key of the source machines' training clips: what a method reading them in the cell depends on."""
    return key_of(data_identity(cfg, [f for m in source.machines for f in machines.checked(m).split.train]))


def pretrain(cfg: Config, *, progress: bool = True) -> list[PretrainedFile]:
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
    if not all_source_sets(cfg.experiment.version, machines):
        raise no_source_sets(cfg, machines)
    data = Machines(cfg, progress=progress)
    sets = distinct_sets(draws(cfg, data, machines, machines))  # v5: every set its budget draws choose
    jobs = [PretrainJob(s, p, cfg.experiment.pretrain_seed) for p in pretrainings(cfg) for s in sets]
    check_classes(cfg, jobs, data)
    with folder_lock(cfg.output.model_dir, what=f"pretrain {cfg.source}"):
        used = sorted({m for job in jobs for m in job.source.machines})
        write_skipped(cfg.output.model_dir, {m: data.checked(m).skipped for m in used})
        _STATE[:] = [(cfg, trainer_of(cfg), data)]
        bar = tqdm(total=len(jobs), desc=f"pretrain {cfg.experiment.version}", disable=not progress, unit="model")
        found = {}
        try:
            with executor(cfg) as ex:
                for m in used if ex.remote else ():
                    data[m]  # features extracted here, once, not by several workers at a time
                for job, made in ex.run(functools.partial(pretrain_job, cfg), jobs, name=_job_name):
                    found[job] = made
                    bar.update(1)
        finally:
            _STATE.clear()
            bar.close()
        save_config(cfg, cfg.output.model_dir / "config.yaml")
    return [found[job] for job in jobs]


_STATE: list[tuple[Config, Trainer, Machines]] = []  # at most one: the config this process last pretrained for


def trainer_of(cfg: Config) -> Trainer:
    """The autoencoder trainer with `cfg`'s memory limits (``fit.max_in_memory_mb``, ``fit.max_frames_mb``)."""
    return Trainer(in_memory_bytes=cfg.fit.max_in_memory_mb * 2**20, frames_bytes=cfg.fit.max_frames_mb * 2**20)


def pretrain_job(cfg: Config, job: PretrainJob) -> PretrainedFile:
    """Train (or find up to date) the model of one job and save it: a task of `pretrain`, in any process.

    Reuses this process's trainer and data of `cfg` (the driver's, when it runs the job itself).
    """
    if not _STATE or _STATE[0][0] != cfg:
        _STATE[:] = [(cfg, trainer_of(cfg), Machines(cfg, progress=False))]
    _, trainer, data = _STATE[0]
    return _pretrain_one(cfg, trainer, data, job)


def _job_name(job: PretrainJob) -> str:
    return task_name("pretrain", job.source.label, job.method, job.seed)


def _pretrain_one(cfg: Config, trainer: Trainer, data: Machines, job: PretrainJob) -> PretrainedFile:
    """Train the model of `job` and save it with its sidecar, unless an up-to-date one is on disk."""
    if job.method in CLASSIFIER_PRETRAININGS:
        path = model_path(cfg, job.source, job.method)
        return PretrainedFile(job.source, path, pretrain_classifier(cfg, data, job, path))
    source, seed = job.source, job.seed
    path = model_path(cfg, source)
    train_files = [f for m in source.machines for f in data.checked(m).split.train]
    key = key_of({"data": data_identity(cfg, train_files), "model": cfg.to_dict()["model"],
                  "fit": fit_identity(cfg), "seed": seed})
    if up_to_date(path, key) is not None:
        update_threshold(cfg, path, source, data)
        return PretrainedFile(source, path, trained=False)
    # Over fit.max_in_memory_mb, streamed from the memory-mapped feature caches (never concatenated), or held as
    # frames up to fit.max_frames_mb.
    x = VectorSet.from_clips([(data[m].features, data[m].split.train) for m in source.machines])
    arch = architecture(x.dim, hidden=cfg.model.hidden, bottleneck=cfg.model.bottleneck,
                        batch_norm=cfg.model.batch_norm)
    fit = trainer.fit(arch, trainer.init_weights(arch, seed=seed), x, epochs=cfg.fit.epochs,
                      batch_size=cfg.fit.batch_size, learning_rate=cfg.fit.learning_rate,
                      validation_split=cfg.fit.validation_split, shuffle=cfg.fit.shuffle, seed=seed)
    train_scores = train_clip_scores(trainer.with_weights(arch, fit.weights), [data[m] for m in source.machines])
    skipped = sorted(p for m in source.machines for p in data.checked(m).skipped)
    sidecar = Sidecar(
        key=key, **data_fields(cfg, train_files), version=cfg.experiment.version, source=source.label,
        sources=[m.name for m in source.machines], budget="all",
        n_train_clips=len(train_files), n_train_vectors=int(len(x)), seed=seed,
        n_skipped_clips=len(skipped), skipped_clips=skipped, n_channels=n_channels(train_files),
        features=feature_sidecar(cfg), architecture=arch, fit=cfg.to_dict()["fit"],
        final_loss=fit.history["loss"][-1], train_seconds=round(fit.seconds, 3), streamed=fit.streamed,
        train_scores=train_scores.tolist(), **threshold_fields(cfg, train_scores),
    )
    check_still_locked(cfg.output.model_dir, writing=path)  # a worker whose driver was killed writes nothing
    save_model(trainer.with_weights(arch, fit.weights), path, sidecar=sidecar)
    atomic_write_text(path.with_suffix(".history.csv"), pd.DataFrame(fit.history).rename_axis("epoch").to_csv())
    return PretrainedFile(source, path, trained=True)


def train_clip_scores(model, machines: list[MachineData]) -> np.ndarray:
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


def update_threshold(cfg: Config, path: Path, source: SourceSet, data: Machines) -> None:
    """Give an up-to-date pretrained model the threshold the config asks for, without retraining it.

    Models saved before thresholds (or channel counts, or the key of their training clips) existed get
    the scores of their training clips (and their clips' channel count and key) first: the model's key
    matched, so these are its clips.
    """
    sidecar = Sidecar.read(path)
    if sidecar.train_scores is None:
        model, _ = load_model(path, features=feature_sidecar(cfg))
        sidecar = sidecar.replace(train_scores=train_clip_scores(model, [data[m] for m in source.machines]).tolist())
    train_files = [f for m in source.machines for f in data.checked(m).split.train]
    fields = threshold_fields(cfg, sidecar.train_scores) | {
        "n_channels": n_channels(data.checked(source.machines[0]).split.train)} | data_fields(cfg, train_files)
    if any(getattr(sidecar, k) != v for k, v in fields.items()):
        check_still_locked(cfg.output.model_dir, writing=path.with_suffix(".json"))
        write_sidecar(path, sidecar.replace(**fields))


def pretrained_sidecar(model_dir: Path, source: SourceSet, cfg: Config, pretraining: str = AUTOENCODER, *,
                       data: Machines | None = None) -> Sidecar:
    """The sidecar of the model pretrained on `source`, checked against the config's features and machines.

    With `data` (the run's checked machines), also against the source set's exact training clips,
    the config's model sizes and the Keras backend (`check_pretrained`).

    Raises
    ------
    ModelError
        The model is missing, was trained on other features or other machines than `source`, or
        has no scores of its training clips to fit a threshold on; or (with `data`) on other clips.
    ConfigError
        (with `data`) ``model.*`` or ``fit.backend`` differ from the pretrained model's.
    """
    path = pretrained_model_path(model_dir, source.label, pretraining)
    if not path.is_file():
        raise ModelError(
            f"pretrained model {path} not found: run `python -m common pretrain` with the make_pretrain "
            f"YAML of {cfg.experiment.version} first"
        )
    sidecar = Sidecar.read(path)
    check_features(sidecar.to_dict(), feature_sidecar(cfg), path=path)
    planned = [m.name for m in source.machines]
    if sorted(sidecar.sources or []) != sorted(planned):
        raise ModelError(
            f"pretrained model {path} was trained on the machines {sidecar.sources}, but this run plans it "
            f"for the source set {source.label} = {planned} (other data.types / data.ids than its pretrain run): "
            f"pretrain with this config's data selection, or set transfer.init_from to another model folder"
        )
    if sidecar.train_scores is None:
        raise ModelError(
            f"pretrained model {path} has no scores of its training clips to fit a decision threshold on: run "
            f"`python -m common pretrain` with the make_pretrain YAML of {cfg.experiment.version} again (it adds "
            "them without retraining)"
        )
    if data is not None:
        check_pretrained(sidecar, path, cfg, source, pretraining, data=data)
    return sidecar


def check_pretrained(sidecar: Sidecar, path: Path, cfg: Config, source: SourceSet, pretraining: str, *,
                     data: Machines) -> None:
    """Refuse a pretrained model that is not what this transfer run would pretrain on `source`.

    Its training clips must be the source set's clips of this run (``pretrain`` would otherwise call
    it stale and retrain it; a transfer must not fine-tune it as if it were current); an autoencoder's
    sizes must be ``model.*`` (scratch trains those); and it must have been trained on the Keras
    backend this run fine-tunes on (a backend change retrains rather than mixes).

    Raises
    ------
    ModelError
        Its sidecar records no key of its training clips, or another one than the source set's.
    ConfigError
        ``model.hidden`` / ``bottleneck`` / ``batch_norm`` or ``fit.backend`` differ from the model's.
    """
    rerun = f"run `python -m common pretrain` with the make_pretrain YAML of {cfg.experiment.version}"
    if sidecar.data_key is None:
        raise ModelError(
            f"pretrained model {path} records no key of its training clips (it was saved by an older version), so "
            f"this run cannot tell whether it learned from the clips of {source.label} under {cfg.data.root}: "
            f"{rerun} again (it adds the key without retraining when the clips are unchanged)")
    train_files = [f for m in source.machines for f in data.checked(m).split.train]
    if sidecar.data_key != data_identity(cfg, train_files):
        where = ("the same data.root, whose clips changed since (regenerated, replaced or edited files)"
                 if sidecar.data_root == str(cfg.data.root) else f"data.root {sidecar.data_root}")
        raise ModelError(
            f"pretrained model {path} was trained on other clips than the source set {source.label} of this run: "
            f"{sidecar.n_train_clips} clips under {where}, while this run's are {len(train_files)} clips under "
            f"data.root {cfg.data.root}: {rerun} and this data (it retrains the model on these clips), or set "
            "transfer.init_from to models pretrained on them")
    _check_same_settings(sidecar, path, cfg, pretraining)


def _check_same_settings(sidecar: Sidecar, path: Path, cfg: Config, pretraining: str) -> None:
    """Refuse ``model.*`` sizes or a ``fit.backend`` other than the pretrained model's (a run would mix them)."""
    arch = sidecar.architecture or {}
    if pretraining == AUTOENCODER:
        wanted = {"hidden": list(cfg.model.hidden), "bottleneck": cfg.model.bottleneck,
                  "batch_norm": cfg.model.batch_norm}
        for name, value in wanted.items():
            if name in arch and arch[name] != value:
                raise ConfigError(
                    f"{cfg.source}: 'model.{name}' is {value}, but the pretrained model {path} has {arch[name]}: "
                    f"scratch would train {value} while zero_shot and transfer use {arch[name]}. Set model.{name}: "
                    f"{arch[name]} as its pretrain YAML has it, or pretrain with {value} into another model_dir")
    running = fit_identity(cfg)["backend"]
    if sidecar.backend is not None and sidecar.backend != running:
        raise ConfigError(
            f"{cfg.source}: 'fit.backend' runs this transfer on {running}, but the pretrained model {path} was "
            f"trained on {sidecar.backend}: its rows would mix the two backends. Set fit.backend: {sidecar.backend}, "
            f"or pretrain with fit.backend: {running} into another model_dir")


def load_pretrained(model_dir: Path, source: SourceSet, cfg: Config,
                    pretraining: str = AUTOENCODER) -> tuple[list[np.ndarray], dict[str, np.ndarray]]:
    """Weights and scorer arrays of the model pretrained on `source` (Keras safe mode; features checked again)."""
    path = pretrained_model_path(model_dir, source.label, pretraining)
    model, sidecar = load_model(path, features=feature_sidecar(cfg))
    return model.get_weights(), load_head(path, sidecar)
