"""Data roots in the DCASE Challenge Task 2 layouts (2020-2025): detect, parse clip names, list machines, split.

A DCASE root holds one folder per machine type; the clips of all its IDs or sections lie together in split
folders, and the file name says what a clip is. Two naming schemes (names without ``.wav``):

``dcase2020``  ``<type>/train/normal_id_01_00000000``, ``<type>/test/{normal,anomaly}_id_01_00000000``; the types
    include ToyCar and ToyConveyor, whose IDs differ from MIMII's (id_01..id_04; none is hard-coded here). A
    machine is (type, ID). No domains. The evaluation set withholds labels: ``test/id_05_00000000``.
    (y-kawagu/dcase2020_task2_baseline README.md; 01_test.py lists ``{normal,anomaly}_{id}*`` and, unlabelled,
    ``*{id}*``.)
``dcase2021``  2021-2025, one scheme: ``<type>/train/section_00_{source,target}_train_normal_0000_<attributes>``,
    test clips ``section_00_{source,target}_test_{normal,anomaly}_0000[_<attributes>]``. A machine is
    (type, section). How the years differ:

    - 2021 keeps test clips in ``source_test/`` and ``target_test/``; only training names carry attributes
      (``..._train_normal_0000_strength_1_ambient``); the evaluation set withholds labels only:
      ``source_test/section_03_source_test_0000`` (y-kawagu/dcase2021_task2_baseline_ae README.md, common.py;
      nttcslab/dcase2023_task2_baseline_ae datasets/eval_data_list_2021.csv).
    - 2022+ keep test clips in ``test/``, every name carries attributes (``..._test_normal_0000_vel_21``), and
      the evaluation set withholds domain and label: ``test/section_03_0000`` (2022, 2023:
      nttcslab/dcase2023_task2_baseline_ae datasets/eval_data_list_2022.csv, eval_data_list_2023.csv); that
      repository's README also shows ``section_00_test_0000``, which is read the same way.
    - 2023-2025 (first shot): one section per type, 990 source + 10 target training clips, and an
      ``attributes_00.csv`` per type (nttcslab/dcase2023_task2_baseline_ae README.md); 2024+ hide the
      attributes of some types as ``noAttribute``. The CSV's header is ``file_name,d1p,d1v[,d2p,d2v...]``, its
      rows ``<type>/<split>/<clip>.wav`` then (parameter, value) pairs (soundata/soundata
      soundata/datasets/dcase23_task2.py).

Read as given: the DCASE train / test split is used as it is; the target domain's training clips are that
domain's budget. Unlabelled evaluation clips get label -1 (`UNKNOWN_LABEL`), and `split_dcase_machine` refuses
them unless asked (their scores can be written, not their AUC). Only the split folders above are read (not, e.g.,
2025's ``supplemental/`` clean-sound clips). Stray files follow `common.data.mimii`: a file not named ``*.wav`` is not
a clip; a hidden one (``._x.wav``) is left out and reported (`ignored_dcase_files`); every other ``*.wav`` is a
clip, so one whose name fits no pattern of the layout is a `DataError` naming it rather than silently lost.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Collection, Iterable, Iterator

import numpy as np

from common.errors import DataError
from common.data.machines import Machine, Split, is_clip, list_folder_clips, one_layout

NORMAL, ANOMALY, UNKNOWN_LABEL = 0, 1, -1
_LABELS = {"normal": NORMAL, "anomaly": ANOMALY}

# The DCASE Task 2 years, and the years from which each naming rule holds (`layout_of_year`, `clip_name`).
YEARS: tuple[int, ...] = (2020, 2021, 2022, 2023, 2024, 2025)
DOMAINS_FROM = 2021  # from here on: sections, source and target domains, attributes (the dcase2021 scheme)
NAMED_TEST_FROM = 2022  # from here on: test clips in test/, named with attributes, attribute CSVs (2021: neither)
FIRST_SHOT_YEAR = 2023  # from here on: one section (00) per machine type

# split folder of a machine-type folder -> (split of its clips, domain they must have; None: any)
SPLIT_FOLDERS: dict[str, tuple[str, str | None]] = {
    "train": ("train", None),
    "test": ("test", None),
    "source_test": ("test", "source"),  # 2021
    "target_test": ("test", "target"),  # 2021
}



@dataclass(frozen=True)
class _Scheme:
    """One DCASE naming scheme: how its clip names are read, and how messages show them."""

    patterns: tuple[re.Pattern, ...]  # names without ".wav": labelled names first, then evaluation-set names
    id_prefix: str  # a machine ID's first word: "id" (id_01) or "section" (section_00)
    example: str  # a training clip's name
    domains: bool  # names say a source or target domain (check-data counts each domain's training clips)
    shown: dict[str, str]  # split -> the labelled names a development set's split folders hold, as a glob


# The one owner of the DCASE clip-name rule: `parse_clip` reads names with it, `clip_name` writes them, and
# `is_labelled_name` checks a downloaded zip's names with it.
_SCHEMES: dict[str, _Scheme] = {
    "dcase2020": _Scheme(
        (re.compile(r"(?P<label>normal|anomaly)_(?P<id>id_\d{2})_(?P<index>\d+)"),
         re.compile(r"(?P<id>id_\d{2})_(?P<index>\d+)")),
        "id", "normal_id_00_00000000.wav",
        False, {"train": "normal_id_XX_*.wav", "test": "{normal,anomaly}_id_XX_*.wav"}),
    "dcase2021": _Scheme(
        (re.compile(r"(?P<id>section_\d{2})_(?P<domain>source|target)_(?P<split>train|test)_(?P<label>normal|anomaly)"
                    r"_(?P<index>\d+)(?:_(?P<attributes>.*))?"),
         re.compile(r"(?P<id>section_\d{2})_(?P<domain>source|target)_(?P<split>test)_(?P<index>\d+)"),
         re.compile(r"(?P<id>section_\d{2})_(?:test_)?(?P<index>\d+)")),
        "section", "section_00_source_train_normal_0000_<attributes>.wav", True,
        {"train": "section_XX_{source,target}_train_normal_*.wav",
         "test": "section_XX_{source,target}_test_{normal,anomaly}_*.wav"}),
}
_LAYOUT_OF_ID_PREFIX = {scheme.id_prefix: layout for layout, scheme in _SCHEMES.items()}


@dataclass(frozen=True)
class DcaseClip:
    """One clip of a DCASE-layout root: what its folder and name say, and its section's attribute CSV row."""

    path: Path
    type: str  # the machine-type folder, e.g. "ToyCar"
    id: str  # "id_01" (2020) or "section_00" (2021-2025)
    split: str  # "train" or "test"
    domain: str | None  # "source" / "target"; None in 2020 and where an evaluation set withholds it
    label: int  # NORMAL 0, ANOMALY 1, UNKNOWN_LABEL -1 (evaluation set without labels)
    index: int  # the clip number in its name
    attribute_text: str = ""  # the name's text after the number ("" when none), e.g. "vel_21", "noAttribute"
    attributes: tuple[tuple[str, str], ...] = ()  # (parameter, value) pairs from attributes_XX.csv

    @property
    def machine_name(self) -> str:
        return f"{self.type}/{self.id}"


