"""Benchmark: wall time of the whole v1-v4 grid with every method, by stage, projected to the full MIMII size.

Usage::

    python benchmarks/bench_grid.py [--scale 0.02] [--root DIR] [--methods all] [--source-scale 0.045]
                                    [--epochs 2] [--transfer-epochs 2] [--classifier-epochs 2] [--workers 2]
                                    [--rate-vectors 100000] [--ceiling-gflops G] [--backend auto]

The grid issue 32 projects: every version v1-v4, every method of the catalogue
(`common.methods.catalog.METHODS_CATALOG`, the four families), the budgets 1, 2, 4, all and seed 0 of ``make demo``,
the YAMLs' other settings; MIMII-sized: 16 machines of 1,000 normal and 250 abnormal 10 s clips. It runs in
temporary copies of the Version YAMLs (the repository's models and results are untouched), with fewer epochs for
the fits that grow with them, in two parts, each piece timed on its own (`GridLog`):

1. **Pretraining**, on a 16-machine synthetic set at ``--scale`` (``round(1000 s)`` normal and ``round(250 s)``
   abnormal clips per machine) and again at ``--rest-scale`` (half of it): every version's models of every kind
   (`common.methods.catalog.MODEL_PRETRAININGS`: ``autoencoder``, ``embedding``, the dense machine-ID classifier,
   and ``spectrogram``, the CNN classifier), split into their fits, their saved models and the rest (scoring the
   training clips; a classifier's inputs and zero-shot bank), plus what the kinds share.
2. **The cells**, on one target at full size (``--target``, fan/id_00: 1,000 + 250 one-channel clips, the other 15
   machines at ``--source-scale``, which gives them the 32 training clips ``statistics.source_clips`` reads): every
   cell of that target in every version (368 cells), each timed by the family of its method
   (`common.methods.catalog.METHOD_FAMILY`) and split into its fits (autoencoder scratch and fine-tuning;
   ``embed_finetune``'s classifier), the SoundNet embeddings it computes (general sound: each clip once, the cache
   serves later cells and versions), storing its row and model, and the rest (scoring, Ledoit-Wolf fits, kNN banks,
   thresholds); plus the grid's own work (planning and checks; rewriting results.csv and scores.csv), and the check
   and features of the target's clips.

PROJECTION to the full grid with the YAMLs' epochs, one rule per piece:

- a fit costs ``fixed + samples / rate``, its samples being rows x epochs, the epochs scaled to the YAML's
  (``fit.epochs``, ``transfer.epochs``, ``embedding.epochs``, ``spectrogram.epochs``; ``embedding.finetune_epochs``
  runs as is). A pretraining
  fit's rows are scaled by the growth of the training clips (about 1 / scale); a cell's rows are full-size already.
  The rates are measured here with large fits of the grid's own models and settings: the autoencoder in RAM,
  streamed, or streamed with its frames on the device, whichever path its set takes at full size (a set over
  ``fit.max_in_memory_mb`` is streamed; `common.models.compiled_fit.device_frames`), the classifiers through their own
  training functions (`common.models.classifier.train_classifier`, `common.models.spec_classifier.
  train_spec_classifier`; each with its per-epoch and per-fit costs); the autoencoder's fixed cost per fit from the
  line through the cells' fits that compiled nothing (a fit of a new model or data size compiles: once per
  process, as measured);
- a saved pretrained model costs what it costs here (the number of models does not grow); the rest of a pretraining
  is a line in the clips per machine through the two scales (its intercept does not grow, its slope does);
- a cell's pieces were measured at full size: x the targets (16); SoundNet's first call of each network (weights,
  compile) once per process;
- rewriting results.csv and scores.csv after each target: the measured rewrite of one target's rows, x
  ``T (T + 1) / 2 + T`` for T targets (the files grow by a target's rows at each rewrite; one more at the end);
- check and features: the target's, x the targets.

With ``--workers N`` (default 2) the grid is also projected for ``experiment.executor: local`` with N workers of one
thread each, the way to use a 2-core machine fully: the rates of N one-core processes training side by side are
measured (``--child-rate``), the work is spread evenly over the workers, SoundNet runs at its one-core rate and the
rest slower on one core by the ratio of the autoencoder's in-RAM rates.

EFFECTIVE TRAINING: the floating-point operations of every fit of the full grid (each model's own per sample: for
the dense networks forward 2 x its weights, backward 4 x its trainable weights; for the CNN 3 x its forward pass as
XLA counts it) over the projected seconds of the whole grid, as a
fraction of the machine's arithmetic ceiling measured in the same run (`bench_ceiling.py`: the best float32 matmul,
measured again beside the rate fits; the larger of that and ``--ceiling-gflops`` counts); target at least half. For
the autoencoder without frozen layers this is its training samples/s over the ceiling's (6 x 50,760 operations).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from _bench import (MIMII_ABNORMAL, best_seconds, MIMII_NORMAL, REPO, VECTORS_PER_CLIP, add_backend_option, backend_line,
                    dataset_scale, load_line, machine_line, make_dataset, scaled_counts, subset_root, use_backend)
from bench_ceiling import ceiling_gflops, ceiling_line, ceiling_samples, n_weights

VERSIONS = ("v1", "v2", "v3", "v4")
TARGET_HOURS = 2.0  # issue 32: the full-MIMII grid with every family on one 2-core machine
TARGET_FIXED_S = 0.1  # issue 17: per-fit fixed cost
TARGET_FRACTION = 0.5  # issues 17 and 32: the grid's effective training, of the ceiling
IN_RAM, STREAMED, FRAMES = "in RAM", "streamed", "streamed, frames on the device"  # the autoencoder's paths
CLASSIFIER, SPEC, SOUNDNET = "classifier", "spectrogram classifier", "soundnet"  # the machine-ID classifiers
AE = "autoencoder"
CLASSIFIERS = (CLASSIFIER, SPEC)  # trained through Keras' fit, one epoch at a time: rate, per-epoch and per-fit costs
KIND_NAMES = {"embedding": "embedding (machine-ID classifier)", "spectrogram": "spectrogram (CNN classifier)"}


def grid_experiment(methods: list[str]) -> dict:
    """``experiment`` overrides of the projected grid: the demo's budgets and seeds, the given methods."""
    from common.demo import DEMO_OVERRIDES

    demo = DEMO_OVERRIDES["experiment"]
    return {"budgets": list(demo["budgets"]), "seeds": list(demo["seeds"]), "methods": list(methods)}


def method_list(spec: str) -> list[str]:
    """``--methods``: ``all`` (the catalogue, in results order), ``demo`` or a comma list (scratch always in)."""
    from common.methods.catalog import DEMO_METHODS, METHOD_NAMES

    names = {"all": list(METHOD_NAMES), "demo": list(DEMO_METHODS)}.get(spec, spec.split(","))
    unknown = [m for m in names if m not in METHOD_NAMES]
    if unknown:
        raise SystemExit(f"--methods: {unknown} not in the catalogue (common/methods/catalog.py): {list(METHOD_NAMES)}")
    return (["scratch"] if "scratch" not in names else []) + names


def copy_versions(work: Path, versions) -> None:
    """The Version YAMLs (only) under `work`, so models and results are written there."""
    for v in versions:
        folder = work / f"Version{v[1:]}"
        folder.mkdir(parents=True, exist_ok=True)
        for name in (f"make_pretrain_{v}.yaml", f"transfer_pretrain_{v}.yaml"):
            (folder / name).write_text((REPO / folder.name / name).read_text())


# --------------------------------------------------------------------------------------------
# What the runs measure


@dataclass
class Fit:
    """One timed fit: where it ran (stage, part), its model, seconds, rows x epochs, what its rows grow with.

    ``kind``: ``scratch`` / ``transfer`` (autoencoder from random or loaded weights), ``pretrain`` / ``finetune``
    (classifier). ``budget``: the cell's (None: pretraining, the whole source set). ``set_bytes``: a `VectorSet`'s
    size (streamed when too large at full size); None for an array. ``target_rows``: rows of a fine-tuned
    classifier's new class (the budget's); its other rows replay source clips. ``flops``: per sample.
    """

    stage: str
    part: str
    model: str
    kind: str
    seconds: float
    rows: int
    epochs: int
    budget: int | str | None
    set_bytes: int | None
    flops: float
    target_rows: int = 0
    frames_bytes: int | None = None  # a set of stacked frames: the bytes of its frames (`VectorSet.frames`)
    first: bool = False  # the first fit of its model, frozen layers and device size in the process: it compiled

    @property
    def samples(self) -> int:
        return self.rows * self.epochs


