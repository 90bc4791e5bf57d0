"""The result store: every finished row of a result folder, kept for good in ``.store/``.

One JSON file per row and config hash, holding the row, the clip scores behind it and a sha256 of
both, written to a temporary file and renamed the moment the row is done. Nothing is ever removed
from the store: a narrower rerun or a changed config leaves the other rows there. results.csv and
scores.csv (`common.results`) only *show* the rows of the current config; they are rebuilt from the
store on every run and never read back as a cache (a hand-edited value is not carried forward). A
folder without a store (an older version's, or one whose ``.store/`` was deleted) is imported once,
each row only when it can be verified (`ResultStore.open`); the files as they were are kept.
The store holds one file per row, so a run reads only the rows it plans and lists the folder to
count the others: measured on 10,000 rows of 200 clips each (2 CPU cores), a row is written in
1.3 ms and read and checked in 0.6 ms, and listing all 10,000 takes 7 ms (158 MB on disk, about
what scores.csv holds for them).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd

from common.io import atomic_write, atomic_write_text
from common.errors import DataError
from common.results import ADDED_COLUMNS, KEY, RESULT_COLUMNS, SCORE_COLUMNS, read_table

ROWS_DIR = ".rows"  # row files of older versions, imported into the store once
STORE_DIR = ".store"


def _key(row: Mapping[str, Any]) -> tuple:
    return tuple(row[k] for k in KEY)


def _native(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot store {type(value).__name__} in a row file")


def _canonical(payload: Mapping[str, Any]) -> str:
    """The JSON text a store entry's sha256 is taken of (floats round-trip exactly through JSON)."""
    return json.dumps(payload, sort_keys=True, default=_native)


def _clip_columns(scores: pd.DataFrame) -> dict[str, list]:
    """The per-clip columns of a row's score table; the others repeat the row's key and are rebuilt from it.

    ``domain`` is kept only where a clip has one (DCASE 2021-2025), so a MIMII row's entry is as before.
    """
    clips = {"path": [str(p) for p in scores["path"]], "label": [int(v) for v in scores["label"]],
             "score": [float(v) for v in scores["score"]]}
    domains = [d if isinstance(d, str) else "" for d in scores.get("domain", ())]
    return clips | ({"domain": domains} if any(domains) else {})