@dataclass(frozen=True)
class DcaseSplit(Split):
    """A DCASE machine's given split, a `common.data.mimii.Split` (normal training clips, labelled evaluation set)
    plus each clip's domain: the target-domain training clips are the target domain's budget."""

    train_clips: tuple[DcaseClip, ...]
    eval_clips: tuple[DcaseClip, ...]

    @property
    def train_domains(self) -> tuple[str | None, ...]:
        return tuple(c.domain for c in self.train_clips)

    @property
    def eval_domains(self) -> tuple[str | None, ...]:
        return tuple(c.domain for c in self.eval_clips)

    @property
    def source_train(self) -> tuple[Path, ...]:
        return tuple(c.path for c in self.train_clips if c.domain == "source")

    @property
    def target_train(self) -> tuple[Path, ...]:
        return tuple(c.path for c in self.train_clips if c.domain == "target")

    @property
    def train_attributes(self) -> tuple[str, ...]:
        """Each training clip's domain and attribute text, e.g. "source_vel_21" ("" in 2020: none)."""
        return tuple("_".join(p for p in (c.domain, c.attribute_text) if p) for c in self.train_clips)

    @property
    def budget_pool(self) -> tuple[Path, ...]:
        """A budget of N clips draws from the target domain's training clips (2021-2025); 2020: all of them."""
        return self.target_train if any(self.train_domains) else self.train