@dataclass
class Embed:
    """One call computing SoundNet embeddings: where, seconds, clip requests (whole clips, halves)."""

    stage: str
    part: str
    seconds: float
    whole: int
    halves: int


_FLOPS: dict[tuple, float] = {}


def model_flops(arch: dict, freeze=()) -> float:
    """Training operations per sample of the model of `arch`: 2 x its weights (forward) + 4 x its trainable ones.

    The weights are the dense kernels and biases and the classifier's class centers; the classifier's fixed
    standardisation (two numbers per input) is left out.
    """
    import numpy as np

    key = (json.dumps(arch, sort_keys=True), tuple(freeze))
    if key not in _FLOPS and arch.get("kind") == "spec_classifier":
        _FLOPS[key] = 3.0 * forward_flops(arch)
    if key not in _FLOPS:
        from common.models.classifier import build_classifier
        from common.models.kinds import build_model
        from common.models.train import freeze_layers

        model = build_classifier(arch) if arch.get("kind") == "classifier" else build_model(arch)
        freeze_layers(model, tuple(freeze))
        layers = [layer for layer in model.layers if layer.name != "standardize"]
        total = sum(int(np.prod(w.shape)) for layer in layers for w in layer.weights)
        trainable = sum(int(np.prod(w.shape)) for layer in layers for w in layer.trainable_weights)
        _FLOPS[key] = 2.0 * total + 4.0 * trainable
    return _FLOPS[key]


def forward_flops(arch: dict, batch: int = 64) -> float:
    """Floating-point operations of one sample's forward pass through the spectrogram classifier of `arch`, as XLA
    counts them in the compiled program (convolutions reuse their weights: 2 x weights undercounts them)."""
    import jax
    import numpy as np

    from common.models.spec_classifier import build_spec_classifier

    model = build_spec_classifier(arch)
    x = np.zeros((batch, *model.input_shape[1:]), dtype=np.float32)
    trainable = [v.value for v in model.trainable_variables]
    fixed = [v.value for v in model.non_trainable_variables]
    call = jax.jit(lambda t, n, x: model.stateless_call(t, n, x, training=True)[0])
    cost = call.lower(trainable, fixed, x).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float(cost["flops"]) / batch


class GridLog:
    """Times every piece of a grid run in this process (serial executor), by stage and part.

    ``stage``: ``pretrain vN`` or ``transfer vN``; ``part``: the pretraining kind of the job running, or the
    family of the cell running. Records fits (autoencoder `Trainer.fit`, classifier `train_classifier`), SoundNet
    embedding calls, saved models (and the autoencoder's initial weights), pretraining jobs, cells and stored rows.
    """

    def __init__(self) -> None:
        self.stage, self.part = "", ""
        self.budget: int | str | None = None
        self.fits: list[Fit] = []
        self.embeds: list[Embed] = []
        self.models: list[tuple[str, str, float]] = []  # (stage, part, seconds) of initial weights and saves
        self.units: list[tuple[str, str, float]] = []  # (stage, part, seconds) of each pretraining job or cell
        self.saves: list[tuple[str, str, float]] = []  # (stage, family, seconds) of storing a cell's row and files
        self.writes: list[tuple[str, str, float]] = []  # (stage, "", seconds) of rewriting results.csv / scores.csv
        self.distances: list[tuple[str, str, float]] = []  # (stage, family, seconds) of Mahalanobis distances
        self.covariances: list[tuple[str, str, float]] = []  # (stage, family, seconds) of Ledoit-Wolf covariances
        self._saved: list[tuple[object, str, object]] = []
        self._fresh: set[int] = set()
        self._compiled: set[tuple] = set()  # (arch, frozen layers, device rows) of the autoencoder fits so far

    def _patch(self, owner, name: str, make) -> None:
        original = getattr(owner, name, None)
        if original is None:
            raise SystemExit(f"bench_grid.py times {owner.__name__}.{name}, which is not there any more: the grid's "
                             "code changed; update GridLog.__enter__")
        self._saved.append((owner, name, original))
        setattr(owner, name, make(original))

    def _patch_everywhere(self, function, make) -> None:
        """Patch `function` in every loaded `common` module that imported it by name."""
        wrapped, found = make(function), False
        for name, module in list(sys.modules.items()):
            if name.startswith("common.") and module is not None:
                for attr, value in list(vars(module).items()):
                    if value is function and attr == function.__name__:
                        self._saved.append((module, attr, value))
                        setattr(module, attr, wrapped)
                        found = True
        if not found:
            raise SystemExit(f"bench_grid.py times {function.__module__}.{function.__name__}, which no module uses")

    def _timed(self, into: list):
        def make(original):
            def timed(*args, **kw):
                start = time.perf_counter()
                try:
                    return original(*args, **kw)
                finally:
                    into.append((self.stage, self.part, time.perf_counter() - start))
            return timed
        return make

    def __enter__(self) -> GridLog:
        import numpy as np

        import common.experiment.grid as grid
        import common.experiment.pretrain as pretrain
        import common.experiment.pretrain_classifier as pretrain_classifier
        import common.methods.registry  # noqa: F401 (every family, so that their imports are patched too)
        import common.models.classifier as classifier
        import common.models.spec_classifier as spec_classifier
        import common.scoring.mahalanobis as mahalanobis
        from common.models.compiled_fit import padded_rows
        import common.models.sound_embeddings as sound_embeddings
        from common.features.vectorset import VectorSet
        from common.methods.catalog import METHOD_FAMILY
        from common.models.train import Trainer, validation_rows

        def init_weights(original):
            def wrapped(trainer, arch, *, seed):
                weights = self._timed(self.models)(original)(trainer, arch, seed=seed)
                self._fresh.add(id(weights))
                return weights
            return wrapped

        def fit(original):
            def wrapped(trainer, arch, weights, x, **kw):
                count = x.frame_count() if isinstance(x, VectorSet) else None
                frames_bytes = None if count is None else count * x.frame_width * x.dtype.itemsize
                shape = (json.dumps(arch, sort_keys=True), tuple(kw.get("freeze", ())), padded_rows(len(x)))
                first = shape not in self._compiled
                self._compiled.add(shape)
                start = time.perf_counter()
                out = original(trainer, arch, weights, x, **kw)
                self.fits.append(Fit(self.stage, self.part, AE, "scratch" if id(weights) in self._fresh else "transfer",
                                     time.perf_counter() - start, validation_rows(len(x), kw.get("validation_split", 0.0)),
                                     kw["epochs"], self.budget, x.nbytes if isinstance(x, VectorSet) else None,
                                     model_flops(arch, kw.get("freeze", ())), frames_bytes=frames_bytes,
                                     first=first))
                return out
            return wrapped

        def train_classifier(original):
            def wrapped(arch, weights, x, labels, **kw):
                start = time.perf_counter()
                out = original(arch, weights, x, labels, **kw)
                new_class = int(np.sum(np.asarray(labels) == arch["n_classes"] - 1)) if weights is not None else 0
                self.fits.append(Fit(self.stage, self.part, CLASSIFIER, "pretrain" if weights is None else "finetune",
                                     time.perf_counter() - start, len(x), kw["epochs"], self.budget, None,
                                     model_flops(arch, kw.get("freeze", ())), target_rows=new_class))
                return out
            return wrapped

        def train_spec(original):
            def wrapped(arch, x, labels, **kw):
                start = time.perf_counter()
                out = original(arch, x, labels, **kw)
                self.fits.append(Fit(self.stage, self.part, SPEC, "pretrain", time.perf_counter() - start, len(x),
                                     kw["epochs"], self.budget, None, model_flops(arch)))
                return out
            return wrapped

        def embed(original):
            def wrapped(requests, arch, **kw):
                start = time.perf_counter()
                out = original(requests, arch, **kw)
                halves = sum(part != "whole" for _, part in requests)
                self.embeds.append(Embed(self.stage, self.part, time.perf_counter() - start,
                                         len(requests) - halves, halves))
                return out
            return wrapped

        def pretrain_one(original):
            def wrapped(cfg, trainer, data, job):
                self.part = job.method
                try:
                    return self._timed(self.units)(original)(cfg, trainer, data, job)
                finally:
                    self.part = ""
            return wrapped

        def run_cell(original):
            def wrapped(cfg, cell):
                self.part, self.budget = METHOD_FAMILY[cell.method], cell.budget
                try:
                    return self._timed(self.units)(original)(cfg, cell)
                finally:
                    self.part, self.budget = "", None
            return wrapped

        def save(original):
            def wrapped(ctx, store, result):
                self.part = METHOD_FAMILY[result.cell.method]
                try:
                    return self._timed(self.saves)(original)(ctx, store, result)
                finally:
                    self.part = ""
            return wrapped

        self._patch(Trainer, "init_weights", init_weights)
        self._patch(Trainer, "fit", fit)
        self._patch_everywhere(classifier.train_classifier, train_classifier)
        self._patch_everywhere(spec_classifier.train_spec_classifier, train_spec)
        self._patch(sound_embeddings, "_embed", embed)
        self._patch(pretrain, "_pretrain_one", pretrain_one)
        self._patch(grid, "run_cell", run_cell)
        self._patch(grid, "_save", save)
        self._patch(grid, "_write", self._timed(self.writes))
        self._patch(mahalanobis, "mahalanobis", self._timed(self.distances))
        self._patch(mahalanobis, "ledoit_wolf", self._timed(self.covariances))
        for owner in (pretrain, pretrain_classifier):
            self._patch(owner, "save_model", self._timed(self.models))
        return self

    def __exit__(self, *exc) -> None:
        for owner, name, original in reversed(self._saved):
            setattr(owner, name, original)

    def only_target(self, target) -> None:
        """Restrict the grid to the cells of `target` and pretraining to its source sets (until `__exit__`)."""
        import common.experiment.grid as grid
        import common.experiment.pretrain as pretrain

        def sets(original):
            return lambda version, machine, machines: original(version, machine, machines) if machine == target else []

        def distinct(original):
            return lambda found, machine=None: original(found, target)

        self._patch(grid, "source_sets", sets)
        self._patch(pretrain, "distinct_sets", distinct)

    def select(self, stage: str, part: str | None = None, model: str | None = None) -> list[Fit]:
        """The fits of `stage` (and `part`, and `model`)."""
        return [f for f in self.fits if f.stage == stage and part in (None, f.part) and model in (None, f.model)]

    def total(self, rows: list, stage: str, part: str | None = None) -> tuple[float, int]:
        """(seconds, count) of `rows` ((stage, part, seconds) tuples) in `stage` (and `part`)."""
        found = [s for st, p, s in rows if st == stage and part in (None, p)]
        return sum(found), len(found)

    def _line_fits(self) -> list[Fit]:
        """The autoencoder's fits of the cells that compiled nothing (of every stage when there are none)."""
        fits = [f for f in self.fits if f.model == AE]
        return [f for f in fits if f.stage.startswith("transfer") and not f.first] or fits

    def line(self) -> tuple[float, float]:
        """(intercept seconds, seconds per sample) of the least-squares line seconds vs samples over the
        autoencoder's fits of the cells."""
        import numpy as np

        fits = self._line_fits()
        t = np.array([f.seconds for f in fits])
        n = np.array([f.samples for f in fits], dtype=float)
        if len(t) < 2 or np.ptp(n) == 0:
            return float("nan"), float("nan")
        slope, intercept = np.polyfit(n, t, 1)
        return float(intercept), float(slope)

    def fixed_cost(self, in_ram_rate: float) -> tuple[float, str]:
        """(fixed seconds per autoencoder fit, how): the median over the cells' fits that compiled nothing of seconds -
        samples / the large fits' in-RAM rate. (A least-squares line is pulled by the few budget-``all`` fits, whose
        rate differs from the small ones'; its intercept is printed beside.)"""
        import numpy as np

        fits = self._line_fits()
        if not fits:
            return 0.0, "no fits"
        residuals = [f.seconds - f.samples / in_ram_rate for f in fits]
        return max(float(np.median(residuals)), 0.0), (f"median over {len(fits)} fits that compiled nothing of "
                                                        "seconds - samples / in-RAM rate")


