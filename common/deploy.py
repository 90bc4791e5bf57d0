"""Put a trained model to work: score new WAV recordings, flag anomalies, export a model for deployment.

`score_files` reads everything about the features from the model's sidecar (channel, sample rate,
log-mel parameters; never from a YAML) and extracts them with the experiments' own code
(`common.features.audio.check_wav`, `common.features.extract.extract`), so a clip scores exactly as it did in the
experiment. A clip is flagged anomalous when its score is above the model's decision threshold
(fitted on its own training normal clips, `common.scoring.threshold`) or the one given. A bad file (wrong
rate, corrupt, truncated, silent, too short) gets an error naming its path and no score; the
other files are still scored.

`export_model` copies the best model of a target (highest AUC of a method in a version's
results.csv, found through its transfer YAML's ``output.result_dir``, or the row chosen by source,
budget and seed) with its sidecar and a short
``MODEL_CARD.md`` into a folder to deploy.
"""

from __future__ import annotations

import os
import warnings
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from common.features.audio import WavInfo, check_wav, wav_info
from common.config import load_config
from common.features.params import FeatureConfig
from common.data.mimii import is_clip
from common.errors import AudioError, DataError, ModelError
from common.features.extract import extract
from common.io import atomic_write_text, digest
from common.data.names import pretrained_model_path, row_model_path, transfer_yaml
from common.methods.catalog import METHODS_CATALOG, is_zero_shot
from common.models.saved import FEATURE_KEYS, Sidecar, copy_model, load_head, load_model
from common.models.kinds import describe, model_kind
from common.results import ROW_FIELDS, read_table, result_dir
from common.scoring.scorer import check_scorer, score_clips, wav_models
from common.scoring.threshold import describe_threshold

SCORE_FILE_COLUMNS = ["path", "score", "decision", "error"]
DECISIONS = {False: "normal", True: "anomalous"}

ERROR = "error"  # the decision of a file that could not be scored
_PARAMS = FeatureConfig.names()
NAN = float("nan")  # a number the sidecar does not record, as the card prints it


def find_wavs(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Files as given, folders expanded to their clips (`common.data.mimii.is_clip`: ``*.wav``, any case; sorted, recursive).

    A path that does not exist is kept, so scoring reports it by name instead of dropping it. Files
    in a folder that look like clips but are not (macOS ``._*`` files) are left out with a warning;
    a FIFO, socket or device named like a clip is kept, so scoring names it as a bad file.

    Raises
    ------
    DataError
        No file at all: every folder given is empty of WAV files, no path was given, or none exists.
    """
    files: list[Path] = []
    left_out: list[Path] = []
    given = [Path(p) for p in paths]
    missing = [p for p in given if not os.path.lexists(p)]
    if given and len(missing) == len(given):
        raise DataError(f"no such file or folder: {', '.join(map(str, missing))}")
    for path in given:
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.name.lower().endswith(".wav") and _file_or_special(p))
            files += [p for p in found if is_clip(p)]
            left_out += [p for p in found if not is_clip(p)]
        else:
            files.append(path)
    if left_out:
        warnings.warn(f"left out {len(left_out)} file(s) named like clips that are not (hidden, e.g. macOS ._* "
                      f"files): {', '.join(map(str, left_out[:5]))}{' ...' if len(left_out) > 5 else ''}; "
                      "delete them to silence this", UserWarning, stacklevel=2)
    if not files:
        where = ", ".join(map(str, given)) or "(no path given)"
        raise DataError(f"no WAV files to score under {where}")
    return files


def _file_or_special(path: Path) -> bool:
    """A regular file, FIFO, socket or device (not a folder, not a dangling or looping link)."""
    return path.is_file() or path.is_fifo() or path.is_socket() or path.is_char_device() or path.is_block_device()


def model_features(sidecar: Sidecar, *, path: str | os.PathLike) -> dict[str, Any]:
    """The feature parameters a model was trained on (channel, sample_rate, n_mels, ...), from its sidecar.

    Raises
    ------
    ModelError
        The sidecar lacks one of `common.models.saved.FEATURE_KEYS`.
    """
    features = sidecar.features or {}
    missing = [k for k in FEATURE_KEYS if k not in features]
    if missing:
        raise ModelError(f"sidecar of model {path} lacks the feature parameters {missing}: cannot score with it")
    wrong = [f"{k}={features[k]!r}" for k in FEATURE_KEYS
             if isinstance(features[k], bool) or not isinstance(features[k], int if k != "power" else (int, float))
             or (features[k] < 0 if k == "channel" else features[k] <= 0)]
    if wrong:
        raise ModelError(f"sidecar {Path(path).with_suffix('.json')} has invalid feature parameters {wrong}: "
                         "each must be a positive number (channel >= 0)")
    return {k: features[k] for k in FEATURE_KEYS}


def _threshold(sidecar: Sidecar, threshold: float | None, path: Path) -> float:
    """The decision threshold: `threshold` when given, else the sidecar's; ModelError naming where it came from."""
    where = "the threshold given (--threshold)"
    if threshold is None:
        if sidecar.threshold is None:
            raise ModelError(f"model {path} has no decision threshold in its sidecar (trained before thresholds "
                             "were fitted): retrain it, or give one (--threshold T)")
        threshold, where = sidecar.threshold, f"sidecar {path.with_suffix('.json')}"
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.number)) or not np.isfinite(threshold):
        raise ModelError(f"{where}: threshold={threshold!r} must be a finite number: use the sidecar saved with the "
                         "model, or give one (--threshold T)")
    return float(threshold)