def check_scheme(layout: str) -> str:
    """`layout` if it names a DCASE naming scheme ('dcase2020', 'dcase2021'); DataError otherwise."""
    if layout not in _SCHEMES:
        raise DataError(f"layout={layout!r} must be one of {list(_SCHEMES)} to read a DCASE root (dcase2021 reads "
                        "2021-2025); list the machines of a MIMII root with common.data.mimii.find_machines")
    return layout


def check_year(year: object) -> int:
    """`year` as an int if it is one of `YEARS`; DataError otherwise."""
    if isinstance(year, bool) or not isinstance(year, (int, np.integer)) or int(year) not in YEARS:
        raise DataError(f"year={year!r} must be one of {YEARS} (the DCASE Task 2 layouts)")
    return int(year)


def layout_of_year(year: int) -> str:
    """The naming scheme of DCASE `year`: 'dcase2020' for 2020, 'dcase2021' for 2021-2025."""
    return "dcase2020" if check_year(year) < DOMAINS_FROM else "dcase2021"


def index_digits(year: int) -> int:
    """How many digits a clip number has in the names of DCASE `year`: 8 in 2020, 4 afterwards."""
    return 8 if check_year(year) < DOMAINS_FROM else 4


def test_folders(year: int) -> tuple[str, ...]:
    """Where the test clips of DCASE `year` lie in a type folder: ``("test",)``, or 2021's two domain folders."""
    if DOMAINS_FROM <= check_year(year) < NAMED_TEST_FROM:
        return ("source_test", "target_test")
    return ("test",)


def clip_folder(year: int, *, domain: str, split: str) -> str:
    """The split folder of a clip in DCASE `year`: ``train``, ``test``, or 2021's ``source_test`` / ``target_test``."""
    if split == "test" and test_folders(year) != ("test",):
        return f"{domain}_test"
    return split


def clip_name(year: int, *, machine_id: str, domain: str | None, split: str, label: int, index: int,
              attributes: str = "") -> str:
    """The file name DCASE `year` gives a clip, e.g. ``section_00_target_test_anomaly_0003_spd_125.wav``.

    `machine_id` is ``id_01`` (2020) or ``section_00``; `label` is `NORMAL` or `ANOMALY`. 2020 names have no
    domain or split (the folder says the split) and no attributes; 2021 test names end at the number
    (``section_00_target_test_anomaly_0003.wav``); `attributes` (e.g. ``"spd_125"``) ends every other name.
    `parse_clip` reads each name back.
    """
    word = {NORMAL: "normal", ANOMALY: "anomaly"}[label]
    number = f"{index:0{index_digits(year)}d}"
    if year < DOMAINS_FROM:
        return f"{word}_{machine_id}_{number}.wav"
    stem = f"{machine_id}_{domain}_{split}_{word}_{number}"
    if not attributes or (split == "test" and year < NAMED_TEST_FROM):
        return f"{stem}.wav"
    return f"{stem}_{attributes}.wav"


def official_year_2020(machine: Machine) -> int:
    """The DCASE year whose official score formula fits a 2020-layout machine: 2020."""
    return 2020