def grid_configs(work: Path, root: Path, versions, *, methods: list[str], epochs: int, transfer_epochs: int,
                 classifier_epochs: int):
    """(overrides of a run, the first version's own config: the YAMLs' epochs and fit settings)."""
    from common.config import load_config

    copy_versions(work, versions)
    data = {"root": str(root), "cache_dir": str(work / "cache")}
    overrides = {"data": data, "fit": {"epochs": epochs}, "transfer": {"epochs": transfer_epochs},
                 "embedding": {"epochs": classifier_epochs}, "spectrogram": {"epochs": classifier_epochs},
                 "output": {"scratch_dir": str(work / "scratch")}, "experiment": grid_experiment(methods)}
    own = load_config(work / f"Version{versions[0][1:]}" / f"make_pretrain_{versions[0]}.yaml",
                      overrides={"data": data})
    return overrides, own


# A row of a run: (label, seconds, what); what says how it is projected (`project`):
# ("fits", stage, part, model), ("embeds", stage, part), ("models", key), ("line", key), ("targets", key),
# ("writes", key).
def timed_stage(rows: list, log: GridLog, name: str, call, parts: tuple[str, ...]) -> None:
    """Run `call` as stage `name` of `log`; append its pieces, per part (pretraining kind or family), to `rows`."""
    log.stage = name
    start = time.perf_counter()
    call()
    wall = time.perf_counter() - start
    pretraining = name.startswith("pretrain")
    per = "line" if pretraining else "targets"
    for part in parts:
        units, count = log.total(log.units, name, part)
        if not count:
            continue
        label = f"{name} {part}"
        fits = {m: sum(f.seconds for f in log.select(name, part, m)) for m in (AE, *CLASSIFIERS)}
        embeds = sum(e.seconds for e in log.embeds if e.stage == name and e.part == part)
        models, n_models = log.total(log.models, name, part)
        for model, seconds in fits.items():
            if seconds:
                n = len(log.select(name, part, model))
                rows.append((f"{label}: {model} fits ({n})", seconds, ("fits", name, part, model)))
        if embeds:
            rows.append((f"{label}: SoundNet embeddings", embeds, ("embeds", name, part)))
        if pretraining:
            rows.append((f"{label}: models ({n_models} inits, saves)", models, ("models", f"{label} models")))
        rest = units - sum(fits.values()) - embeds - (models if pretraining else 0.0)  # models are inside the units
        what = "scoring, bank, thresholds" if pretraining else "scoring, thresholds, rows"
        rows.append((f"{label}: {what} ({count} {'jobs' if pretraining else 'cells'})", rest, (per, f"{label} rest")))
        if not pretraining:  # (initial weights are inside the cells: their rest)
            saves, n_saves = log.total(log.saves, name, part)
            rows.append((f"{label}: storing rows, models ({n_saves})", saves, (per, f"{label} store")))
    writes, n_writes = log.total(log.writes, name)
    common = wall - log.total(log.units, name)[0] - log.total(log.saves, name)[0] - writes
    rows.append((f"{name}: {'machines, lock' if pretraining else 'plan, checks'}", common, (per, f"{name} common")))
    if n_writes:
        rows.append((f"{name}: results.csv, scores.csv ({n_writes} rewrites)", writes / n_writes,
                     ("writes", f"{name} writes")))