def _vectors(path: Path, features: Mapping[str, Any], info: WavInfo, arch: Mapping[str, Any]) -> np.ndarray:
    """The clip's vectors, by the experiments' code path; AudioError / DataError naming `path`.

    Log-mel frame vectors, or what the model's kind makes of the WAV itself (`common.models.kinds`: SoundNet's
    clip vector).
    """
    channel, sr = features["channel"], features["sample_rate"]
    check_wav(path, channel=channel, expected_sr=sr, info=info)  # header, rate, channel, finite and not silent
    clip_vectors = model_kind(arch).clip_vectors
    if clip_vectors is not None:
        return clip_vectors(path, arch, channel=channel, sr=sr)
    vectors, _ = extract([path], channel=channel, sr=sr, jobs=1, progress=False,
                         **{k: features[k] for k in _PARAMS})
    return vectors


def _n_channels(sidecar: Sidecar, path: Path) -> int | None:
    """The channel count of the model's training recordings (sidecar ``n_channels``), None for older models."""
    n = sidecar.n_channels
    if n is None:
        return None
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ModelError(f"sidecar {path.with_suffix('.json')}: n_channels={n!r} must be a positive integer")
    return n


def _mismatch(info: WavInfo, features: Mapping[str, Any], n_channels: int | None) -> tuple[str, Any] | None:
    """The model-side check a file's header fails, as (sidecar key, what the file has); None when it fits."""
    if info.samplerate != features["sample_rate"]:
        return "sample_rate", f"{info.samplerate} Hz"
    if n_channels is not None and info.channels != n_channels:
        return "n_channels", f"{info.channels} channel(s)"
    channel = features["channel"]
    if not (isinstance(channel, int) and 0 <= channel < info.channels):
        return "channel", f"{info.channels} channel(s)"
    return None


_MISMATCH_TEXT = {
    "sample_rate": "WAV file {path} has sample rate {has}, expected {want} Hz (the model's sample_rate)",
    "n_channels": "WAV file {path} has {has}, but the model was trained on {want}-channel recordings "
                  "(its n_channels): a file of another microphone array",
    "channel": "WAV file {path} has {has}: the model's channel={want} (0-based) is out of range",
}


