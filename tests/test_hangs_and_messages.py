"""Round 3 of the hostile review (issue 27): hangs end in time, tracebacks become one line, messages say what to do.

Each test names its case of ../shared/reliability-r3.md. Hangs run under `deadline`, so a regression fails the
test instead of stalling the suite. Dask runs on real clusters and real sockets; the CLI runs in-process
(`conftest.run_main`) on the session's tiny data set, its v1 models and its feature cache (`conftest.pipeline`).
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
import soundfile as sf

import common.experiment.executor
from common.config import load_config
from common.errors import ConfigError, LockError
from common.experiment.executor import executor
from common.data.synth import generate_dcase_dataset
from conftest import make_config, run_main, write_config

REPO = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
DONE, SOME_BAD, CANNOT_RUN = 0, 1, 2


class Hang(BaseException):
    """Raised by `deadline` (a BaseException: the CLI's error handling never turns it into an exit status)."""


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Raise `Hang` in this (the main) thread after `seconds`: a blocked open or wait fails the test, in time."""
    def expire(signum, frame):
        raise Hang(f"still waiting after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture(scope="module")
def shared(pipeline):
    """The session's v1 run of the tiny set: its data root, models and feature cache (read-only)."""
    return pipeline()


def transfer_yaml(folder: Path, run, **sections) -> Path:
    """A tiny v1 transfer YAML in `folder` on the shared run's models and cache; `sections` update it."""
    doc = {"experiment": {"budgets": ["all"]}, "data": {"cache_dir": str(run.cache)},
           "transfer": {"init_from": str(run.models)}}
    for section, values in sections.items():
        doc[section] = {**doc.get(section, {}), **values}
    return write_config(folder, run.cfg.data.root, **doc)


def one_error_line(text: str, *named: str) -> None:
    """The CLI said one ``error:`` line naming each of `named`, and printed no traceback."""
    assert "Traceback" not in text, text[-3000:]
    errors = re.findall(r"(?:^|(?<=[\s\]]))error: [^\r\n]*", text, re.M)  # also right after a progress bar
    assert len(errors) == 1, text[-3000:]
    assert all(n in errors[0] for n in named), f"{named} not all in: {errors[0]}"


# --------------------------------------------------------------------------------------------
# Hangs and tracebacks at the cluster address (B19, B20), worker logs (B30), a worker outliving its driver (C11)


@contextlib.contextmanager
def http_server() -> Iterator[str]:
    """A real HTTP server on a free local port (what B19 pointed experiment.address at): its tcp:// address."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"tcp://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def banner_server(banner: bytes = b"SSH-2.0-OpenSSH_9.6\r\n") -> Iterator[str]:
    """A server that greets every connection with `banner` (an SSH daemon, B20): its tcp:// address."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                conn, _ = listener.accept()
                with contextlib.suppress(OSError):
                    conn.sendall(banner)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"tcp://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        listener.close()


@pytest.mark.parametrize("server, says", [("http", "within 2 s"), ("banner", "no Dask handshake")])
def test_b19_b20_a_cluster_address_that_is_no_dask_scheduler_fails_in_time_naming_it(server, says, shared, tmp_path,
                                                                                     monkeypatch):
    """B19: an HTTP server there hung the run; B20: a banner service gave a 2.82 EiB allocation traceback."""
    monkeypatch.setattr(common.experiment.executor, "CONNECT_SECONDS", 2)
    with {"http": http_server, "banner": banner_server}[server]() as address:
        cfg = transfer_yaml(tmp_path, shared, experiment={"executor": "cluster", "address": address})
        with deadline(60):
            code, text = run_main(["transfer", str(cfg)])
    assert code == CANNOT_RUN, text[-3000:]
    one_error_line(text, str(cfg), "'experiment.address'", address, says)
    assert not (tmp_path / "results" / "results.csv").exists()


def test_b30_a_task_error_under_executor_local_prints_no_worker_traceback(tiny_root, tmp_path, capfd):
    cfg = make_config(tmp_path, tiny_root, experiment={"executor": "local", "workers": 1})
    missing = tmp_path / "missing.yaml"
    with pytest.raises(ConfigError, match=f"config file not found: {missing}"):
        with executor(cfg) as ex:
            list(ex.run(load_config, [missing]))  # the task raises a ProjectError in the worker
    out, err = capfd.readouterr()
    assert "Compute Failed" not in out + err and "Traceback" not in out + err, (out + err)[-3000:]


def test_c11_a_worker_task_writes_no_model_into_a_folder_no_run_holds(tiny_root, tmp_path):
    from common.experiment.pretrain import pretrain_job
    from common.methods.catalog import AUTOENCODER
    from common.methods.base import PretrainJob
    from common.data.versions import all_source_sets
    from common.data.dataset import select_machines

    # What is left of a killed driver: its jobs on a worker, and a model folder whose lock nobody holds.
    cfg = make_config(tmp_path, tiny_root, experiment={"executor": "local", "workers": 1})
    source = all_source_sets(cfg.experiment.version, select_machines(cfg))[0]
    job = PretrainJob(source, AUTOENCODER, cfg.experiment.pretrain_seed)
    with pytest.raises(LockError, match=rf"{re.escape(str(cfg.output.model_dir))} is no longer locked "
                                        rf".*{source.label}\.keras is not written"):
        with executor(cfg) as ex:
            list(ex.run(functools.partial(pretrain_job, cfg), [job]))
    assert not list(cfg.output.model_dir.glob("*.keras")) and not list(cfg.output.model_dir.glob("*.json"))


# --------------------------------------------------------------------------------------------
# score: a FIFO (A14), a path that does not exist (A11), sidecars that are not what they say (F7-F11)


def _clips(run, folder: Path) -> Path:
    """A copy of three real clips of the tiny set in `folder`."""
    folder.mkdir(parents=True)
    for clip in sorted((run.cfg.data.root / "-6_dB_valve" / "valve" / "id_00" / "abnormal").glob("*.wav"))[:3]:
        shutil.copy(clip, folder / clip.name)
    return folder


def test_a14_a_fifo_given_or_in_a_folder_is_named_never_waited_on(shared, tmp_path):
    folder = _clips(shared, tmp_path / "clips")
    given, inside = tmp_path / "p.wav", folder / "q.wav"
    os.mkfifo(given)
    os.mkfifo(inside)
    with deadline(60):
        code, text = run_main(["score", "--model", str(shared.models / "fan.keras"), str(given), str(folder),
                               "--no-progress"])
    assert code == SOME_BAD and "Traceback" not in text, text[-3000:]
    for fifo in (given, inside):
        assert re.search(rf"{re.escape(str(fifo))}  error: .*not a regular file but a FIFO", text), text[-3000:]
    assert "of 3 clips flagged" in text, text[-3000:]


def test_a11_a_path_that_does_not_exist_is_exit_2_naming_it(shared, tmp_path):
    missing = tmp_path / "nonexistent_dir"
    code, text = run_main(["score", "--model", str(shared.models / "fan.keras"), str(missing), "--no-progress"])
    assert code == CANNOT_RUN, text[-3000:]
    one_error_line(text, f"no such file or folder: {missing}")
    assert "WAV file" not in text


def _features(run) -> dict:
    return json.loads((run.models / "fan.json").read_text())["features"]


def _bank_model(run, path: Path, kind: str) -> Path:
    """A row model as logmel_knn (``knn``) or lw_scratch (``gaussian``) saves it: identity network, head arrays."""
    from common.scoring.mahalanobis import fit_gaussian, to_arrays
    from common.models.saved import save_model
    from common.models.kinds import with_weights
    from common.methods.base import identity_architecture

    features, rng = _features(run), np.random.default_rng(440)
    arch = identity_architecture(features["n_mels"] * features["frames"])
    rows = rng.normal(size=(12, 2 * features["n_mels"])).astype(np.float32)
    head = {"bank": rows} if kind == "knn" else to_arrays([fit_gaussian(rows)])
    sidecar = {"features": features, "n_channels": 2, "architecture": arch, "threshold": 0.5,
               "scorer": {"kind": kind, "input": "logmel_stats"} | ({"k": 1} if kind == "knn" else {})}
    return save_model(with_weights(arch, []), path, sidecar=sidecar, head=head)


def _edit(model: Path, edit) -> Path:
    side = model.with_suffix(".json")
    meta = json.loads(side.read_text())
    edit(meta)
    side.write_text(json.dumps(meta))
    return side


@pytest.mark.parametrize("kind", ["knn", "gaussian"], ids=["f7_knn", "f8_lw_scratch"])
def test_f7_f8_a_sidecar_without_head_sha256_is_one_line_naming_it(shared, tmp_path, kind):
    model = _bank_model(shared, tmp_path / "m" / "row.keras", kind)
    clips = _clips(shared, tmp_path / "clips")
    code, text = run_main(["score", "--model", str(model), str(clips), "--no-progress"])
    assert code == DONE, text[-3000:]  # as saved, the model scores
    side = _edit(model, lambda meta: meta.pop("head_sha256"))
    code, text = run_main(["score", "--model", str(model), str(clips), "--no-progress"])
    assert code == CANNOT_RUN, text[-3000:]
    one_error_line(text, str(side), "head_sha256")


@pytest.mark.parametrize("edit, named", [
    (lambda meta: meta["scorer"].update(kind="bogus"), "unknown scorer kind 'bogus'"),  # F9
    (lambda meta: meta.update(threshold=float("nan")), "threshold=nan must be a finite number"),  # F11
], ids=["f9_scorer_kind", "f11_threshold_nan"])
def test_f9_f11_a_bad_sidecar_value_names_the_sidecar(shared, tmp_path, edit, named):
    model = _bank_model(shared, tmp_path / "m" / "row.keras", "knn")
    side = _edit(model, edit)
    code, text = run_main(["score", "--model", str(model), str(_clips(shared, tmp_path / "clips")), "--no-progress"])
    assert code == CANNOT_RUN, text[-3000:]
    one_error_line(text, str(side), named)


def test_f10_a_classifier_sidecar_calling_it_an_autoencoder_is_one_line(shared, tmp_path):
    from common.models.classifier import build_classifier, classifier_architecture
    from common.models.saved import save_model

    features = _features(shared)
    dim = features["n_mels"] * features["frames"]
    arch = classifier_architecture(dim, 2, hidden=[8], embedding_dim=4, head="adacos", scale=None, margin=0.0)
    model = save_model(build_classifier(arch), tmp_path / "m" / "knn.keras",
                       sidecar={"features": features, "n_channels": 2, "architecture": arch, "threshold": 0.5,
                                "scorer": {"kind": "knn", "input": "embedding", "k": 1}},
                       head={"bank": np.random.default_rng(440).normal(size=(6, 4)).astype(np.float32)})
    side = _edit(model, lambda meta: meta.update(architecture={"input_dim": dim, "hidden": [8], "bottleneck": 4,
                                                                "batch_norm": False}))
    # A fresh process, as the CLI runs: this one has loaded the classifier's layers already.
    done = subprocess.run([sys.executable, "-m", "common", "score", "--model", str(model),
                           str(_clips(shared, tmp_path / "clips")), "--no-progress"],
                          cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == CANNOT_RUN, done.stderr[-3000:]
    one_error_line(done.stderr, str(model), str(side))
    assert "Could not locate class" not in done.stderr and not done.stdout, done.stderr[-3000:]


# --------------------------------------------------------------------------------------------
# Config values checked up front, naming the key and the YAML (B24, B36, B38, B29, B13)


@pytest.mark.parametrize("sections, message", [
    ({"experiment": {"seeds": [99999999999]}}, r"'experiment\.seeds' must be .*<= 4294967295"),  # B24
    ({"experiment": {"pretrain_seed": 2**32}}, r"'experiment\.pretrain_seed' must be .*<= 4294967295"),
    ({"feature": {"n_mels": 100000}}, r"'feature\.n_mels' must be at most n_fft // 2 \+ 1 = 257"),  # B38
], ids=["b24_seed", "b24_pretrain_seed", "b38_n_mels"])
def test_b24_b38_impossible_values_are_refused_when_the_config_loads(tiny_root, tmp_path, sections, message):
    with pytest.raises(ConfigError, match=rf"{re.escape(str(tmp_path / 'cfg.yaml'))}: {message}"):
        make_config(tmp_path, tiny_root, **sections)


def test_b36_init_from_that_is_a_file_is_named_as_such(shared, tmp_path):
    file = tmp_path / "models.keras"
    file.write_text("x")
    cfg = transfer_yaml(tmp_path, shared, transfer={"init_from": str(file)})
    code, text = run_main(["transfer", str(cfg)])
    assert code == CANNOT_RUN, text[-3000:]
    one_error_line(text, str(cfg), f"'transfer.init_from' must be a folder, but {file} is a file")


def test_b29_an_unknown_frozen_layer_is_refused_before_any_row_naming_the_yaml(shared, tmp_path):
    cfg = transfer_yaml(tmp_path, shared, transfer={"freeze": ["enc_9"]})
    code, text = run_main(["transfer", str(cfg)])
    assert code == CANNOT_RUN, text[-3000:]
    one_error_line(text, str(cfg), "'transfer.freeze' names ['enc_9']", "enc_1")
    assert not list((tmp_path / "results").glob(".store/*.json")) and not (tmp_path / "scratch").exists()


def test_b13_transfer_refuses_one_machine_classifiers_as_pretrain_does(shared, tmp_path):
    methods = {"experiment": {"version": "v2", "methods": ["scratch", "embed_knn"]}}
    pre = transfer_yaml(tmp_path / "pre", shared, output={"model_dir": str(tmp_path / "models")}, **methods)
    cfg = transfer_yaml(tmp_path, shared, transfer={"init_from": str(tmp_path / "models")}, **methods)
    code, said = run_main(["pretrain", str(pre)])
    assert code == CANNOT_RUN and "hold one machine each" in said, said[-3000:]
    code, text = run_main(["transfer", str(cfg)])
    assert code == CANNOT_RUN, text[-3000:]
    one_error_line(text, str(cfg), "hold one machine each", "embed_knn")
    assert "run pretrain" not in text and "not found" not in text


# --------------------------------------------------------------------------------------------
# Data roots: advice that finds the problem (A5), layouts (G4, G5), DCASE test clips (G8, G9)


def test_a5_the_too_short_clip_advice_is_a_command_that_finds_it(shared, tmp_path):
    root = tmp_path / "data"
    machine = root / "-6_dB_fan" / "fan" / "id_00"
    shutil.copytree(shared.cfg.data.root / "-6_dB_fan" / "fan" / "id_00", machine)
    short = machine / "normal" / "00000003.wav"
    samples, sr = sf.read(short, dtype="int16", always_2d=True)
    sf.write(short, samples[:800], sr, subtype="PCM_16")  # 50 ms: 4 STFT frames, fewer than feature.frames=5
    cfg = write_config(tmp_path, root, data={"cache_dir": str(tmp_path / "cache"), "types": ["fan"], "ids": ["id_00"]},
                       feature={"frames": 5})
    code, text = run_main(["features", str(cfg)])
    assert code == CANNOT_RUN and "too short" in text, text[-3000:]
    advice = re.search(r"`python -m common (check-data [^`]+)`", text)
    assert advice, text[-3000:]
    code, checked = run_main([*advice.group(1).split(), "--no-progress"])
    assert code == SOME_BAD and str(short) in checked and "too short" in checked, checked[-3000:]


def _dcase(root: Path, year: int, types: tuple[str, ...] = ("fan",)) -> Path:
    """A tiny synthetic DCASE development root of `year` (one section per type, 1 s clips)."""
    generate_dcase_dataset(root, year=year, types=types, n_source=2, n_target=None if year == 2020 else 1,
                           n_test=1, seconds=1.0, progress=False)
    return root


def _mixed_2023_root(tmp_path: Path) -> Path:
    """G4: a 2023 root holding a type folder of the 2020 layout."""
    root = _dcase(tmp_path / "d23", 2023)
    shutil.copytree(_dcase(tmp_path / "d20", 2020) / "fan", root / "ToyCar")
    return root


def _one_2023_clip_in_2020_root(tmp_path: Path) -> Path:
    """G5: a 2020 root with one clip named as 2023 names them."""
    root = _dcase(tmp_path / "d20", 2020)
    src = next((_dcase(tmp_path / "d23", 2023) / "fan" / "train").glob("*.wav"))
    shutil.copy(src, root / "fan" / "train" / src.name)
    return root


@pytest.mark.parametrize("make", [_mixed_2023_root, _one_2023_clip_in_2020_root], ids=["g4", "g5"])
def test_g4_g5_mixed_layouts_are_named_not_reported_as_no_machines_at_an_snr(tmp_path, make):
    root = make(tmp_path)
    code, text = run_main(["check-data", str(root), "--no-progress"])
    assert code == CANNOT_RUN, text[-3000:]
    one_error_line(text, f"mixed data layouts under {root}")
    assert "snr" not in text
    code, text = run_main(["pretrain", str(write_config(tmp_path / "cfg", root))])
    assert code == CANNOT_RUN, text[-3000:]
    one_error_line(text, f"mixed data layouts under {root}")


def test_g8_a_section_without_target_test_clips_is_found_by_check_data_and_named_by_transfer(tmp_path):
    root = _dcase(tmp_path / "d23", 2023, types=("fan", "valve"))  # v1: each type is the other's source
    for clip in (root / "fan" / "test").glob("section_00_target_test_*"):
        clip.unlink()
    code, text = run_main(["check-data", str(root), "--no-progress"])
    assert code == SOME_BAD, text[-3000:]
    assert re.search(rf"fan/section_00 has no target-domain test clips under {re.escape(str(root / 'fan'))}", text)
    cfg = write_config(tmp_path, root)
    code, text = run_main(["transfer", str(cfg)])
    assert code == CANNOT_RUN, text[-3000:]
    one_error_line(text, "fan/section_00 has no target-domain test clips", str(root / "fan"))
    assert not (tmp_path / "results" / "results.csv").exists()


def test_g9_an_unlabelled_test_clip_gets_advice_the_cli_can_follow(tmp_path):
    root = _dcase(tmp_path / "d23", 2023)
    clip = next((root / "fan" / "test").glob("section_00_source_test_normal_*"))
    clip.rename(clip.with_name("section_00_source_test_0009.wav"))
    code, text = run_main(["check-data", str(root), "--no-progress"])
    assert code == SOME_BAD and "without a label" in text, text[-3000:]
    assert "require_labels" not in text and "python -m common score" in text, text[-3000:]


# --------------------------------------------------------------------------------------------
# report (D4, E5) and file modes (E11)


def _hold(folder: Path) -> subprocess.Popen:
    """Another process holding `folder`'s lock as a running transfer does (ended by the caller)."""
    hold = ("import sys, time; from common.lock import folder_lock\n"
            "with folder_lock(sys.argv[1], what='transfer Version1/transfer_pretrain_v1.yaml'):\n"
            "    print('held', flush=True); time.sleep(120)")
    proc = subprocess.Popen([sys.executable, "-c", hold, str(folder)], cwd=REPO, env=ENV, stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def _listing(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


def test_d4_report_refuses_a_result_folder_a_transfer_is_writing(tmp_path, rng):
    from common.report.writer import write_report
    from test_report import fake_repo

    repo = fake_repo(tmp_path / "repo", rng)
    results = repo / "Version1" / "result_transfer_pretrain_v1"
    holder = _hold(results)
    try:
        with pytest.raises(LockError, match=rf"{re.escape(str(results))} is being written by process {holder.pid} "
                                            r"\(transfer Version1/transfer_pretrain_v1\.yaml"):
            write_report(repo, n_boot=100)
    finally:
        holder.kill()
        holder.wait()
    assert not (repo / "report").exists()
    assert write_report(repo, n_boot=100).is_file()  # the transfer has ended


def test_e5_report_writes_its_figures_under_report_never_into_result_folders(tmp_path, rng):
    from common.report.writer import write_report
    from test_report import fake_repo

    repo = fake_repo(tmp_path / "repo", rng)
    before = {v: _listing(repo / v) for v in ("Version1", "Version2")}
    path = write_report(repo, n_boot=100)
    assert {v: _listing(repo / v) for v in before} == before  # a read-only (archived) result folder is fine
    assert {p.name for p in path.parent.glob("*_machine_bars_*.png")} >= {"v1_machine_bars_4.png",
                                                                          "v2_machine_bars_all.png"}


def _umask() -> int:
    """This process's umask, from /proc (without setting it)."""
    status = Path("/proc/self/status").read_text()
    return int(re.search(r"^Umask:\s*(\d+)", status, re.M).group(1), 8)


def test_e11_results_models_and_cache_files_follow_the_umask(shared):
    want = 0o666 & ~_umask()
    folders = [shared.cfg.output.result_dir, shared.models, shared.cache, shared.scratch]
    files = [p for folder in folders for p in folder.rglob("*") if p.is_file() and p.name != ".lock"]
    assert len(files) > 20
    wrong = {str(p): oct(stat.S_IMODE(p.stat().st_mode)) for p in files if stat.S_IMODE(p.stat().st_mode) != want}
    assert not wrong, f"not {oct(want)}: {wrong}"