def run_pretraining(root: Path, work: Path, *, versions, methods: list[str], epochs: int,
                    classifier_epochs: int) -> tuple[list, object, GridLog, dict[str, int], float]:
    """Part 1: every version's pretraining on `root`; ([(label, seconds, what)], own config, log, targets per version,
    seconds of checking and extracting the features first, which are not projected from here)."""
    from common.config import load_config
    from common.data.dataset import check_machine, load_machine, select_machines
    from common.data.versions import source_sets
    from common.experiment.pretrain import pretrain
    from common.methods.catalog import MODEL_PRETRAININGS

    overrides, own = grid_configs(work, root, versions, methods=methods, epochs=epochs, transfer_epochs=epochs,
                                  classifier_epochs=classifier_epochs)
    rows: list = []
    cfg = load_config(work / f"Version{versions[0][1:]}" / f"make_pretrain_{versions[0]}.yaml", overrides=overrides)
    machines = select_machines(cfg)
    targets = {v: sum(bool(source_sets(v, t, machines)) for t in machines) for v in versions}
    start = time.perf_counter()
    for m in machines:
        load_machine(cfg, m, progress=False, checked=check_machine(cfg, m))
    features = time.perf_counter() - start
    with GridLog() as log:
        for v in versions:
            make = load_config(work / f"Version{v[1:]}" / f"make_pretrain_{v}.yaml", overrides=overrides)
            timed_stage(rows, log, f"pretrain {v}", lambda: pretrain(make, progress=False), MODEL_PRETRAININGS)
    return rows, own, log, targets, features


def target_root(tmp: Path, *, source_scale: float, target: tuple[str, str]) -> tuple[Path, float]:
    """(a root of one-channel clips: `target` at full MIMII size, the other 15 machines at `source_scale`, seconds)."""
    from _bench import MIMII_IDS, MIMII_TYPES

    from common.data.synth import generate_dataset

    start = time.perf_counter()
    n_normal, n_abnormal = scaled_counts(source_scale)
    parts = {"sources": (n_normal, n_abnormal, MIMII_TYPES, MIMII_IDS),
             "target_full": (MIMII_NORMAL, MIMII_ABNORMAL, (target[0],), (target[1],))}
    for name, (normal, abnormal, types, ids) in parts.items():
        generate_dataset(tmp / f"data_{name}", snr=-6, n_normal=normal, n_abnormal=abnormal, channels=1, seed=0,
                         types=types, ids=ids, jobs=2, progress=False)
    root = tmp / "data_target"
    for folder in sorted((tmp / "data_sources").glob("*/*/*/*")):  # <snr>_<type>/<type>/<id>/<label>
        rel = folder.relative_to(tmp / "data_sources")
        src = tmp / "data_target_full" / rel if (rel.parts[1], rel.parts[2]) == tuple(target) else folder
        (root / rel).mkdir(parents=True)
        for clip in sorted(src.glob("*.wav")):
            (root / rel / clip.name).symlink_to(clip.resolve())
    return root, time.perf_counter() - start


def run_target(root: Path, work: Path, *, target: tuple[str, str], versions, methods: list[str], epochs: int,
               transfer_epochs: int, classifier_epochs: int) -> tuple[list, GridLog]:
    """Part 2: every cell of `target` (type, ID) in every version, on `root` (`target_root`); [(label, seconds,
    what)] and the log. Its source sets are pretrained first (not timed)."""
    from common.config import load_config
    from common.data.dataset import check_machine, load_machine, select_machines
    from common.experiment.grid import run_grid
    from common.experiment.pretrain import pretrain
    from common.methods.catalog import FAMILIES

    overrides, _ = grid_configs(work, root, versions, methods=methods, epochs=epochs, transfer_epochs=transfer_epochs,
                                classifier_epochs=classifier_epochs)
    cfg = load_config(work / f"Version{versions[0][1:]}" / f"make_pretrain_{versions[0]}.yaml", overrides=overrides)
    found = [m for m in select_machines(cfg) if (m.type, m.id) == tuple(target)]
    if not found:
        raise SystemExit(f"--target {'/'.join(target)} is not a machine under {root}")
    start = time.perf_counter()
    load_machine(cfg, found[0], progress=False, checked=check_machine(cfg, found[0]))
    rows: list = [(f"check + features of {'/'.join(target)}", time.perf_counter() - start, ("targets", "features"))]
    with GridLog() as log:
        log.only_target(found[0])
        for v in versions:
            folder = work / f"Version{v[1:]}"
            log.stage = f"sources {v}"
            pretrain(load_config(folder / f"make_pretrain_{v}.yaml", overrides=overrides), progress=False)
            tune = load_config(folder / f"transfer_pretrain_{v}.yaml", overrides=overrides)
            timed_stage(rows, log, f"transfer {v}", lambda: run_grid(tune, progress=False), FAMILIES)
    return rows, log


# --------------------------------------------------------------------------------------------
# Rates of large fits and of SoundNet, in this process or in one-core workers


def stacked_parts(folder: Path, vectors: int, *, n_parts: int, n_mels: int, frames: int,
                  per_clip: int = VECTORS_PER_CLIP, seed: int = 0):
    """About `vectors` stacked log-mel vectors (`common.features.logmel.stack_frames` of random frames, `per_clip`
    a clip) in `n_parts` memory-mapped files, as the feature cache holds them: one `ClipFeatures` per part."""
    import numpy as np

    from common.features.cache import ClipFeatures
    from common.features.logmel import stack_frames

    rng = np.random.default_rng(seed)
    clips = max(1, round(vectors / per_clip / n_parts))
    parts = []
    for i in range(n_parts):
        x = np.concatenate([stack_frames(rng.normal(size=(n_mels, per_clip + frames - 1)).astype(np.float32),
                                         frames=frames) for _ in range(clips)])
        np.save(folder / f"part{i}.npy", x)
        parts.append(ClipFeatures(tuple(f"{i}_{c}.wav" for c in range(clips)),
                                  np.load(folder / f"part{i}.npy", mmap_mode="r"),
                                  np.arange(clips + 1, dtype=np.int64) * per_clip, frame_width=n_mels))
    return parts


def measure_rates(cfg, *, vectors: int, epochs: int, repeat: int) -> dict[str, tuple[float, int]]:
    """(best seconds, samples) of a large autoencoder fit in RAM, streamed (every row read from the files in every
    epoch) and streamed with its frames on the device, with `cfg`'s architecture and fit settings."""
    from common.features.vectorset import VectorSet
    from common.models.autoencoder import architecture
    from common.models.train import Trainer, validation_rows

    arch = architecture(cfg.feature.n_mels * cfg.feature.frames, hidden=cfg.model.hidden,
                        bottleneck=cfg.model.bottleneck, batch_norm=cfg.model.batch_norm)
    kw = dict(batch_size=cfg.fit.batch_size, learning_rate=cfg.fit.learning_rate,
              validation_split=cfg.fit.validation_split, shuffle=cfg.fit.shuffle, seed=0)
    out = {}
    with tempfile.TemporaryDirectory(prefix="bench_grid_rate_") as tmp:
        # A v4 source set has 12 machines.
        parts = stacked_parts(Path(tmp), vectors, n_parts=12, n_mels=cfg.feature.n_mels, frames=cfg.feature.frames)

        def vset() -> VectorSet:
            return VectorSet.from_clips([(p, range(len(p))) for p in parts])

        x = vset().read()
        samples = validation_rows(len(x), cfg.fit.validation_split) * epochs
        frames_bytes = vset().frame_count() * cfg.feature.n_mels * 4
        for name, trainer, data in ((IN_RAM, Trainer(), lambda: x), (STREAMED, Trainer(in_memory_bytes=0, frames_bytes=0), vset),
                                    (FRAMES, Trainer(in_memory_bytes=0, frames_bytes=frames_bytes), vset)):
            weights = trainer.init_weights(arch, seed=0)
            trainer.fit(arch, weights, data(), epochs=1, **kw)  # compile, trace these shapes, page cache
            best = float("inf")
            for _ in range(repeat):
                start = time.perf_counter()
                trainer.fit(arch, weights, data(), epochs=epochs, **kw)
                best = min(best, time.perf_counter() - start)
            out[name] = (best, samples)
    return out