def _model_cannot_be_used(model_path: Path, sidecar: Sidecar, key: str, has: Iterable[str]) -> ModelError:
    """Every file failed the same model-side check: the model does not fit these recordings at all."""
    features = sidecar.features or {}
    want = features[key] if key in features else getattr(sidecar, key)
    found = ", ".join(sorted(set(has)))
    return ModelError(f"model {model_path} cannot be used on these recordings: its sidecar "
                      f"{model_path.with_suffix('.json')} says {key}={want!r}, but every file given has {found}; "
                      "use a model trained on recordings like these")


def _minority_channels(infos: Mapping[Path, WavInfo]) -> dict[Path, str]:
    """For a model that does not record its channel count: files whose count differs from most files given."""
    counts = Counter(info.channels for info in infos.values())
    if len(counts) < 2:
        return {}
    (common, n), (_, second) = counts.most_common(2)
    if n == second:
        warnings.warn(f"the files given disagree in channel count ({dict(counts)}) and the model's sidecar does "
                      "not record its own (trained before n_channels was saved): check they come from the same "
                      "microphone array", UserWarning, stacklevel=3)
        return {}
    return {p: f"WAV file {p} has {info.channels} channel(s) while {n} of the {len(infos)} files given have "
               f"{common} (the model's sidecar does not record its channel count)"
            for p, info in infos.items() if info.channels != common}


def _check_files(files: list[Path], features: Mapping[str, Any], n_channels: int | None, model_path: Path,
                 sidecar: Sidecar) -> tuple[dict[Path, WavInfo], dict[Path, str]]:
    """Headers of the files that fit the model, and an error message for each one that does not.

    Raises
    ------
    ModelError
        Every file fails the same model-side check (sample rate, channel count, channel index).
    """
    infos, errors, mismatches = {}, {}, {}
    for path in files:
        try:
            info = wav_info(path)
        except AudioError as exc:
            errors[path] = str(exc)
            continue
        mismatch = _mismatch(info, features, n_channels)
        if mismatch is None:
            infos[path] = info
            continue
        key, has = mismatch
        mismatches[path] = mismatch
        want = n_channels if key == "n_channels" else features[key]
        errors[path] = _MISMATCH_TEXT[key].format(path=path, has=has, want=want)
    if len(mismatches) == len(files) and len({key for key, _ in mismatches.values()}) == 1:
        key = next(iter(mismatches.values()))[0]
        raise _model_cannot_be_used(model_path, sidecar, key, [has for _, has in mismatches.values()])
    if n_channels is None:
        for path, message in _minority_channels(infos).items():
            errors[path] = message
            del infos[path]
    return infos, errors


