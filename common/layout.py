"""Names on disk: the MIMII folder layout, and where models and result rows are saved.

One owner for every folder and file name the package reads or writes, so a renamed folder is
changed here only: data roots (``<snr>_dB_<type>/<type>/<id>/{normal,abnormal}/*.wav``), pretrained
models (``<model_dir>/<source>.keras``) and per-row models under a result folder.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .errors import DataError

MACHINE_TYPES: tuple[str, ...] = ("fan", "pump", "slider", "valve")
MACHINE_IDS: tuple[str, ...] = ("id_00", "id_02", "id_04", "id_06")
LABELS: tuple[str, ...] = ("normal", "abnormal")
_SNR_DIR = re.compile(r"^(?P<snr>[+-]?\d+(?:\.\d+)?)_?dB_(?P<type>.+)$")


def snr_folder(snr: float, machine_type: str) -> str:
    """Name of the MIMII folder of a machine type at a noise level.

    Parameters
    ----------
    snr : float
        Machine-to-background ratio in dB; integers are written without decimals.
    machine_type : str
        e.g. ``"fan"``.

    Returns
    -------
    name : str
        e.g. ``"-6_dB_fan"``, ``"0_dB_pump"``, ``"2.5_dB_valve"``.

    Raises
    ------
    DataError
        `snr` not finite, or `machine_type` empty or containing a path separator.

    Examples
    --------
    >>> snr_folder(-6, "fan")
    '-6_dB_fan'
    """
    if isinstance(snr, bool) or not isinstance(snr, (int, float, np.integer, np.floating)) or not math.isfinite(snr):
        raise DataError(f"snr={snr!r} must be a finite number of dB")
    snr = float(snr)
    if not isinstance(machine_type, str) or not machine_type or "/" in machine_type or os.sep in machine_type:
        raise DataError(f"machine_type={machine_type!r} must be a non-empty folder name")
    text = str(int(snr)) if snr.is_integer() else np.format_float_positional(snr, trim="-")
    return f"{text}_dB_{machine_type}"


def parse_snr_folder(name: str) -> tuple[float, str] | None:
    """(snr, machine type) of a folder named like `snr_folder` (``-6_dB_fan``, also ``-6dB_fan``); None otherwise."""
    m = _SNR_DIR.match(name)
    return (float(m["snr"]), m["type"]) if m else None


def pretrained_model_path(model_dir: str | os.PathLike, source_label: str) -> Path:
    """Where the model pretrained on source set `source_label` lives: ``<model_dir>/<label>.keras``."""
    return Path(model_dir) / f"{source_label}.keras"


def row_model_path(out: str | os.PathLike, row: Mapping[str, Any]) -> Path:
    """Where the model of a results.csv `row` (scratch or transfer) is saved under the result folder `out`.

    ``out/models/<target_type>_<target_id>/<method>_<source>_budget-<budget>_seed-<seed>.keras``
    (+ ``.json`` sidecar). A zero_shot row has no file of its own: its model is the pretrained one.
    """
    name = f"{row['method']}_{row['source']}_budget-{row['budget']}_seed-{row['seed']}.keras"
    return Path(out) / "models" / f"{row['target_type']}_{row['target_id']}" / name