def measure_classifier(cfg, network: str, *, rows: int, epochs: int, repeat: int,
                       n_classes: int = 12) -> dict[str, float]:
    """A classifier's training through its own function (`network`: CLASSIFIER or SPEC), with `cfg`'s settings:
    samples/s of a large fit (net of its per-epoch cost), the per-epoch cost (two small fits of 1 and 6 epochs) and
    its operations per sample."""
    import numpy as np

    from common.experiment.pretrain_classifier import architecture_of, spec_architecture_of
    from common.models.classifier import model_input_dim, train_classifier
    from common.models.spec_classifier import build_spec_classifier, train_spec_classifier

    rng = np.random.default_rng(0)
    input_dim = cfg.feature.n_mels * cfg.feature.frames
    if network == CLASSIFIER:
        e = cfg.embedding
        arch = architecture_of(cfg, input_dim, n_classes)
        x = rng.normal(size=(rows, model_input_dim(arch))).astype(np.float32)

        def fit(n: int, n_epochs: int) -> None:
            train_classifier(arch, None, x[:n], y[:n], epochs=n_epochs, batch_size=e.batch_size,
                             learning_rate=e.learning_rate, mixup=e.mixup, seed=0)
    else:
        sp = cfg.spectrogram
        arch = spec_architecture_of(cfg, input_dim, n_classes)
        x = rng.normal(size=(rows, *build_spec_classifier(arch).input_shape[1:])).astype(np.float32)

        def fit(n: int, n_epochs: int) -> None:
            train_spec_classifier(arch, x[:n], y[:n], epochs=n_epochs, batch_size=sp.batch_size,
                                  learning_rate=sp.learning_rate, mixup=sp.mixup, seed=0)
    y = rng.integers(0, n_classes, size=rows).astype(np.int64)

    def best(n: int, n_epochs: int) -> float:
        fit(n, 1)  # compile, trace these shapes
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            fit(n, n_epochs)
            times.append(time.perf_counter() - start)
        return min(times)

    small = min(2000 if network == CLASSIFIER else 256, rows)
    one, six = best(small, 1), best(small, 6)
    large = best(rows, epochs)
    gross = rows * epochs / large
    per_epoch = max((six - one - 5 * small / gross) / 5, 0.0)
    return {"rate": rows * epochs / max(large - epochs * per_epoch, 1e-9), "per_epoch": per_epoch,
            "flops": model_flops(arch)}


def mahalanobis_before(rows: int = 50000, dim: int = 320, repeat: int = 2) -> dict[str, float]:
    """Seconds of the code before issue 32 over today's, on one array of `rows` x `dim` residuals: the distances
    (a three-operand einsum) and the Ledoit-Wolf covariance (``LedoitWolf().fit``, with its discarded precision)."""
    import numpy as np
    from sklearn.covariance import LedoitWolf
    from threadpoolctl import threadpool_limits

    from common.scoring.mahalanobis import fit_gaussian, ledoit_wolf, mahalanobis

    x = np.random.default_rng(0).normal(size=(rows, dim))
    g = fit_gaussian(x[:4000])

    def einsum() -> np.ndarray:
        d = x - g.mean
        return np.einsum("ij,jk,ik->i", d, g.precision, d)

    def best(func) -> float:
        return best_seconds(func, repeat)

    with threadpool_limits(limits=1, user_api="blas"):  # as fit_gaussian runs them
        lw = best(lambda: LedoitWolf().fit(x)) / best(lambda: ledoit_wolf(x))
    return {"distances": best(einsum) / best(lambda: mahalanobis(g, x)), "covariances": lw}


def measure_soundnet(root: Path, cfg, *, clips: int) -> float:
    """Warm seconds per 10 s clip of SoundNet's embedding (`_embed`, both networks; after one call of the same
    requests each, so that no batch shape compiles in the timed call)."""
    from common.models.sound_embeddings import _embed, soundnet_architecture

    files = sorted(root.glob("*/*/*/normal/*.wav"))[:clips]
    if not files:
        raise SystemExit(f"no WAV files under {root} for the SoundNet rate")
    g = cfg.general_sound
    seconds = 0.0
    for random_weights in (True, False):
        arch = soundnet_architecture(layer=g.layer, pooling=g.pooling, random_weights=random_weights, seed=g.seed)
        requests = [(f, "whole") for f in files]
        # Warm up on the timed requests themselves: a first call of another batch shape compiles (seconds on one
        # core), which the cells pay once per process, not per clip.
        _embed(requests, arch, channel=cfg.data.channel, sr=cfg.data.sample_rate)
        start = time.perf_counter()
        _embed(requests, arch, channel=cfg.data.channel, sr=cfg.data.sample_rate)
        seconds += time.perf_counter() - start
    return seconds / (2 * len(files))


def all_rates(args: argparse.Namespace, cfg, root: Path) -> dict:
    """Every rate of the projection, measured in this process."""
    return {"ae": measure_rates(cfg, vectors=args.rate_vectors, epochs=args.rate_epochs, repeat=args.rate_repeat),
            CLASSIFIER: measure_classifier(cfg, CLASSIFIER, rows=args.classifier_rows, epochs=args.rate_epochs,
                                           repeat=args.rate_repeat),
            SPEC: measure_classifier(cfg, SPEC, rows=args.spec_rows, epochs=args.rate_epochs, repeat=args.rate_repeat),
            SOUNDNET: measure_soundnet(root, cfg, clips=args.soundnet_clips),
            "mahalanobis before": mahalanobis_before()}


def worker_rates(args: argparse.Namespace, workers: int, root: Path) -> dict:
    """Rates of `workers` processes of one core each, measuring at the same time (``executor: local``).

    Each child (``--child-rate CORE``) pins itself to one core and runs `all_rates`; the result is the slowest
    child's of each, so ``workers x`` it is the machine's rate.
    """
    import subprocess

    cmd = [sys.executable, __file__, "--rate-vectors", str(args.rate_vectors), "--rate-epochs", str(args.rate_epochs),
           "--rate-repeat", str(args.rate_repeat), "--classifier-rows", str(args.classifier_rows),
           "--spec-rows", str(args.spec_rows),
           "--soundnet-clips", str(args.soundnet_clips), "--backend", args.backend, "--root", str(root),
           "--child-rate"]
    procs = [subprocess.Popen(cmd + [str(core)], stdout=subprocess.PIPE, text=True) for core in range(workers)]
    results = [json.loads(proc.communicate()[0].strip().splitlines()[-1]) for proc in procs]
    if any(proc.returncode for proc in procs):
        raise SystemExit("a --child-rate process failed")
    return {"ae": {k: max((tuple(r["ae"][k]) for r in results), key=lambda ts: ts[0]) for k in results[0]["ae"]},
            **{c: min((r[c] for r in results), key=lambda rate: rate["rate"]) for c in CLASSIFIERS},
            SOUNDNET: max(r[SOUNDNET] for r in results)}


def child_rate(args: argparse.Namespace) -> int:
    """One worker of `worker_rates`: pinned to core ``args.child_rate``, prints its rates as JSON."""
    import os

    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[args.child_rate]})
    use_backend(args.backend)
    from common.config import load_config

    own = load_config(REPO / "Version1" / "make_pretrain_v1.yaml", overrides={"data": {"root": str(REPO)}})
    print(json.dumps(all_rates(args, own, args.root)))
    return 0


def net_rates(measured: dict[str, tuple[float, int]], fixed: float) -> dict[str, float]:
    """Samples/s of each measured fit net of the per-fit fixed cost (gross when the fit is not much longer)."""
    return {k: samples / (t - fixed if t > 2 * fixed else t) for k, (t, samples) in measured.items()}


# --------------------------------------------------------------------------------------------
# The projection


def train_growth(scale: float) -> float:
    """How many times more training clips a machine has at full size than at `scale` (rounding included)."""
    n_normal, n_abnormal = scaled_counts(scale)
    return (MIMII_NORMAL - MIMII_ABNORMAL) / (n_normal - n_abnormal)  # the mimii split: eval normal = abnormal


def source_growth(scale: float, source_clips: int) -> float:
    """Growth of the source clips a cell reads per source machine: ``min(source_clips, training clips)``."""
    n_normal, n_abnormal = scaled_counts(scale)
    return min(source_clips, MIMII_NORMAL - MIMII_ABNORMAL) / min(source_clips, n_normal - n_abnormal)


def clips_per_machine(scale: float) -> int:
    """Clips of one machine (normal + abnormal) at `scale`."""
    return sum(scaled_counts(scale))


@dataclass
class Model:
    """What the projection needs: scales, the YAMLs' epochs over the runs', fixed costs, rates and targets."""

    scale: float  # of the pretraining run
    source_scale: float  # of the source machines of the target run
    epoch_factor: dict[str, float]
    fixed: float  # autoencoder, per fit
    ae_rates: dict[str, float]  # samples/s on each path
    max_bytes: int  # fit.max_in_memory_mb: larger sets are streamed
    frames_max: int  # fit.max_frames_mb: a streamed set's frames up to this are held as frames
    classifiers: dict[str, dict[str, float]]  # per classifier: rate, per_epoch, fixed
    soundnet: float  # seconds per clip where the projection runs (one core per worker, or the whole machine)
    soundnet_here: float  # seconds per clip in the process that ran the cells (what their calls are net of)
    source_clips: int
    targets: dict[str, int]  # per version
    workers: int = 1
    slower: float = 1.0  # the rest on one core, relative to the whole machine