def score_files(
    model_path: str | os.PathLike,
    paths: Iterable[str | os.PathLike],
    *,
    threshold: float | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """Score WAV files with a saved model and decide normal / anomalous.

    A file of another channel count than the sidecar's ``n_channels`` is bad; for an older model
    without it, the files in the minority channel count are (a tie warns).

    Parameters
    ----------
    model_path : str or os.PathLike
        A ``.keras`` model saved by this project, with its ``.json`` sidecar.
    paths : iterable of str or os.PathLike
        WAV files and/or folders (searched recursively for clips, sorted).
    threshold : float or None
        Flag a clip scoring above this; None: the sidecar's (fitted on the training normal clips).
    progress : bool

    Returns
    -------
    table : pd.DataFrame [columns=SCORE_FILE_COLUMNS, one row per file, in `find_wavs` order]
        ``path``; ``score`` (mean reconstruction error, NaN for a bad file); ``decision``
        (``normal``, ``anomalous``, or ``error`` for a bad file); ``error`` (the message naming
        the file, empty when scored).

    Raises
    ------
    ModelError
        The model or its sidecar is missing or unreadable, does not fit each other, lacks feature
        parameters, or has no threshold while none is given; or every file fails the same
        model-side check (sample rate, channel count ``n_channels``, channel index): the model
        cannot be used on these recordings.
    DataError
        No file to score.

    Examples
    --------
    >>> score_files("fan_id_00.keras", ["new_recordings/"])["decision"].value_counts()  # doctest: +SKIP
    """
    model_path = Path(model_path)
    model, meta = load_model(model_path)
    head, sidecar = load_head(model_path, meta), Sidecar.from_dict(meta)
    check_scorer(sidecar.scorer, head, sidecar=str(model_path.with_suffix(".json")))
    features = model_features(sidecar, path=model_path)
    threshold = _threshold(sidecar, threshold, model_path)
    n_channels = _n_channels(sidecar, model_path)
    files = find_wavs(paths)
    infos, errors = _check_files(files, features, n_channels, model_path, sidecar)
    vectors = _read_vectors(files, features, infos, errors, progress=progress, sidecar=sidecar)
    scores = _clip_scores(model, sidecar, head, files, vectors)
    return pd.DataFrame({
        "path": [str(p) for p in files],
        "score": [float(scores[p]) if p in scores else np.nan for p in files],
        "decision": [DECISIONS[bool(scores[p] > threshold)] if p in scores else ERROR for p in files],
        "error": [errors.get(p, "") for p in files],
    }, columns=SCORE_FILE_COLUMNS)


def _read_vectors(files: list[Path], features: Mapping[str, Any], infos: Mapping[Path, WavInfo],
                  errors: dict[Path, str], *, progress: bool,
                  sidecar: Sidecar) -> dict[Path, tuple[np.ndarray, dict[str, np.ndarray]]]:
    """The vectors of each file that passed its header checks (`infos`) for the model of `sidecar`, with those each
    part of its scorer that reads the samples makes of it (`wav_models`), by `digest` of the part's model; a file
    that fails gets its message (naming it) in `errors` instead."""
    arch, wav_archs, vectors = sidecar.architecture or {}, wav_models(sidecar.scorer), {}
    for path in tqdm([p for p in files if p in infos], desc="score", unit="clip", disable=not progress):
        try:
            vectors[path] = (_vectors(path, features, infos[path], arch),  # checks the file once
                             {digest(a): model_kind(a).clip_vectors(path, a, channel=features["channel"],
                                                                    sr=features["sample_rate"]) for a in wav_archs})
        except (AudioError, DataError) as exc:
            message = str(exc)
            errors[path] = message if str(path) in message else f"{path}: {message}"
    return vectors


def _clip_scores(model, sidecar: Sidecar, head: Mapping[str, np.ndarray], files: list[Path],
                 vectors: Mapping[Path, tuple[np.ndarray, dict[str, np.ndarray]]]) -> dict[Path, float]:
    """One score per file that has vectors, in one batched pass, by the model's scorer (`common.scoring.scorer`)."""
    good = [p for p in files if p in vectors]
    if not good:
        return {}
    offsets = np.zeros(len(good) + 1, dtype=np.int64)
    np.cumsum([len(vectors[p][0]) for p in good], out=offsets[1:])
    scores = score_clips(model, sidecar.architecture or {}, sidecar.scorer, head,
                         np.concatenate([vectors[p][0] for p in good]), offsets, n_mels=sidecar.features["n_mels"],
                         wav=lambda a: np.concatenate([vectors[p][1][digest(a)] for p in good]))
    return dict(zip(good, scores))


# --------------------------------------------------------------------------------------------
# Export


def candidate_rows(results: pd.DataFrame, *, target: str, method: str = "transfer", source: str | None = None,
                   budget: int | str | None = None, seed: int | None = None) -> pd.DataFrame:
    """The results.csv rows of `target` and `method` (and `source`, `budget`, `seed` when given), best first:
    highest AUC, then pAUC, then file order. The first is the one `export_model` deploys.

    Raises
    ------
    DataError
        `target` is not ``type/id``, or no row matches (the message lists what there is).
    """
    if target.count("/") != 1:
        raise DataError(f"target={target!r} must be a machine type and ID such as fan/id_00")
    machine_type, machine_id = target.split("/")
    mine = results[(results["target_type"] == machine_type) & (results["target_id"] == machine_id)]
    if mine.empty:
        there = sorted(set(results["target_type"] + "/" + results["target_id"]))
        raise DataError(f"no results for target {target}; results.csv has {there}")
    wanted = {"method": method, "source": source, "budget": None if budget is None else str(budget), "seed": seed}
    rows = mine
    for column, value in wanted.items():
        if value is not None:
            rows = rows[rows[column] == value]
    if rows.empty:
        asked = ", ".join(f"{k}={v}" for k, v in wanted.items() if v is not None)
        there = mine[["method", "source", "budget", "seed"]].drop_duplicates().to_string(index=False)
        raise DataError(f"no results row of {target} with {asked}; its rows are:\n{there}")
    return rows.sort_values(["auc", "pauc"], ascending=False, kind="stable")


def export_model(
    repo: str | os.PathLike,
    *,
    version: int | str,
    target: str,
    out: str | os.PathLike,
    source: str | None = None,
    budget: int | str | None = None,
    seed: int | None = None,
    method: str = "transfer",
) -> Path:
    """Copy a target's chosen model, its sidecar and a ``MODEL_CARD.md`` into `out` for deployment.

    The row is the first of `candidate_rows` in the ``results.csv`` of the version's result folder,
    the ``output.result_dir`` of ``repo/VersionN/transfer_pretrain_vN.yaml`` (`common.results.result_dir`;
    default: the transfer model with the highest AUC). A scratch or transfer model is the one saved
    with the row (`common.data.names.row_model_path`); a zero_shot model is the pretrained model, given
    the row's threshold.

    Returns
    -------
    path : Path
        The exported ``.keras`` model (its sidecar and ``MODEL_CARD.md`` beside it).

    Raises
    ------
    DataError
        No transfer YAML or results.csv, or no row matches.
    ModelError
        The row's model file is missing or was saved by another run (rerun the transfer command).
    """
    out = _check_out_folder(Path(out))
    rerun = f"python -m common transfer {transfer_yaml('', version)}"
    table = result_dir(repo, version) / "results.csv"
    if not table.is_file():
        raise DataError(f"{table} not found: run `{rerun}` first")
    results = read_table(table)
    rows = candidate_rows(results, target=target, method=method, source=source, budget=budget, seed=seed)
    facts = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in rows.iloc[0].items()}
    src, sidecar = _row_model(table, facts, target=target, rerun=rerun)
    load_model(src)  # a damaged archive or a model that does not fit its sidecar is refused before it is shipped
    asked = "".join(f", {k} {v}" for k, v in (("source", source), ("budget", budget), ("seed", seed)) if v is not None)
    chosen = (f"highest AUC of the {len(rows)} {method} row(s) of {target}{asked} in `{table}`. "
              f"{_selection_bias(len(rows))}")
    notes = _chance_warnings(results, facts, target=target, table=table)
    for note in notes:
        warnings.warn(note, UserWarning, stacklevel=2)
    name = f"{facts['target_type']}_{facts['target_id']}_{facts['method']}_{facts['source']}" \
           f"_budget-{facts['budget']}_seed-{facts['seed']}.keras"
    dst = copy_model(src, out / name, sidecar=sidecar)
    atomic_write_text(out / "MODEL_CARD.md", model_card(dst.name, sidecar, chosen=chosen, notes=notes))
    return dst