def official_year_of_sections(machine: Machine) -> int:
    """The DCASE year whose official score formula fits a section of the 2021-2025 layout.

    2021 when the type keeps its test clips in ``source_test/`` / ``target_test/``; otherwise 2022, whose
    formula 2023-2025 share (they differ in data, not in the score).
    """
    return 2021 if any((machine.path / f).is_dir() for f in test_folders(2021)) else 2022


def layout_of_id(machine_id: str) -> str:
    """The DCASE layout a machine ID belongs to: 'id_01' -> 'dcase2020', 'section_00' -> 'dcase2021'."""
    layout = _LAYOUT_OF_ID_PREFIX.get(str(machine_id).split("_", 1)[0])
    if layout is None:
        raise DataError(f"machine id={machine_id!r} is neither a DCASE 2020 ID (id_00) nor a section (section_00)")
    return layout


def _fields(name: str, layout: str) -> dict[str, str | None] | None:
    """The fields `layout`'s first fitting pattern reads from clip name `name` (``*.wav``); None if none fits."""
    stem = name[:-4]  # is_clip: the name ends in ".wav" in any case
    for pattern in _SCHEMES[layout].patterns:
        if m := pattern.fullmatch(stem):
            return m.groupdict()
    return None


def _layout_of_name(name: str) -> str | None:
    """The DCASE scheme clip name `name` fits, if any."""
    return next((layout for layout in _SCHEMES if _fields(name, layout) is not None), None)


def is_labelled_name(name: str, layout: str, split: str) -> bool:
    """Whether `name` is a labelled `split` clip's name in `layout` (training clips: normal ones only)."""
    fields = _fields(name, layout) if name.lower().endswith(".wav") else None
    if fields is None or fields.get("label") is None or (fields.get("split") or split) != split:
        return False
    return split == "test" or fields["label"] == "normal"


def shown_names(layout: str, split: str) -> str:
    """The labelled names a development set's `split` folders hold in `layout`, as a glob for messages."""
    return _SCHEMES[layout].shown[split]


def parse_clip(path: str | Path, layout: str) -> DcaseClip | None:
    """The clip ``<type>/<split folder>/<name>.wav`` as its folder and name say; None if the name fits no pattern.

    Parameters
    ----------
    path : path
        A file in one of the `SPLIT_FOLDERS` of a machine-type folder.
    layout : {'dcase2020', 'dcase2021'}

    Raises
    ------
    DataError
        Not in a split folder, or a name that contradicts its folder (a test clip in ``train/``, a target clip
        in ``source_test/``).
    """
    path = Path(path)
    check_scheme(layout)
    if path.parent.name not in SPLIT_FOLDERS:
        raise DataError(f"{path}: not in a split folder of a machine type ({', '.join(SPLIT_FOLDERS)})")
    fields = _fields(path.name, layout)
    if fields is None:
        return None
    split, folder_domain = SPLIT_FOLDERS[path.parent.name]
    named_split, domain = fields.get("split") or split, fields.get("domain") or folder_domain
    if named_split != split or (folder_domain and domain != folder_domain):
        raise DataError(f"{path}: its name says a {named_split} clip of the {domain} domain, "
                        f"but it lies in {path.parent.name}/")
    return DcaseClip(path, path.parent.parent.name, fields["id"], split, domain,
                     _LABELS.get(fields.get("label"), UNKNOWN_LABEL), int(fields["index"]),
                     fields.get("attributes") or "")


def read_attribute_csv(path: str | Path) -> dict[str, tuple[tuple[str, str], ...]]:
    """Clip file name -> its (parameter, value) pairs, from a DCASE ``attributes_XX.csv``.

    The header is ``file_name,d1p,d1v[,d2p,d2v...]``; ``file_name`` is ``<type>/<split>/<clip>.wav``, keyed here
    by the clip's name. Empty pairs (a row with fewer attributes than the header) are dropped.

    Raises
    ------
    DataError
        Unreadable, no ``file_name`` first column, or a row whose values do not come in pairs (names the line).
    """
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: cannot read the attribute CSV ({exc})") from exc
    if not rows or not rows[0] or rows[0][0].strip() != "file_name":
        raise DataError(f"{path}: an attribute CSV starts with a 'file_name' column, got header {rows[:1]}")
    table = {}
    for line, row in enumerate(rows[1:], start=2):
        if not row or not row[0].strip():
            continue
        values = [v.strip() for v in row[1:]]
        if len(values) % 2 and values[-1]:
            raise DataError(f"{path} line {line}: attributes come in (parameter, value) pairs, got {values}")
        pairs = tuple((p, v) for p, v in zip(values[0::2], values[1::2]) if p or v)
        table[row[0].strip().replace("\\", "/").rsplit("/", 1)[-1]] = pairs
    return table


