"""Names on disk: the MIMII folder layout, the version folders, and where models and result rows are saved.

One owner for every folder and file name the package reads or writes, so a renamed folder is
changed here only: data roots (``<snr>_dB_<type>/<type>/<id>/{normal,abnormal}/*.wav``), version
folders (``VersionN/make_pretrain_vN.yaml``, ``VersionN/transfer_pretrain_vN.yaml``), pretrained
models (``<model_dir>/<source>.keras``) and per-row models under a result folder. The model and
result folders themselves are config keys (``output.model_dir``, ``output.result_dir``).
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from common.errors import DataError

MACHINE_TYPES: tuple[str, ...] = ("fan", "pump", "slider", "valve")
MACHINE_IDS: tuple[str, ...] = ("id_00", "id_02", "id_04", "id_06")
LABELS: tuple[str, ...] = ("normal", "abnormal")
_SNR_DIR = re.compile(r"^(?P<snr>[+-]?\d+(?:\.\d+)?)_?dB_(?P<type>.+)$")


def check_snr(snr: object) -> float:
    """`snr` as a float; DataError unless it is a finite number (of dB)."""
    if isinstance(snr, bool) or not isinstance(snr, (int, float, np.integer, np.floating)) or not math.isfinite(snr):
        raise DataError(f"snr={snr!r} must be a finite number of dB")
    return float(snr)


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
    snr = check_snr(snr)
    if not isinstance(machine_type, str) or not machine_type or "/" in machine_type or os.sep in machine_type:
        raise DataError(f"machine_type={machine_type!r} must be a non-empty folder name")
    text = str(int(snr)) if snr.is_integer() else np.format_float_positional(snr, trim="-")
    return f"{text}_dB_{machine_type}"


def parse_snr_folder(name: str) -> tuple[float, str] | None:
    """(snr, machine type) of a folder named like `snr_folder` (``-6_dB_fan``, also ``-6dB_fan``); None otherwise."""
    m = _SNR_DIR.match(name)
    return (float(m["snr"]), m["type"]) if m else None


def pretrained_model_path(model_dir: str | os.PathLike, source_label: str, pretraining: str = "autoencoder") -> Path:
    """Where the model pretrained on source set `source_label` lives.

    ``<model_dir>/<label>.keras`` for the autoencoder, ``<model_dir>/<label>.<pretraining>.keras``
    for another pretraining (``embedding``: the machine-ID classifier).
    """
    suffix = "" if pretraining == "autoencoder" else f".{pretraining}"
    return Path(model_dir) / f"{source_label}{suffix}.keras"


def row_model_path(out: str | os.PathLike, row: Mapping[str, Any]) -> Path:
    """Where the model of a results.csv `row` (scratch or transfer) is saved under the result folder `out`.

    ``out/models/<target_type>_<target_id>/<method>_<source>_budget-<budget>_seed-<seed>.keras``
    (+ ``.json`` sidecar). A zero_shot row has no file of its own: its model is the pretrained one.
    """
    name = f"{row['method']}_{row['source']}_budget-{row['budget']}_seed-{row['seed']}.keras"
    return Path(out) / "models" / f"{row['target_type']}_{row['target_id']}" / name


def random_dir(folder: str | os.PathLike) -> Path:
    """``<folder>_random``: the model or result folder of v5 run with ``experiment.selection: random``, beside v5's.

    The report's hindsight comparison (`common.report.hindsight`) reads v5's random baseline there.
    """
    folder = Path(folder)
    return folder.with_name(f"{folder.name}_random")


# --------------------------------------------------------------------------------------------
# Version folders: ``<repo>/VersionN/`` holds the two YAMLs of version vN and their notebooks.
# Where a version's models and results go is not named here: it is each YAML's ``output`` section
# (defaults in common/defaults.yaml), so readers of results load the transfer YAML.

VERSION_FOLDER = "Version{n}"
PRETRAIN_STEP = "make_pretrain_v{n}"  # step 1: pretrain one model per source set (.yaml, .ipynb)
TRANSFER_STEP = "transfer_pretrain_v{n}"  # step 2: every method per target (.yaml, .ipynb)


def version_number(version: int | str) -> str:
    """The number of a version given as ``1``, ``"1"`` or ``"v1"``, as text (``"1"``).

    Raises
    ------
    DataError
        `version` is not a version number.
    """
    text = str(version).lower().removeprefix("v")
    if not text.isdigit():
        raise DataError(f"version={version!r} must be a version number such as 1 or v1")
    return text


def version_folder(repo: str | os.PathLike, version: int | str) -> Path:
    """``<repo>/VersionN``, the folder of version `version` (``1``, ``"1"`` or ``"v1"``)."""
    return Path(repo) / VERSION_FOLDER.format(n=version_number(version))


def pretrain_yaml(repo: str | os.PathLike, version: int | str) -> Path:
    """``<repo>/VersionN/make_pretrain_vN.yaml`` (its notebook: the same name with ``.ipynb``)."""
    n = version_number(version)
    return version_folder(repo, n) / f"{PRETRAIN_STEP.format(n=n)}.yaml"


def transfer_yaml(repo: str | os.PathLike, version: int | str) -> Path:
    """``<repo>/VersionN/transfer_pretrain_vN.yaml``, whose ``output.result_dir`` holds the version's results."""
    n = version_number(version)
    return version_folder(repo, n) / f"{TRANSFER_STEP.format(n=n)}.yaml"


def versions_in(repo: str | os.PathLike) -> list[str]:
    """Labels (``"v1"``, ``"v2"``, ...) of the versions under `repo` that have a transfer YAML, in number order."""
    pattern = re.compile(VERSION_FOLDER.format(n=r"(\d+)") + "$")
    numbers = [m[1] for folder in Path(repo).glob(VERSION_FOLDER.format(n="*")) if (m := pattern.match(folder.name))]
    return [f"v{n}" for n in sorted(numbers, key=int) if transfer_yaml(repo, n).is_file()]