def _row_model(table: Path, facts: Mapping[str, Any], *, target: str, rerun: str) -> tuple[Path, Sidecar]:
    """The model file of the results.csv row `facts` in `table`, and the sidecar to ship with it.

    Raises
    ------
    ModelError
        A scratch or transfer model was saved by another run than the row (its config_hash differs).
    """
    if is_zero_shot(facts["method"]):
        return _zero_shot_sidecar(table.parent, facts, target)
    src = row_model_path(table.parent, facts)
    sidecar = Sidecar.read(src)
    if sidecar.config_hash != facts["config_hash"]:
        raise ModelError(f"model {src} was saved by another run than the row of {table} it should belong to; "
                         f"rerun `{rerun}`")
    return src, sidecar


def check_output_file(path: str | os.PathLike, *, option: str) -> Path:
    """`path` as a file to write, refused up front when it is a folder or a parent of it is a file.

    Raises
    ------
    DataError
        Naming `path` and the `option` (e.g. ``--csv``) it was given with.
    """
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{option} {path} is a folder; give a file name, e.g. {path / 'scores.csv'}")
    parent = next((p for p in path.parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise DataError(f"{option} {path} cannot be written: {parent} is a file, not a folder")
    return path


def _check_out_folder(out: Path) -> Path:
    """`out`, refused when it or the first of its parents that exists is a file (it must be a folder)."""
    for folder in (out, *out.parents):
        if folder.exists():
            if not folder.is_dir():
                which = "is a file" if folder == out else f"cannot be created: {folder} is a file"
                raise DataError(f"export folder {out} (--out) {which}; give a folder to write the model, its "
                                "sidecar and MODEL_CARD.md into")
            break
    return out


def _zero_shot_sidecar(result_dir: Path, facts: Mapping[str, Any], target: str) -> tuple[Path, Sidecar]:
    """The pretrained model a zero_shot row used, and its sidecar given the row's facts and threshold.

    The pretrained sidecar is copied whole (features, ``n_channels``, sources, architecture).
    """

    # The result's fit.backend says how it was trained; a .keras file loads on any backend, so
    # exporting must neither switch Keras (already imported) nor refuse to run on another one.
    cfg = load_config(result_dir / "config.yaml", select_backend=False)
    src = pretrained_model_path(cfg.transfer.init_from, facts["source"], METHODS_CATALOG[facts["method"]].pretrains)
    method_name, level = cfg.eval.threshold_spec()
    sidecar = Sidecar.read(src).replace(**{k: facts[k] for k in ROW_FIELDS if k not in ("source", "n_train_clips")},
                                        target=target, threshold=facts["threshold"], threshold_method=method_name,
                                        threshold_level=level, pretrained=str(src))
    return src, sidecar


def _selection_bias(n_rows: int) -> str:
    """What choosing the best of `n_rows` rows by evaluation AUC does to that AUC (said in every card)."""
    return (f"Picking the best of N = {n_rows} row(s) by evaluation AUC overstates that AUC: the choice was made "
            "on the test split itself, so expect a lower AUC on new recordings"
            + (" (with N = 1 there was no choice, but the AUC is still from that split)." if n_rows == 1 else "."))


def _chance_warnings(results: pd.DataFrame, facts: Mapping[str, Any], *, target: str, table: Path) -> list[str]:
    """A warning when the chosen row's AUC is at or below chance (0.5), naming the method with the best mean AUC."""
    auc = float(facts["auc"])
    if auc > 0.5:
        return []
    mine = results[(results["target_type"] == facts["target_type"]) & (results["target_id"] == facts["target_id"])]
    means = pd.to_numeric(mine["auc"], errors="coerce").groupby(mine["method"]).mean().dropna()
    text = (f"the chosen {facts['method']} model of {target} has AUC {auc:.3f}, at or below chance (0.5): "
            "it ranks anomalies no better than a coin toss")
    better = means.drop(facts["method"], errors="ignore")
    better = better[better > means.get(facts["method"], auc)]
    if better.empty:
        return [f"{text}; no other method has a better mean AUC for {target} in {table}"]
    best = str(better.idxmax())
    return [f"{text}; {best} has the best mean AUC for {target} in {table} ({better.max():.3f} over "
            f"{int((mine['method'] == best).sum())} row(s)): export it with --method {best}"]


def model_card(model_name: str, sidecar: Sidecar | Mapping[str, Any], *, chosen: str = "",
               notes: Iterable[str] = ()) -> str:
    """A short Markdown model card: what the model is for, how good it was, its threshold and features.

    `chosen` says how the model was picked among the experiment's (a row of the card when given);
    `notes` are warnings (e.g. an AUC at or below chance), put first so nobody deploys past them.
    """
    s = sidecar if isinstance(sidecar, Sidecar) else Sidecar.from_dict(sidecar)
    f = s.features or {}
    rows = _card_rows(model_name, s) + ([("chosen as", chosen)] if chosen else [])
    warned = [f"> **Warning:** {note}" for note in notes]
    lines = [f"# Anomaly detector for {_or(s.target, '?')}", "", *[w for note in warned for w in (note, "")],
             "Dense autoencoder on log-mel features (MIMII / DCASE 2020 baseline). A clip's score is its mean "
             "reconstruction error; a clip scoring above the decision threshold is flagged anomalous.", "",
             "| | |", "|---|---|", *[f"| {k} | {v} |" for k, v in rows], "",
             "## Use", "", "```bash",
             f"python -m common score --model {model_name} RECORDINGS_OR_FOLDERS... [--threshold T] [--csv scores.csv]",
             "```", "",
             f"Recordings must be WAV files at {f.get('sample_rate')} Hz"
             + (f" with {s.n_channels} channels" if s.n_channels is not None else "")
             + f", scored on channel {f.get('channel')} (0-based); "
             "the feature parameters come from the sidecar, so keep it beside the model. A file of another rate, "
             "a corrupt, truncated, silent or too short one is reported by its path and not scored; the others "
             "are. `--threshold` overrides the fitted threshold (lower: more alarms, higher: fewer).", ""]
    return "\n".join(lines)


def _or(value: Any, default: Any) -> Any:
    """`value`, or `default` where the sidecar does not record it (None)."""
    return default if value is None else value


def _card_rows(model_name: str, s: Sidecar) -> list[tuple[str, str]]:
    """The (name, text) rows of the model card's table, from the sidecar `s`."""
    f = s.features or {}
    arch = s.architecture or {}
    method = _or(s.method, "?")
    sources = ", ".join(s.sources or []) or "none (trained on the target only)"
    pre = f"pretrained on {s.source} ({sources})"
    info = METHODS_CATALOG.get(method)
    how = method if info is None else info.card_words(pre=pre, sources=sources)
    threshold = describe_threshold(_or(s.threshold_method, "?"), float(_or(s.threshold_level, float("nan"))),
                                   n_clips=s.n_threshold_clips)
    return [
        ("model file", f"`{model_name}` (+ `{Path(model_name).with_suffix('.json').name}` sidecar)"),
        ("target machine", _or(s.target, "?")),
        ("method", f"{method}: {how}"),
        ("experiment", f"{_or(s.version, '?')}, config_hash `{_or(s.config_hash, '?')}`"),
        ("target budget", "none: no target clips (the pretrained model as is)" if is_zero_shot(method) else
                          f"{_or(s.budget, '?')} ({_or(s.n_train_clips, 0)} training normal clips), "
                          f"seed {_or(s.seed, '?')}"),
        ("AUC / pAUC", f"{_or(s.auc, NAN):.4f} / {_or(s.pauc, NAN):.4f} on the target's "
                       f"{_or(s.n_eval_clips, '?')} evaluation clips"),
        ("decision threshold", f"{_or(s.threshold, NAN):.6g}: {threshold}"),
        ("at that threshold", f"precision {_or(s.precision, NAN):.3f}, recall "
                              f"{_or(s.recall, NAN):.3f}, F1 {_or(s.f1, NAN):.3f} "
                              "on the evaluation split"),
        ("recordings", f"{s.n_channels} channel(s) per WAV file, as the training recordings" if s.n_channels is not None
                       else "channel count not recorded (a model saved before it was)"),
        ("features", f"channel {f.get('channel')}, {f.get('sample_rate')} Hz, n_mels {f.get('n_mels')}, frames "
                     f"{f.get('frames')}, n_fft {f.get('n_fft')}, hop_length {f.get('hop_length')}, "
                     f"power {f.get('power')}"),
        ("architecture", describe(arch)),
    ]
