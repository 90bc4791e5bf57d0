"""Command line: ``python -m common COMMAND ...`` (``--help`` lists the commands)."""

from __future__ import annotations

import argparse
import errno
import sys
from pathlib import Path
from typing import Callable

from common.errors import ConfigError, ProjectError

REPO = Path(__file__).resolve().parent.parent


def _csv_list(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.split(",") if t.strip())


def cmd_synth(args: argparse.Namespace) -> int:
    from common.data.names import MACHINE_IDS, MACHINE_TYPES
    from common.data.synth import generate_dataset
    from common.data.synth.worlds import world_lines

    if args.list_worlds:
        print("\n".join(world_lines()))
        return 0
    written = generate_dataset(
        args.root,
        snr=args.snr,
        n_normal=args.normal,
        n_abnormal=args.abnormal,
        seconds=args.seconds,
        channels=args.channels,
        seed=args.seed,
        types=args.types or MACHINE_TYPES,
        ids=args.ids or MACHINE_IDS,
        jobs=args.jobs,
        overwrite=args.overwrite,
        world=args.world,
    )
    print(f"wrote {len(written)} machines x ({args.normal} normal + {args.abnormal} abnormal) clips of world "
          f"{args.world} under {args.root}")
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    from common.data.download_mimii import download_mimii
    from common.data.names import MACHINE_TYPES

    folders = download_mimii(
        args.root,
        snr=args.snr,
        types=args.types or MACHINE_TYPES,
        record_id=args.record,
        base_url=args.base_url,
        keep_zip=args.keep_zip,
        progress=not args.no_progress,
    )
    for folder in folders:
        print(f"ready  {folder}")
    return 0


def cmd_download_dcase(args: argparse.Namespace) -> int:
    from common.data.download_dcase import download_dcase

    args.root = args.root or f"dcase{args.year}t2_dev"
    for folder in download_dcase(args.root, year=args.year, types=args.types, record_id=args.record,
                                 base_url=args.base_url, keep_zip=args.keep_zip, progress=not args.no_progress):
        print(f"ready  {folder}")
    return 0


def cmd_features(args: argparse.Namespace) -> int:
    from common.data.dataset import load_machine, select_machines

    cfg = _load(args)
    print(f"{'machine':<16}{'train':>7}{'eval':>6}{'vectors':>10}{'dim':>6}")
    for machine in select_machines(cfg):
        md = load_machine(cfg, machine)
        print(
            f"{machine.name:<16}{len(md.split.train):>7}{len(md.split.eval_files):>6}"
            f"{md.features.vectors.shape[0]:>10}{md.features.vectors.shape[1]:>6}"
        )
    return 0


def cmd_check_data(args: argparse.Namespace) -> int:
    from common.data.check import check_data, ignored_in_root

    settings = _check_data_settings(args)
    table, problems = check_data(args.root, jobs=args.jobs, progress=not args.no_progress, **settings)
    print(table.to_string(index=False, float_format="{:.2f}".format))
    ignored = ignored_in_root(args.root, snr=settings["snr"])
    if ignored:
        print(f"\nnote: {len(ignored)} file(s) named like clips are not clips and are left out (hidden files such as "
              "macOS '._' resource forks):")
        for path in ignored:
            print(f"  {path}")
    if problems.empty:
        print(f"\nno problems in {len(table)} machine(s) under {args.root}")
        return 0
    print(f"\n{len(problems)} problem(s):")
    for message in problems["problem"]:
        print(f"  {message}")
    return 1


def _check_data_settings(args: argparse.Namespace) -> dict:
    """snr, channel, sample_rate and feature parameters: a flag, else the --config YAML, else the defaults."""
    from common.config import FeatureConfig, load_config

    cfg = load_config(args.config) if args.config else None
    d, f = (cfg.data, cfg.feature) if cfg else (None, None)
    pick = {
        "snr": (args.snr, d and d.snr, -6),
        "channel": (args.channel, d and d.channel, 0),
        "sample_rate": (args.sample_rate, d and d.sample_rate, 16000),
        "frames": (args.frames, f and f.frames, None),
        "n_fft": (args.n_fft, f and f.n_fft, FeatureConfig.n_fft),
        "hop_length": (args.hop_length, f and f.hop_length, FeatureConfig.hop_length),
    }
    out = {key: next((v for v in values if v is not None), None) for key, values in pick.items()}
    feature = {key: out.pop(key) for key in ("frames", "n_fft", "hop_length")}
    out["feature"] = feature if feature["frames"] is not None else None
    return out