def _check_root(root: str | Path) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"data root not found: {root}")
    return root


def _type_folders(root: Path) -> list[Path]:
    """Folders of `root` holding a split folder: the machine types of a DCASE root, sorted by name."""
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")
                  and any((p / name).is_dir() for name in SPLIT_FOLDERS))


def _folder_names(folder: Path) -> list[str]:
    """The clip names in the split folders of `folder`."""
    return [p.name for split in SPLIT_FOLDERS if (folder / split).is_dir()
            for p in (folder / split).iterdir() if is_clip(p)]


def dcase_layouts_under(root: str | Path) -> dict[str, list[str]]:
    """DCASE layout -> the folders of `root` holding clips named in it, sorted ({} for a MIMII root, or none).

    A folder whose names fit both schemes is listed under both: `common.data.machines.one_layout` names such a root.
    """
    found: dict[str, list[str]] = {}
    for child in sorted(p for p in _check_root(root).iterdir() if p.is_dir() and not p.name.startswith(".")):
        for layout in sorted({layout for layout in map(_layout_of_name, _folder_names(child)) if layout}):
            found.setdefault(layout, []).append(child.name)
    return found


def dcase_folders(root: str | Path, layout: str) -> list[str]:
    """The folders of `root` holding clips named in DCASE `layout`: how the layout is detected."""
    return dcase_layouts_under(root).get(check_scheme(layout), [])


def _detect_scheme(root: Path) -> str:
    """The one DCASE layout of `root`; DataError when there is none or the root mixes two."""
    layout = one_layout(root, dcase_layouts_under(root))
    if layout is None:
        raise DataError(f"no DCASE Task 2 clips under {root} (a MIMII root? list its machines with "
                        f"common.data.mimii.find_machines): expected DCASE machine-type folders "
                        f"({root / 'ToyCar/train' / _SCHEMES['dcase2020'].example}, "
                        f"{root / 'fan/train' / _SCHEMES['dcase2021'].example})")
    return layout


def _type_clips(type_dir: Path, layout: str) -> list[DcaseClip]:
    """The clips of one machine-type folder (split folders in `SPLIT_FOLDERS` order, names sorted), with the
    attributes of its ``attributes_XX.csv`` files. A test clip's name is read once: nttcslab/dcase2023_task2_baseline_ae
    (datasets/loader_common.py) copies 2021's ``source_test/`` and ``target_test/`` into ``test/``. (A 2020 test
    clip may share its name with a training clip: ``normal_id_01_00000000.wav`` is in both folders.)"""
    clips, seen = [], set()
    for folder in SPLIT_FOLDERS:
        for path in list_folder_clips(type_dir / folder)[0]:
            if (SPLIT_FOLDERS[folder][0], path.name) in seen:
                continue
            seen.add((SPLIT_FOLDERS[folder][0], path.name))
            clip = parse_clip(path, layout)
            if clip is None:
                raise DataError(f"file name fits no {layout} pattern: {path} (expected names like "
                                f"{_SCHEMES[layout].example}; is the data.layout right?)")
            clips.append(clip)
    table: dict[str, tuple[tuple[str, str], ...]] = {}
    for csv_path in sorted(type_dir.glob("attributes_*.csv")):
        table.update(read_attribute_csv(csv_path))
    return [replace(c, attributes=table.get(c.path.name, ())) for c in clips]