def project_fit(f: Fit, m: Model) -> tuple[float, float, str]:
    """(full-size samples, projected seconds, path) of one fit: a pretraining's (rows grow with the clips) or a
    full-size cell's."""
    pretraining = f.stage.startswith("pretrain")
    grows = train_growth(m.scale) if pretraining else 1.0
    if f.model in CLASSIFIERS:
        if f.kind == "pretrain":
            rows, epochs = f.rows * grows, f.epochs * (m.epoch_factor[f.model] if pretraining else 1.0)
        else:  # embed_finetune: the budget's rows as they are, the replayed source clips up to statistics.source_clips
            rows = f.target_rows + (f.rows - f.target_rows) * source_growth(m.source_scale, m.source_clips)
            epochs = f.epochs
        c = m.classifiers[f.model]
        samples = rows * epochs
        return samples, c["fixed"] + epochs * c["per_epoch"] + samples / c["rate"], f.model
    samples = f.samples * m.epoch_factor[f.kind] * grows
    path = IN_RAM
    if f.set_bytes is not None and f.set_bytes * grows > m.max_bytes:
        held = f.frames_bytes is not None and f.frames_bytes * grows <= m.frames_max and FRAMES in m.ae_rates
        path = FRAMES if held else STREAMED
    return samples, m.fixed + samples / m.ae_rates[path], path


def project_line(seconds: float, scale: float, second: tuple[float, float] | None) -> tuple[float, str]:
    """(full-size seconds, note) of a pretraining piece that is neither fits nor models: a line in the clips per
    machine through the two scales (its intercept, per job, does not grow); without a second run, x clips."""
    full = clips_per_machine(1.0)
    if second is None:
        return seconds * full / clips_per_machine(scale), "x clips"
    other, other_scale = second
    c1, c2 = clips_per_machine(other_scale), clips_per_machine(scale)
    slope = max((seconds - other) / (c2 - c1), 0.0)
    return seconds + slope * (full - c2), f"line through {other:.1f} s at {c1} clips/machine"


def write_factor(targets: int) -> int:
    """Rewrites of results.csv / scores.csv in one version's grid, in units of one target's rows: after each of
    `targets` targets (1, 2, ... targets' rows) and once more at the end (all of them)."""
    return targets * (targets + 1) // 2 + targets


def project(rows: list, logs: dict[str, GridLog], m: Model, *, second: dict | None) -> list[dict]:
    """Each row of the runs projected to the full grid: {label, seconds, projected, samples, flops, note}.

    `logs`: the pretraining run's and the target run's, by the first word of their stages. With ``m.workers`` > 1
    the projected seconds are one worker's share (the work spread evenly).
    """
    out = []
    for label, seconds, what in rows:
        samples = flops = 0.0
        kind = what[0]
        version = label.split(":")[0].split()[1] if label.split()[0] in ("pretrain", "transfer") else "v1"
        targets = m.targets.get(version, max(m.targets.values()))
        if kind == "fits":
            fits = logs[what[1].split()[0]].select(*what[1:])
            each = [project_fit(f, m) for f in fits]
            times = 1 if what[1].startswith("pretrain") else targets
            # A cell fit that compiled (a new model or device size) compiles once per process, not once per target.
            compiles = sum(max(f.seconds - m.fixed - f.samples / m.ae_rates[p[2]], 0.0) for f, p in zip(fits, each)
                           if f.first and times > 1)
            projected = times * sum(p[1] for p in each) + compiles * m.workers
            samples = times * sum(p[0] for p in each)
            flops = times * sum(p[0] * f.flops for p, f in zip(each, fits))
            paths = {path: sum(p[2] == path for p in each) for path in (IN_RAM, STREAMED, FRAMES, *CLASSIFIERS)}
            note = (f"{samples:,.0f} samples, " + ", ".join(f"{n} {k}" for k, n in paths.items() if n)
                    + ("" if times == 1 else f"; x {times} targets, compiles {compiles:.1f} s once"))
        elif kind == "embeds":
            calls = [e for e in logs["transfer"].embeds if e.stage == what[1] and e.part == what[2]]
            clips = sum(e.whole + e.halves / 2 for e in calls)
            # What a call took beyond its clips at the warm rate: the first call of a network and input length
            # (weights, compile), once per process: each worker pays it.
            first = sum(max(e.seconds - (e.whole + e.halves / 2) * m.soundnet_here, 0.0) for e in calls)
            projected = targets * (seconds - first) * m.soundnet / m.soundnet_here + first * m.workers
            note = f"{clips:,.0f} clips measured at full size, x {targets} targets; first calls {first:.1f} s once"
        elif kind == "models":
            projected, note = seconds * m.slower, "as measured: the number of models does not grow"
        elif kind == "line":
            other = (second[what[1]], second["scale"]) if second and what[1] in second else None
            projected, note = project_line(seconds, m.scale, other)
            projected *= m.slower
        elif kind == "targets":
            projected, note = seconds * targets * m.slower, f"measured at full size, x {targets} targets"
        elif kind == "writes":
            projected = seconds * write_factor(targets) * m.slower
            note = f"one target's rewrite x {write_factor(targets)} (the files grow by a target's rows each time)"
        else:
            raise ValueError(f"row {label!r}: unknown projection {what!r}")
        out.append({"label": label, "seconds": seconds, "projected": projected / m.workers, "samples": samples,
                    "flops": flops, "note": note})
    return out


def summary_key(label: str) -> str:
    """The row of the summary table a row belongs to: the pretraining kind, the family, or the grid's own work."""
    head = label.split(":")[0].split()
    if head[0] == "pretrain":
        return f"pretraining: {KIND_NAMES.get(head[2], head[2])}" if len(head) > 2 else "pretraining: machines, lock"
    if head[0] == "transfer":
        return f"cells: {head[2]} family" if len(head) > 2 else "grid: plan, checks, results.csv"
    return "check + features"


def summarize(projected: list[dict]) -> dict[str, dict[str, float]]:
    """The projected rows summed by `summary_key`: seconds, projected seconds, training samples and operations."""
    out: dict[str, dict[str, float]] = {}
    for row in projected:
        s = out.setdefault(summary_key(row["label"]), {"seconds": 0.0, "projected": 0.0, "samples": 0.0,
                                                       "flops": 0.0, "fit_seconds": 0.0})
        for k in ("seconds", "projected", "samples", "flops"):
            s[k] += row[k]
        if row["flops"]:
            s["fit_seconds"] += row["projected"]
    return out


def model_of(args: argparse.Namespace, own, logs: dict[str, GridLog], rates: dict, *, fixed: float, here: float,
             targets: dict[str, int]) -> Model:
    """The projection's `Model` from the runs' fits and the measured `rates` (`here`: SoundNet's seconds per clip
    in the process that ran the cells)."""
    cfg = own
    classifiers = {}
    for name in CLASSIFIERS:
        c = rates[name]
        fits = [f for log in logs.values() for f in log.fits if f.model == name]
        per_fit = (sum(f.seconds - f.epochs * c["per_epoch"] - f.samples / c["rate"] for f in fits) / len(fits)
                   if fits else 0.0)
        classifiers[name] = {"rate": c["rate"], "per_epoch": c["per_epoch"], "fixed": max(per_fit, 0.0)}
    return Model(scale=args.scale, source_scale=args.source_scale,
                 epoch_factor={"scratch": cfg.fit.epochs / args.epochs,
                               "transfer": cfg.transfer.epochs / args.transfer_epochs,
                               CLASSIFIER: cfg.embedding.epochs / args.classifier_epochs,
                               SPEC: cfg.spectrogram.epochs / args.classifier_epochs},
                 fixed=fixed, ae_rates=net_rates(rates["ae"], fixed), max_bytes=cfg.fit.max_in_memory_mb * 2**20,
                 frames_max=cfg.fit.max_frames_mb * 2**20,
                 classifiers=classifiers, soundnet=rates[SOUNDNET], soundnet_here=here,
                 source_clips=cfg.statistics.source_clips, targets=targets)