def _load(args: argparse.Namespace):
    """Load the command's config; a data root that does not exist is named with the key and YAML (or --root)."""
    from common.config import load_config

    overrides = {"data": {"root": str(Path(args.root).resolve())}} if getattr(args, "root", None) else None
    cfg = load_config(args.config, overrides=overrides)
    args.writes_to = {"features": cfg.data.cache_dir, "advise": cfg.data.cache_dir, "pretrain": cfg.output.model_dir,
                      "transfer": cfg.output.result_dir}.get(args.command)
    if not cfg.data.root.is_dir():
        given = f"--root {args.root}" if getattr(args, "root", None) else f"data.root={cfg.data.root} in {cfg.source}"
        raise ConfigError(f"{given} does not exist (generate a data set with `python -m common synth --root "
                          f"{cfg.data.root}` or download MIMII with `python -m common download --root {cfg.data.root}`)")
    return cfg


def cmd_pretrain(args: argparse.Namespace) -> int:
    cfg = _load(args)  # first: fit.backend must be set before Keras is imported
    from common.experiment.pretrain import pretrain

    for p in pretrain(cfg):
        print(f"{'trained ' if p.trained else 'up to date'}  {p.path}")
    return 0


def cmd_transfer(args: argparse.Namespace) -> int:
    cfg = _load(args)  # first: fit.backend must be set before Keras is imported
    from common.experiment.grid import run_grid
    from common.results import summarize

    results = run_grid(cfg)
    print(summarize(results).to_string(index=False, float_format="{:.3f}".format))
    print(f"results in {cfg.output.result_dir}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from common.demo import run_demo

    return run_demo(REPO, root=Path(args.root) if args.root else None, dcase=args.dcase)


def cmd_report(args: argparse.Namespace) -> int:
    from common.report.writer import write_report

    path = write_report(Path(args.repo).resolve())
    print(f"wrote {path}")
    return 0


def cmd_notebooks(args: argparse.Namespace) -> int:
    from common.notebooks import write_notebooks

    for path in write_notebooks(REPO):
        print(f"wrote {path.relative_to(REPO)}")
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from common.deploy import ERROR, check_output_file, score_files
    from common.io import atomic_write_text
    from common.models.saved import Sidecar

    if args.csv:
        check_output_file(args.csv, option="--csv")  # before scoring: never score for minutes, then fail to write
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        table = score_files(args.model, args.paths, threshold=args.threshold, progress=not args.no_progress)
    for w in caught:  # e.g. files left out of a folder: one line, not a source location
        print(f"warning: {w.message}", file=sys.stderr)
    threshold = args.threshold if args.threshold is not None else Sidecar.read(args.model).threshold
    for row in table.itertuples():
        print(f"{row.path}  error: {row.error}" if row.decision == ERROR else f"{row.path}  {row.score:.6g}  {row.decision}")
    scored = table[table["decision"] != ERROR]
    origin = "given" if args.threshold is not None else "the model's"
    print(f"{int((scored['decision'] == 'anomalous').sum())} of {len(scored)} clips flagged anomalous "
          f"(score > {threshold:.6g}, {origin} threshold)")
    failed = len(table) - len(scored)
    if failed:
        print(f"{failed} file(s) could not be scored (see above)")
    if args.csv:
        atomic_write_text(args.csv, table.to_csv(index=False))
        print(f"wrote {args.csv}")
    return 1 if failed else 0


def cmd_export(args: argparse.Namespace) -> int:
    import warnings

    from common.deploy import export_model

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        path = export_model(Path(args.repo).resolve(), version=args.version, target=args.target, out=args.out,
                            source=args.source, budget=args.budget, seed=args.seed, method=args.method)
    for w in caught:  # e.g. a model at or below chance: said here and in MODEL_CARD.md
        print(f"warning: {w.message}", file=sys.stderr)
    print(f"wrote {path}, {path.with_suffix('.json').name} and MODEL_CARD.md in {path.parent}")
    return 0


def cmd_advise(args: argparse.Namespace) -> int:
    from common.config import load_config
    from common.data.mimii import is_clip
    from common.errors import DataError

    clips = Path(args.clips)
    if not clips.is_dir():
        raise DataError(f"NEW_CLIPS {clips} is not a folder (give the folder of the new machine's normal clips)")
    paths = sorted(p for p in clips.rglob("*") if p.name.lower().endswith(".wav") and p.is_file() and is_clip(p))
    if not paths:
        raise DataError(f"NEW_CLIPS {clips} holds no WAV clips")
    cfg = _load(args)  # first: fit.backend must be set before Keras is imported
    from common.experiment.advise import advice_lines, advise, best_method

    advice = advise(paths, cfg, k=args.k)
    methods_csv = Path(args.report) / "methods.csv"
    for line in advice_lines(advice, best_method(methods_csv, advice.n_clips), methods_csv=methods_csv):
        print(line)
    for problem in advice.bad.values():
        print(f"left out: {problem}", file=sys.stderr)
    return 1 if advice.bad else 0


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m common`` parser: one sub-command per job, grouped as the README lists them."""
    parser = argparse.ArgumentParser(prog="python -m common", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_data_commands, _check_data_command, _experiment_commands, _advise_command, _deploy_commands,
                _other_commands):
        add(sub)
    return parser


def _data_commands(sub) -> None:
    """synth and download: make or fetch a data root."""
    p = sub.add_parser("synth", help="write a synthetic data set in the exact MIMII layout and format")
    p.add_argument("--root", default="Sample_data", help="data root (default: Sample_data)")
    p.add_argument("--snr", type=float, default=-6, help="machine-to-background ratio in dB (default: -6)")
    p.add_argument("--normal", type=int, default=100, help="normal clips per machine")
    p.add_argument("--abnormal", type=int, default=30, help="abnormal clips per machine")
    p.add_argument("--seconds", type=float, default=10.0, help="clip length in seconds (default: 10)")
    p.add_argument("--channels", type=int, default=8, help="microphones per clip (default: 8)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--types", type=_csv_list, default=None, help="e.g. fan,pump (default: all four)")
    p.add_argument("--ids", type=_csv_list, default=None, help="e.g. id_00,id_02 (default: all four)")
    p.add_argument("--jobs", type=int, default=2, help="parallel workers")
    p.add_argument("--overwrite", action="store_true",
                   help="replace clips of the same names already under ROOT (default: refuse)")
    p.add_argument("--world", default="default",
                   help="how machines fail, what tells IDs apart, the background (default: default; see --list-worlds)")
    p.add_argument("--list-worlds", action="store_true", help="list the worlds, one per line, and exit")
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("download", help="download, verify (MD5) and extract the real MIMII zips from Zenodo")
    p.add_argument("--root", default="Sample_data", help="data root (default: Sample_data)")
    p.add_argument("--snr", type=float, default=-6, help="noise level in dB: -6, 0 or 6 (default: -6)")
    p.add_argument("--types", type=_csv_list, default=None, help="e.g. fan,pump (default: all four)")
    p.add_argument("--record", default="3384388", help="Zenodo record id (default: 3384388, MIMII)")
    p.add_argument("--base-url", default="https://zenodo.org", help="Zenodo or a mirror (default: https://zenodo.org)")
    p.add_argument("--keep-zip", action="store_true", help="keep the zips in ROOT/.downloads after extracting")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_download)

    p = sub.add_parser("download-dcase", help="download, verify (MD5) and extract a DCASE Task 2 development set")
    p.add_argument("--year", type=int, required=True, help="2020-2025")
    p.add_argument("--root", default=None, help="data root (default: dcase<YEAR>t2_dev)")
    p.add_argument("--types", type=_csv_list, default=None, help="e.g. fan,ToyCar (default: all of the year's)")
    p.add_argument("--record", default=None, help="Zenodo record id (default: the year's official one)")
    p.add_argument("--base-url", default="https://zenodo.org", help="Zenodo or a mirror (default: https://zenodo.org)")
    p.add_argument("--keep-zip", action="store_true", help="keep the zips in ROOT/.downloads after extracting")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_download_dcase)


def _check_data_command(sub) -> None:
    """check-data: scan a data root for bad clips."""
    p = sub.add_parser("check-data", help="scan a data root: clip counts, durations, rates, channels and bad files "
                                          "(exit status 1 when any file has a problem)")
    p.add_argument("root", help="data root, MIMII (e.g. Sample_data) or DCASE Task 2 2020 / 2021-2025 (e.g. "
                                "dcase2023t2_dev; detected)")
    p.add_argument("--config", default=None, help="a Version YAML: check with its data.snr, data.channel, "
                   "data.sample_rate and feature parameters (clips too short for feature.frames are problems)")
    p.add_argument("--snr", type=float, default=None, help="noise level of the MIMII folders to scan (default: -6; "
                                                      "DCASE roots have one)")
    p.add_argument("--channel", type=int, default=None, help="channel checked for silent / non-finite samples (default: 0)")
    p.add_argument("--sample-rate", type=int, default=None, help="required sample rate in Hz (default: 16000)")
    p.add_argument("--frames", type=int, default=None, help="feature.frames: clips too short for it are problems")
    p.add_argument("--n-fft", type=int, default=None, help="feature.n_fft for --frames (default: 1024)")
    p.add_argument("--hop-length", type=int, default=None, help="feature.hop_length for --frames (default: 512)")
    p.add_argument("--jobs", type=int, default=2, help="parallel readers (default: 2)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_check_data)


def _experiment_commands(sub) -> None:
    """features, pretrain and transfer: the experiments of a Version YAML."""
    p = sub.add_parser("features", help="extract (and cache) log-mel features of every machine a config selects")
    p.add_argument("config", nargs="?", default=str(REPO / "Version1" / "make_pretrain_v1.yaml"),
                   help="Version YAML (default: Version1/make_pretrain_v1.yaml)")
    p.add_argument("--root", default=None, help="data root overriding the YAML's data.root")
    p.set_defaults(func=cmd_features)

    for name, func, helptext in (
        ("pretrain", cmd_pretrain, "pretrain one model per source set of a version (make_pretrain_vN.yaml)"),
        ("transfer", cmd_transfer, "score the experiment.methods for every target (transfer_pretrain_vN.yaml)"),
    ):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("config", help="Version YAML")
        p.add_argument("--root", default=None, help="data root overriding the YAML's data.root")
        p.set_defaults(func=func)


def _advise_command(sub) -> None:
    """advise: which known machines should a new one learn from."""
    p = sub.add_parser("advise", help="rank the known machines as pretraining sources for a folder of a new "
                       "machine's normal clips; recommend a source set and the report's best method")
    p.add_argument("clips", metavar="NEW_CLIPS", help="folder of the new machine's normal WAV clips (searched recursively)")
    p.add_argument("--root", required=True, help="data root of the known machines")
    p.add_argument("--config", default=str(REPO / "Version5" / "transfer_pretrain_v5.yaml"),
                   help="Version YAML giving the features and experiment.sources_k (default: Version5's transfer YAML)")
    p.add_argument("--k", type=int, default=None, help="size of the recommended source set (default: experiment.sources_k)")
    p.add_argument("--report", default=str(REPO / "report"), help="report folder whose methods.csv names the best "
                   "method (default: report/)")
    p.set_defaults(func=cmd_advise)


def _deploy_commands(sub) -> None:
    """score and export: use a trained model on new recordings."""
    from common.methods.catalog import METHOD_NAMES  # light: no Keras
    p = sub.add_parser("score", help="score WAV files with a saved model and flag anomalies (exit status 1 when "
                                     "any file could not be scored; the others are scored)")
    p.add_argument("paths", nargs="+", metavar="FILES_OR_FOLDERS", help="WAV files and/or folders (searched for *.wav)")
    p.add_argument("--model", required=True, help="a .keras model with its .json sidecar (e.g. from `export`)")
    p.add_argument("--threshold", type=float, default=None,
                   help="flag clips scoring above this (default: the threshold in the model's sidecar)")
    p.add_argument("--csv", default=None, help="also write path, score, decision, error to this CSV file")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_score)

    p = sub.add_parser("export", help="copy a target's best model, its sidecar and a MODEL_CARD.md into a folder")
    p.add_argument("--version", required=True, help="experiment version: 1-4 (or v1-v4)")
    p.add_argument("--target", required=True, help="target machine, e.g. fan/id_00")
    p.add_argument("--out", required=True, help="folder to write the model, sidecar and MODEL_CARD.md into")
    p.add_argument("--method", default="transfer", choices=METHOD_NAMES,
                   help="which model (default: transfer)")
    p.add_argument("--source", default=None, help="pretraining source set (default: the best row's)")
    p.add_argument("--budget", default=None, help="target budget, e.g. 8 or all (default: the best row's)")
    p.add_argument("--seed", type=int, default=None, help="seed (default: the best row's)")
    p.add_argument("--repo", default=str(REPO), help="repository root holding Version1..4 (default: this one)")
    p.set_defaults(func=cmd_export)


def _other_commands(sub) -> None:
    """report, notebooks and demo."""
    from common.data.dcase import YEARS  # light: no Keras

    p = sub.add_parser("report", help="statistics and plots over every version's results -> report/")
    p.add_argument("--repo", default=str(REPO), help="repository root holding Version1..4 (default: this one)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("notebooks", help="regenerate the eleven notebooks (without outputs) from their template")
    p.set_defaults(func=cmd_notebooks)

    p = sub.add_parser("demo", help="synthetic data -> v1-v4 experiments -> summary, with small demo sizes")
    p.add_argument("--root", default=None, help="data root (default: Sample_data, or Sample_data_dcaseYEAR with "
                   "--dcase; generated if empty)")
    p.add_argument("--dcase", type=int, default=None, choices=YEARS, metavar="YEAR",
                   help="run on a synthetic DCASE Task 2 development set of YEAR's layout (2020-2025) instead, in "
                   "the workspace demo_dcaseYEAR/, with the official scores of that year")
    p.set_defaults(func=cmd_demo)


# What an interrupted command has kept and where (args -> folder, None before it is known); absent: nothing.
_KEPT: dict[str, tuple[str, Callable[[argparse.Namespace], object]]] = {
    "synth": ("finished clips are saved in {}", lambda a: a.root),
    "download": ("finished downloads are saved in {} (a partial one resumes)", lambda a: a.root),
    "download-dcase": ("finished downloads are saved in {} (a partial one resumes)", lambda a: a.root),
    "features": ("extracted features are cached in {}", lambda a: getattr(a, "writes_to", None)),
    "pretrain": ("finished models are saved in {}", lambda a: getattr(a, "writes_to", None)),
    "transfer": ("finished rows are saved in {}", lambda a: getattr(a, "writes_to", None)),
    "report": ("files written so far are in {}", lambda a: Path(a.repo) / "report"),
    "advise": ("extracted features of the known machines are cached in {}", lambda a: getattr(a, "writes_to", None)),
    "notebooks": ("notebooks written so far are in {}", lambda a: REPO),
    "demo": ("finished clips, models and rows are saved under {}", lambda a: a.root or REPO),
}
# How to resume where "run the same command again" is not enough.
_RESUME = {"synth": "run the same command with --overwrite to finish (the same arguments write the same clips)"}

# errno -> (what went wrong, what to do); {folder} is where the file was being written.
_OS_ADVICE: dict[int, tuple[str, str]] = {
    errno.ENOSPC: ("no space left on device", "free space under {folder} and run the same command again"),
    errno.EDQUOT: ("disk quota exceeded", "free space under {folder} and run the same command again"),
    errno.EACCES: ("permission denied", "make {folder} writable or use another folder"),
    errno.EPERM: ("operation not permitted", "make {folder} writable or use another folder"),
    errno.EROFS: ("read-only file system", "use a folder on a writable disk instead of {folder}"),
    errno.ENOTDIR: ("a part of the path is a file, not a folder", "fix the path or move that file away"),
    errno.EISDIR: ("a folder is in the way of a file", "fix the path or move that folder away"),
    errno.ENOENT: ("no such file or folder", "check the path"),
}


def _written_to(args: argparse.Namespace) -> object:
    """The folder the command writes into (None when it writes nothing or has not got that far)."""
    return _KEPT.get(args.command, ("", lambda a: None))[1](args)


def _interrupted(args: argparse.Namespace) -> str:
    """One line for Ctrl-C: what the command kept, and how to resume."""
    folder = _written_to(args)
    if folder is None:
        return "interrupted: nothing was written; run the same command again"
    resume = _RESUME.get(args.command, "run the same command again to resume")
    return f"interrupted: {_KEPT[args.command][0].format(folder)}; {resume}"


def _os_error(exc: OSError, args: argparse.Namespace) -> str:
    """One line for a failed read or write: what went wrong, the file (or folder), and what to do."""
    what, todo = _OS_ADVICE.get(exc.errno, (exc.strerror or str(exc), "check the path and run the command again"))
    folder = Path(exc.filename).parent if exc.filename else _written_to(args)
    written = _written_to(args)
    if written and exc.filename and Path(exc.filename).is_relative_to(written):
        folder = written  # the folder the user chose, not a subfolder of it
    if exc.filename:
        about = f" {exc.filename} -> {exc.filename2}" if exc.filename2 else f" {exc.filename}"
    else:
        about = f" under {folder}" if folder else ""
    verb = " writing" if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS) else ":"
    return f"{what}{verb if about else ''}{about}: {todo.format(folder=folder or 'the folder written')}"


def main(argv: list[str] | None = None) -> int:
    """Run one command; exit status 0 done, 1 some inputs bad, 2 cannot run (an `error:` line), 130 interrupted."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ProjectError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {_os_error(exc, args)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # a progress bar may hold the line; start a fresh one (only a terminal shows that bar)
        print(("\n" if sys.stderr.isatty() else "") + _interrupted(args), file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