def list_dcase_clips(root: str | Path, layout: str | None = None, *,
                     types: Iterable[str] | None = None) -> list[DcaseClip]:
    """Every clip of a DCASE root (or of the machine types `types`), by type folder, split folder, then name.

    Parameters
    ----------
    root : path
        Folder of machine-type folders, e.g. ``dev_data/``.
    layout : {'dcase2020', 'dcase2021'}, optional
        Detected from the root's clip names when None.

    Raises
    ------
    DataError
        Root missing, a MIMII layout, a name that fits no pattern, a bad attribute CSV, an asked-for type absent.
    """
    root = _check_root(root)
    layout = _detect_scheme(root) if layout is None else check_scheme(layout)
    folders = _keep(_type_folders(root), "name", types, root, "machine type")
    return [clip for folder in folders for clip in _type_clips(folder, layout)]


def _keep(items: list, attr: str, wanted: Iterable[str] | None, root: Path, what: str) -> list:
    if wanted is None:
        return items
    wanted = list(wanted)
    found = sorted({getattr(item, attr) for item in items})
    missing = [w for w in wanted if w not in found]
    if missing:
        raise DataError(f"{what}(s) {missing} not found under {root}; found: {found}")
    return [item for item in items if getattr(item, attr) in wanted]


def find_dcase_machines(root: str | Path, layout: str | None = None, *, types: Iterable[str] | None = None,
                        sections: Iterable[str] | None = None) -> list[Machine]:
    """The machines of a DCASE root, sorted by type then ID: (type, 'id_01') in 2020, (type, 'section_00') after.

    A machine's ``path`` is its machine-type folder (the clips of all its IDs / sections lie there).

    Parameters
    ----------
    root : path
    layout : {'dcase2020', 'dcase2021'}, optional
        Detected when None.
    types, sections : iterables of str, optional
        Keep only these machine types / IDs or sections (``'id_01'``, ``'section_00'``); each must exist.

    Raises
    ------
    DataError
        As `list_dcase_clips`; no clips at all; an asked-for section not found.
    """
    root = Path(root)
    clips = list_dcase_clips(root, layout, types=types)
    if not clips:
        raise DataError(f"no DCASE clips under {root}: expected files like {root / 'fan/train'}/"
                        f"{_SCHEMES[layout or 'dcase2021'].example}")
    machines = sorted({Machine(c.type, c.id, c.path.parent.parent) for c in clips})
    return _keep(machines, "id", sections, root, "section / ID")


def _check_split(machine: Machine, train: list[DcaseClip], test: list[DcaseClip], *, require_labels: bool,
                 why: str) -> None:
    if not train:
        raise DataError(f"machine {machine.name} has no training clips in {machine.path / 'train'}{why}")
    not_normal = [c.path for c in train if c.label != NORMAL]
    if not_normal:
        raise DataError(f"{not_normal[0]}: a training clip not named normal; DCASE training data is normal only")
    if not test:
        raise DataError(f"machine {machine.name} has no test clips under {machine.path}{why}")
    unlabelled = [c.path for c in test if c.label == UNKNOWN_LABEL]
    if require_labels and unlabelled:
        raise DataError(
            f"machine {machine.name}: {len(unlabelled)} test clip(s) without a label in the name, e.g. "
            f"{unlabelled[0]} (an evaluation set whose labels are withheld): the experiments need a development "
            "set's labelled test clips; score unlabelled clips with a trained model instead "
            "(`python -m common score --model MODEL.keras FOLDER`)")
    if require_labels and {c.label for c in test} != {NORMAL, ANOMALY}:
        raise DataError(f"machine {machine.name} has test clips of one class only{why}: "
                        "evaluation needs both normal and anomaly clips")
    if require_labels and machine.id.startswith("section_"):
        _check_domains(machine, test, why=why)