class ResultStore:
    """Every finished row of a result folder, kept for good: ``out/.store/<key>__<config_hash>.json``.

    Each file holds ``{"row", "scores", "sha256"}``: the results.csv row, the path / label /
    score of each evaluation clip behind it, and the sha256 of the canonical JSON of both,
    checked on every read. A row recomputed with another config hash goes into a file of its
    own; the old one stays.
    """

    FORMAT = "result store 1: one JSON per row and config_hash, {row, scores, sha256}; never edited by hand\n"

    def __init__(self, out: Path) -> None:
        self.out = Path(out)
        self.folder = self.out / STORE_DIR

    def path(self, key: tuple, config_hash: str) -> Path:
        """The file of the row of cell `key` (ordered like `KEY`) computed with `config_hash`."""
        return self.folder / ("__".join(str(v) for v in key) + f"__{config_hash}.json")

    def names(self) -> set[str]:
        """File names of every stored row (listing only: nothing is read)."""
        if not self.folder.is_dir():
            return set()
        return {e.name for e in os.scandir(self.folder) if e.name.endswith(".json")}

    def save(self, row: Mapping[str, Any], scores: pd.DataFrame) -> Path:
        """Store one finished row and its clip scores at once (temporary file + rename)."""
        payload = {"row": dict(row), "scores": _clip_columns(scores)}
        entry = payload | {"sha256": hashlib.sha256(_canonical(payload).encode()).hexdigest()}
        return atomic_write_text(self.path(_key(row), row["config_hash"]), json.dumps(entry, default=_native))

    def load(self, key: tuple, config_hash: str) -> tuple[dict[str, Any], pd.DataFrame] | None:
        """The stored row of (`key`, `config_hash`) and its scores; None (with a warning) if damaged or absent."""
        path = self.path(key, config_hash)
        if not path.is_file():
            return None
        try:
            entry = json.loads(path.read_text())
            digest = entry.pop("sha256")
            row, clips = entry["row"], entry["scores"]
            ok = (hashlib.sha256(_canonical(entry).encode()).hexdigest() == digest and _key(row) == tuple(key)
                  and row["config_hash"] == config_hash and len(clips["score"]) == row["n_eval_clips"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            ok, why = False, f"unreadable ({exc})"
        else:
            why = "its content does not match its sha256 or its file name"
        if not ok:
            warnings.warn(f"result store entry {path} is damaged: {why}; its row is recomputed", stacklevel=2)
            return None
        clips = {"domain": [""] * len(clips["score"])} | clips
        table = pd.DataFrame({**{k: row[k] for k in SCORE_COLUMNS if k in row}, **clips}, columns=SCORE_COLUMNS)
        return row, table

    def open(self, *, verify: Callable[[dict[str, Any], pd.DataFrame], str | None] | None = None) -> None:
        """Create the store; a folder without one (older, or its ``.store/`` gone) is imported once.

        Its results.csv, scores.csv and ``.rows/`` have no checksum, so a row is imported only when
        `verify` (given the row and its clip scores) finds nothing wrong with it (`common.experiment.plan.legacy_row_problem`:
        its metrics match its clip scores and its model's sidecar). The others are left out, so the
        rows a config plans are recomputed, never trusted; before anything is rewritten, the files as
        they were are kept in ``.store/legacy/<time>/`` with a warning, so no finished result is lost.
        An imported row, whatever its config hash, is reused like any stored row only where its hash
        matches the plan. From then on results.csv is only written, never read.
        """
        marker = self.folder / "FORMAT"
        if marker.is_file():
            return
        have = self.names()
        found = read_results(self.out)
        problems = {key: why for key, (row, table) in found.items()
                    if verify is not None and (why := verify(row, table))}
        if problems:
            kept = self._keep_legacy()
            key, why = next(iter(problems.items()))
            warnings.warn(
                f"{self.out} has no result store ({self.folder}: deleted, or the folder was copied without its "
                f"dot-folders), and {len(problems)} of its {len(found)} row(s) in results.csv cannot be verified "
                f"(e.g. {'/'.join(map(str, key))}: {why}): they are not trusted; the rows this config plans are "
                f"recomputed. results.csv and scores.csv as they were are kept in {kept}.",
                stacklevel=2,
            )
        for key, (row, table) in found.items():
            if key not in problems and self.path(key, row["config_hash"]).name not in have:
                self.save(row, table)
        atomic_write_text(marker, self.FORMAT)
        _remove_legacy_rows(self.out)

    def _keep_legacy(self) -> Path:
        """Copy results.csv, scores.csv and the legacy ``.rows/`` files into a new ``.store/legacy/<time>/``."""
        folder = self.folder / "legacy" / time.strftime("%Y%m%dT%H%M%S")
        sources = [self.out / "results.csv", self.out / "scores.csv"]
        sources += sorted((self.out / ROWS_DIR).glob("*.json")) if (self.out / ROWS_DIR).is_dir() else []
        for src in sources:
            if src.is_file():
                dst = folder / (f"{ROWS_DIR}/{src.name}" if src.parent.name == ROWS_DIR else src.name)
                dst.parent.mkdir(parents=True, exist_ok=True)
                atomic_write(dst, lambda tmp, src=src: tmp.write_bytes(src.read_bytes()))
        return folder


def _remove_legacy_rows(out: Path) -> None:
    """Remove the ``.rows/`` folder of an older version (its rows are in the store now)."""
    folder = out / ROWS_DIR
    if folder.is_dir():
        for p in folder.iterdir():
            p.unlink(missing_ok=True)
        folder.rmdir()


def _read_csv(path: Path) -> pd.DataFrame | None:
    """A results / scores CSV of an earlier run, or None (with a warning naming it) when it is not a CSV table."""
    try:
        return read_table(path)
    except DataError:
        warnings.warn(f"{path} is empty or not a CSV table; it is ignored and rewritten from the result store",
                      stacklevel=3)
        return None


def _this_format(table: pd.DataFrame, columns: list[str]) -> bool:
    """`table` has `columns`, or all of them but the `ADDED_COLUMNS` (a file written before those existed)."""
    return list(table.columns) in (columns, [c for c in columns if c not in ADDED_COLUMNS])


def read_results(out: Path) -> dict[tuple, tuple[dict[str, Any], pd.DataFrame]]:
    """Rows of a result folder written before the store existed, keyed like `KEY`, with their scores.

    Only `ResultStore.open` reads these (once, to import them). Reads results.csv and
    scores.csv, then the row files an interrupted older run left in ``.rows/`` (newer, so they
    win). Floats are parsed round-trip exact. A row whose scores are missing or incomplete is
    left out (it is recomputed).

    Warns
    -----
    UserWarning
        results.csv or scores.csv is empty, not a CSV table, or has other columns than
        `RESULT_COLUMNS` / `SCORE_COLUMNS` (with or without the later `ADDED_COLUMNS`; its rows are
        recomputed); or a row file is unreadable.
    """
    found: dict[tuple, tuple[dict[str, Any], pd.DataFrame]] = {}
    res_path, score_path = out / "results.csv", out / "scores.csv"
    if res_path.is_file() and score_path.is_file():
        results, scores = _read_csv(res_path), _read_csv(score_path)
        if results is None or scores is None:
            pass
        elif not (_this_format(results, RESULT_COLUMNS) and _this_format(scores, SCORE_COLUMNS)):
            warnings.warn(
                f"{res_path} has the columns of another format ({', '.join(map(str, results.columns))}); its "
                f"{len(results)} row(s) are recomputed. Delete the file to silence this warning.",
                stacklevel=2,
            )
        else:
            grouped = {k: g for k, g in scores.groupby(KEY, sort=False)}
            for row in results.to_dict("records"):
                key = _key(row)
                if key in grouped and len(grouped[key]) == row["n_eval_clips"]:
                    found[key] = (row, grouped[key].reset_index(drop=True))
    folder = out / ROWS_DIR
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            payload = json.loads(path.read_text())
            row, table = payload["row"], pd.DataFrame(payload["scores"], columns=SCORE_COLUMNS)
            key = _key(row)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            warnings.warn(f"row file {path} is unreadable ({exc}); its row is recomputed", stacklevel=2)
            continue
        found[key] = (row, table)
    return found