def report(args: argparse.Namespace, versions, rows: list, own, logs: dict[str, GridLog], rates: dict,
           targets: dict[str, int], gflops: float, how_ceiling: str, *, second: dict | None = None,
           workers: dict | None = None) -> None:
    """Print the runs, the table of every piece with its projection, the table by stage and the target lines."""
    cells = logs["transfer"]
    intercept, per_sample = cells.line()
    fixed, how = cells.fixed_cost(rates["ae"][IN_RAM][1] / rates["ae"][IN_RAM][0])
    cfg = own
    weights = n_weights(cfg.feature.n_mels * cfg.feature.frames, hidden=cfg.model.hidden,
                        bottleneck=cfg.model.bottleneck, batch_norm=cfg.model.batch_norm)
    ceiling = ceiling_samples(gflops, weights)
    m = model_of(args, own, logs, rates, fixed=fixed, here=rates[SOUNDNET], targets=targets)
    serial = project(rows, logs, m, second=second)
    exp = grid_experiment(args.method_names)
    print(machine_line())
    print(f"grid {','.join(versions)}, {len(exp['methods'])} methods ({','.join(exp['methods'])}), budgets "
          f"{exp['budgets']}, seeds {exp['seeds']}; pretraining at scale {args.scale:g} (and {args.rest_scale:g}), "
          f"the cells of {args.target} at full size (sources at {args.source_scale:g}); fit.epochs {args.epochs}, "
          f"transfer.epochs {args.transfer_epochs}, embedding.epochs {args.classifier_epochs}; {backend_line()}; "
          f"load average {load_line()}")
    print(ceiling_line(gflops, weights, measured_here=True) + f"  [{how_ceiling}]")
    ae_fits = [f for f in cells.fits if f.model == AE and f.stage.startswith("transfer")]
    print(f"{len(ae_fits)} autoencoder fits of the cells: line {intercept:.3f} s per fit + {per_sample * 1e6:.2f} us per "
          f"sample; fixed cost {fixed:.3f} s ({how})")
    print(f"autoencoder rates of large fits ({args.rate_vectors:,} vectors x {args.rate_epochs} epochs, net of the fixed "
          f"cost): " + ", ".join(f"{k} {r:,.0f} samples/s ({100 * r / ceiling:.1f} % of ceiling)"
                                 for k, r in m.ae_rates.items()))
    for name, rows_fit in ((CLASSIFIER, args.classifier_rows), (SPEC, args.spec_rows)):
        c = m.classifiers[name]
        print(f"{name} rate ({rows_fit:,} rows x {args.rate_epochs} epochs, its training function): "
              f"{c['rate']:,.0f} samples/s x {rates[name]['flops']:,.0f} FLOP = "
              f"{100 * c['rate'] * rates[name]['flops'] / (gflops * 1e9):.1f} % of ceiling; {1e3 * c['per_epoch']:.1f} "
              f"ms per epoch, {1e3 * c['fixed']:.0f} ms per fit")
    print(f"SoundNet: {1e3 * m.soundnet:.1f} ms per 10 s clip and network, warm ({args.soundnet_clips} clips each)")
    for row in serial:
        print(f"  {row['label']:58s} {row['seconds']:8.1f} s   projected {row['projected'] / 3600:6.3f} h  ({row['note']})")
    print(f"  {'total (of the runs, less the pretraining at --rest-scale)':58s} {sum(r['seconds'] for r in serial):8.1f} s")
    local = mw = None
    if workers:
        n = args.workers
        slower = m.ae_rates[IN_RAM] / net_rates(workers["ae"], fixed)[IN_RAM]
        mw = model_of(args, own, logs, workers, fixed=fixed, here=rates[SOUNDNET], targets=targets)
        mw.workers, mw.slower = n, slower
        local = project(rows, logs, mw, second=second)
        print(f"rates of {n} one-core workers side by side (each; the machine does {n} x): "
              + ", ".join(f"{k} {r:,.0f} samples/s" for k, r in mw.ae_rates.items())
              + "".join(f", {name} {mw.classifiers[name]['rate']:,.0f} samples/s" for name in CLASSIFIERS)
              + f", SoundNet {1e3 * mw.soundnet:.1f} ms per clip; "
              f"the rest {slower:.2f}x slower on one core")
    print_summary(serial, local, gflops=gflops, workers=args.workers)
    print_targets(cells, serial, local, fixed=fixed, how=how, gflops=gflops, ceiling=ceiling, own=own,
                  workers=args.workers)
    print_mahalanobis(cells, rates, targets)
    if FRAMES in m.ae_rates:  # the same run without holding streamed sets as frames (issue 32's change)
        before = {}
        for label, model in (("serial", m), ("local", mw)):
            if model is not None:
                rates_before = {k: r for k, r in model.ae_rates.items() if k != FRAMES}
                old = project(rows, logs, Model(**{**vars(model), "ae_rates": rates_before}), second=second)
                before[label] = (sum(r["projected"] for r in old), sum(r["flops"] for r in old))
        print("BEFORE holding streamed sets as frames (every streamed row read from the feature cache in every "
              "epoch), same run: " + "; ".join(
                  f"{label} {t / 3600:.2f} h, effective training {100 * f / t / (gflops * 1e9):.1f} % of ceiling"
                  for label, (t, f) in before.items()))


def print_mahalanobis(log: GridLog, rates: dict, targets: dict[str, int]) -> None:
    """The cells' Mahalanobis distances and Ledoit-Wolf covariances at full size, and what the code before issue 32
    would have taken for them (the same calls x the ratio measured in this run on a 50,000 x 320 array)."""
    ratio = rates["mahalanobis before"]
    now = before = 0.0
    for name, calls in (("distances", log.distances), ("covariances", log.covariances)):
        here = sum(s * targets.get(st.split()[1], 16) for st, _, s in calls if st.startswith("transfer"))
        now, before = now + here, before + here * ratio[name]
        print(f"Mahalanobis {name} in the cells, projected serial: {here / 3600:.3f} h ({len(calls)} calls for one "
              f"target); with the code before issue 32 (x {ratio[name]:.1f}, measured in this run): "
              f"{here * ratio[name] / 3600:.3f} h")
    print(f"BEFORE the Mahalanobis changes (serial, the rest alike): + {(before - now) / 3600:.2f} h")


def print_summary(serial: list[dict], local: list[dict] | None, *, gflops: float, workers: int) -> None:
    """The table by stage: seconds here, projected hours serial (and local), training of each as % of the ceiling."""
    s, w = summarize(serial), summarize(local) if local else None
    head = f"{'stage (projected to the full MIMII grid)':42s} {'here s':>8s} {'serial h':>9s}"
    head += f" {f'local x{workers} h':>11s}" if w else ""
    print("\nBY STAGE\n" + head + f" {'training TFLOP':>15s} {'fits % of ceiling':>18s}")
    for key, row in s.items():
        line = f"{key:42s} {row['seconds']:8.1f} {row['projected'] / 3600:9.3f}"
        line += f" {w[key]['projected'] / 3600:11.3f}" if w else ""
        share = (f"{100 * row['flops'] / row['fit_seconds'] / (gflops * 1e9):17.1f}%" if row["fit_seconds"] else
                 f"{'-':>18s}")
        print(line + f" {row['flops'] / 1e12:15.1f} {share}")
    total = sum(r["projected"] for r in s.values())
    line = f"{'total':42s} {sum(r['seconds'] for r in s.values()):8.1f} {total / 3600:9.3f}"
    line += f" {sum(r['projected'] for r in w.values()) / 3600:11.3f}" if w else ""
    print(line + f" {sum(r['flops'] for r in s.values()) / 1e12:15.1f}")