def _check_domains(machine: Machine, test: list[DcaseClip], *, why: str) -> None:
    """A 2021-2025 section's test clips hold normal and anomalous clips of each domain (its official score's terms)."""
    for domain in ("source", "target"):
        labels = {c.label for c in test if c.domain == domain}
        if labels != {NORMAL, ANOMALY}:
            what = "no" if not labels else f"only {'normal' if NORMAL in labels else 'anomalous'}"
            raise DataError(
                f"machine {machine.name} has {what} {domain}-domain test clips under {machine.path}{why} (names like "
                f"{machine.id}_{domain}_test_normal_0000.wav and {machine.id}_{domain}_test_anomaly_0000.wav): its "
                "AUC and official score need normal and anomalous test clips of both domains")


def split_dcase_machine(machine: Machine, *, exclude: Collection[str | Path] = (),
                        require_labels: bool = True) -> DcaseSplit:
    """The DCASE train / test split of one machine as given: training = its ``train/`` clips (source, then target),
    evaluation = its test clips with their labels and domains.

    Parameters
    ----------
    machine : Machine
        From `find_dcase_machines` (``path`` = the machine-type folder).
    exclude : collection of paths
        Files to leave out (e.g. bad files skipped under ``data.on_bad_file: skip``).
    require_labels : bool
        Refuse unlabelled evaluation clips (True), or keep them with label -1 (False).

    Raises
    ------
    DataError
        No training or test clips, a training clip not normal, unlabelled or one-class test clips (if required).
    """
    layout = layout_of_id(machine.id)
    left_out = {str(p) for p in exclude}
    clips = [c for c in _type_clips(machine.path, layout) if c.id == machine.id and str(c.path) not in left_out]
    train = [c for c in clips if c.split == "train"]
    test = [c for c in clips if c.split == "test"]
    why = f" ({len(left_out)} bad file(s) skipped)" if left_out else ""
    _check_split(machine, train, test, require_labels=require_labels, why=why)
    labels = np.array([c.label for c in test], dtype=int)
    return DcaseSplit(machine, tuple(c.path for c in train), tuple(c.path for c in test), labels,
                      tuple(train), tuple(test))


def ignored_dcase_files(machine: Machine) -> list[Path]:
    """Hidden ``*.wav`` files (``._x.wav``) of `machine`'s split folders that name its ID or section: left out."""
    hidden = [p for split in SPLIT_FOLDERS for p in list_folder_clips(machine.path / split)[1]]
    return [p for p in hidden if f"{machine.id}_" in p.name]


def dcase_inventory(root: str | Path, layout: str) -> Iterator[tuple[Machine, list[Path], dict[str, int]]]:
    """Each machine of a DCASE root with its clips as `split_dcase_machine` reads them (listed once for the root)
    and their counts: normal and anomalous clips, and where names carry domains each domain's training clips."""
    machines = find_dcase_machines(root, layout)
    clips: dict[str, list[DcaseClip]] = {}
    for clip in list_dcase_clips(root, layout):
        clips.setdefault(clip.machine_name, []).append(clip)
    for machine in machines:
        mine = clips[machine.name]
        counts = {"normal": sum(c.label == NORMAL for c in mine), "abnormal": sum(c.label == ANOMALY for c in mine)}
        if _SCHEMES[layout].domains:
            train = [c for c in mine if c.split == "train" and c.label == NORMAL]
            counts.update(train_source=sum(c.domain == "source" for c in train),
                          train_target=sum(c.domain == "target" for c in train))
        yield machine, [c.path for c in mine], counts


def dcase_given_clips(machine: Machine) -> list[Path]:
    """Every clip of `machine` that its given split reads: training clips, then test clips."""
    given = split_dcase_machine(machine)
    return list(given.train) + list(given.eval_files)


def ignored_under(root: str | Path, layout: str) -> list[Path]:
    """Hidden ``*.wav`` files in the split folders of every machine type of a DCASE root (also those naming
    no ID or section, which `ignored_dcase_files` would not place)."""
    type_folders = sorted({machine.path for machine in find_dcase_machines(root, layout)})
    return [p for folder in type_folders for split in SPLIT_FOLDERS for p in list_folder_clips(folder / split)[1]]