def print_targets(log: GridLog, serial: list[dict], local: list[dict] | None, *, fixed: float, how: str,
                  gflops: float, ceiling: float, own, workers: int) -> None:
    """The target lines: per-fit fixed cost (issue 17), effective training of the ceiling and total hours (32)."""
    met = {True: "met", False: "NOT met"}
    ae_fits = [f for f in log.fits if f.model == AE and f.stage.startswith("transfer")]
    models = sum(s for st, _, s in log.models if st.startswith("transfer")) / max(len(ae_fits), 1)
    per_fit = fixed + models
    print(f"target per-fit fixed cost < {TARGET_FIXED_S} s: {per_fit:.3f} s = fit {fixed:.3f} s ({how}) + "
          f"initial weights {models:.3f} s per fit: {met[per_fit < TARGET_FIXED_S]}")
    for label, rows in (("serial", serial), (f"executor local, {workers} workers x 1 thread", local)):
        if rows is None:
            continue
        total = sum(r["projected"] for r in rows)
        flops = sum(r["flops"] for r in rows)
        fit_seconds = sum(r["projected"] for r in rows if r["flops"])
        ae = sum(r["samples"] for r in rows if "autoencoder fits" in r["label"])
        effective = flops / total / (gflops * 1e9)
        print(f"{label}:")
        print(f"target effective training >= {100 * TARGET_FRACTION:.0f} % of ceiling: the full grid's fits do "
              f"{flops / 1e12:,.0f} TFLOP in {total / 3600:.2f} h = {flops / total / 1e9:,.1f} GFLOP/s = "
              f"{100 * effective:.1f} % of {gflops:,.0f} GFLOP/s: {met[effective >= TARGET_FRACTION]}")
        print(f"  (fits alone: {fit_seconds / 3600:.2f} h, {100 * flops / fit_seconds / (gflops * 1e9):.1f} % of "
              f"ceiling; autoencoder samples {ae:,.0f} = {ae / total:,.0f} samples/s over the whole grid = "
              f"{100 * ae / total / ceiling:.1f} % of {ceiling:,.0f})")
        print(f"PROJECTION [{label.split(',')[0]}] to the full MIMII grid, the methods above, with fit.epochs "
              f"{own.fit.epochs}, transfer.epochs {own.transfer.epochs}, embedding.epochs {own.embedding.epochs}, "
              f"spectrogram.epochs {own.spectrogram.epochs}: "
              f"{total / 3600:.2f} h (target <= {TARGET_HOURS:g} h on one 2-core machine: "
              f"{met[total <= TARGET_HOURS * 3600]})")


def data_root(args: argparse.Namespace, parser: argparse.ArgumentParser, tmp: Path) -> tuple[Path, float | None]:
    """(the data root at `--scale`, seconds it took to write or None when `--root` was given)."""
    if args.root is None:  # one channel: the grid reads channel 0 only, and an eighth of the disk
        return tmp / "data", make_dataset(tmp / "data", args.scale, channels=1)
    top = dataset_scale(args.root)
    if top + 1e-9 < args.scale:
        parser.error(f"{args.root} is at scale {top:g}, below --scale {args.scale:g}")
    if abs(top - args.scale) < 1e-9:
        return args.root.resolve(), None
    return subset_root(args.root, tmp / "data", args.scale), None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=0.02, help="data scale of the pretraining run, 1.0 = "
                        "MIMII-sized (default: 0.02)")
    parser.add_argument("--root", type=Path, help="a data root made at this or a larger scale (default: generate one)")
    parser.add_argument("--rest-scale", type=float, default=None,
                        help="a second pretraining run at this scale, for the line of its rest (default: half of "
                             "--scale; 0: none, the rest scaled with the clips)")
    parser.add_argument("--target", default="fan/id_00", help="the target run at full size (default: fan/id_00)")
    parser.add_argument("--source-scale", type=float, default=0.045,
                        help="scale of the other machines in the target run (default: 0.045, 34 training clips)")
    parser.add_argument("--methods", default="all",
                        help="all (every method of the catalogue, default), demo, or a comma list")
    parser.add_argument("--epochs", type=int, default=2, help="fit.epochs of the runs (default: 2)")
    parser.add_argument("--transfer-epochs", type=int, default=2, help="transfer.epochs of the runs (default: 2)")
    parser.add_argument("--classifier-epochs", type=int, default=2, help="embedding.epochs of the runs (default: 2)")
    parser.add_argument("--versions", default=",".join(VERSIONS), help="comma list (default: v1,v2,v3,v4)")
    parser.add_argument("--rate-vectors", type=int, default=100_000, help="vectors of the rate fits (default: 100000)")
    parser.add_argument("--classifier-rows", type=int, default=50_000,
                        help="rows of the classifier's rate fit (default: 50000)")
    parser.add_argument("--spec-rows", type=int, default=4000,
                        help="patches of the spectrogram classifier's rate fit (default: 4000)")
    parser.add_argument("--soundnet-clips", type=int, default=16, help="clips of the SoundNet rate (default: 16)")
    parser.add_argument("--rate-epochs", type=int, default=3, help="epochs of the rate fits (default: 3)")
    parser.add_argument("--rate-repeat", type=int, default=2, help="timed rate fits each; the best counts (default: 2)")
    parser.add_argument("--workers", type=int, default=2,
                        help="also project `executor: local` with this many one-core workers, from their rates "
                             "measured side by side (default: 2; 0: no)")
    parser.add_argument("--child-rate", type=int, default=None, help=argparse.SUPPRESS)
    add_backend_option(parser)
    args = parser.parse_args(argv)
    if args.child_rate is not None:
        return child_rate(args)
    args.method_names = method_list(args.methods)
    if args.rest_scale is None:
        args.rest_scale = args.scale / 2
    target = tuple(args.target.split("/"))
    if len(target) != 2:
        parser.error(f"--target {args.target!r} must be TYPE/ID, e.g. fan/id_00")
    versions = tuple(args.versions.split(","))
    budgets = [b for b in grid_experiment(args.method_names)["budgets"] if b != "all"]
    n_normal, n_abnormal = scaled_counts(args.source_scale)
    if budgets and max(budgets) > n_normal - n_abnormal:
        parser.error(f"--source-scale {args.source_scale:g} leaves {n_normal - n_abnormal} training clips per machine, "
                     f"fewer than the budget {max(budgets)}")
    use_backend(args.backend)
    began = time.perf_counter()
    print(f"load average at start: {load_line()}", flush=True)
    given = args.ceiling_gflops
    second = None
    kw = dict(versions=versions, methods=args.method_names, epochs=args.epochs, classifier_epochs=args.classifier_epochs)
    with tempfile.TemporaryDirectory(prefix="bench_grid_") as tmp:
        root, synth = data_root(args, parser, Path(tmp))
        start = time.perf_counter()
        rows, own, pre_log, targets, features = run_pretraining(root, Path(tmp) / "work", **kw)
        print(f"part 1, pretraining at scale {args.scale:g}: {time.perf_counter() - start:.0f} s (features first: "
              f"{features:.0f} s; the synthetic set: {'given' if synth is None else f'{synth:.0f} s'}); load average "
              f"{load_line()}", flush=True)
        if args.rest_scale:
            small = subset_root(root, Path(tmp) / "data_small", args.rest_scale)
            small_rows, *_ = run_pretraining(small, Path(tmp) / "work_small", **kw)
            second = {"scale": args.rest_scale, **{what[1]: sec for _, sec, what in small_rows if what[0] == "line"}}
        start = time.perf_counter()
        target_data, written = target_root(Path(tmp), source_scale=args.source_scale, target=target)
        print(f"the target's set: {written:.0f} s", flush=True)
        cell_rows, cell_log = run_target(target_data, Path(tmp) / "work_target", target=target,
                                         transfer_epochs=args.transfer_epochs, **kw)
        print(f"part 2, every cell of {args.target} at full size: {time.perf_counter() - start:.0f} s; load average "
              f"{load_line()}", flush=True)
        rates = all_rates(args, own, target_data)
        measured = ceiling_gflops(None)[0]  # again, beside the rates: the machine's load changes over a long run
        workers = worker_rates(args, args.workers, target_data) if args.workers > 1 else None
        gflops = max(measured, given or 0.0)
        how = (f"measured beside the rate fits: {measured:,.0f} GFLOP/s"
               + (f"; bench_ceiling.py at the start of make bench: {given:,.0f}" if given else "") + "; the larger counts")
        report(args, versions, rows + cell_rows, own, {"pretrain": pre_log, "transfer": cell_log}, rates, targets,
               gflops, how, second=second, workers=workers)
    print(f"bench_grid.py: {time.perf_counter() - began:.0f} s in all; load average at the end {load_line()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
