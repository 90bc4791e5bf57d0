"""The grid on Dask (issue 16): serial and local give the same files, a killed worker or driver is survived.

Every run is v1 on fan/id_00 and valve/id_00 of the tiny set, one budget, one seed (6 cells), on the
models of the session's shared run (`conftest.pipeline`), whose result folder is the serial reference.
"""

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest

import common.experiment.grid as experiment
from common.backend import loaded_backend
from common.config import load_config
from common.data.dataset import select_machines
from common.errors import ConfigError
from common.experiment.executor import Dask, Pins, executor
from common.experiment.grid import run_grid
from common.experiment.pretrain import pretrain
from common.results import RESULT_COLUMNS
from common.data.versions import source_sets
from conftest import make_config, write_config

REPO = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
CELLS = 6  # 2 targets x (scratch + zero_shot + transfer)
SAME = [c for c in RESULT_COLUMNS if c != "train_seconds"]


@pytest.fixture(scope="module")
def serial(pipeline):
    """The serial reference: the session's id_00 run (its models are every run's ``init_from``)."""
    return pipeline(ids=("id_00",), budgets=("all",))


def sections(serial, folder: Path, **experiment_keys) -> dict:
    """YAML sections of a run that must give the rows of `serial` (same hashed settings, own output folders)."""
    return {"data": {"ids": ["id_00"], "cache_dir": str(serial.cache)},
            "experiment": {"budgets": ["all"], "seeds": [0], **experiment_keys},
            "output": {"model_dir": str(serial.models), "result_dir": str(folder / "results"),
                       "scratch_dir": str(folder / "scratch")}}


def assert_same_files(serial, out: Path) -> None:
    """results.csv and scores.csv of `out` equal the serial run's, bit for bit (all but train_seconds)."""
    ref = serial.cfg.output.result_dir
    got, want = (pd.read_csv(d / "results.csv", dtype={"budget": str}) for d in (out, ref))
    pd.testing.assert_frame_equal(got[SAME], want[SAME], check_exact=True)
    got, want = (pd.read_csv(d / "scores.csv", dtype={"budget": str}) for d in (out, ref))
    pd.testing.assert_frame_equal(got, want, check_exact=True)


@pytest.fixture(scope="module")
def dask_cluster():
    """A scheduler with 2 worker processes (1 thread each) that the module's `cluster` runs connect to."""
    from distributed import LocalCluster

    saved = dict(os.environ)  # the Nanny writes its worker variables into this process too
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None, silence_logs=logging.ERROR) as c:
        yield c
    for key in set(os.environ) - set(saved):
        del os.environ[key]
    os.environ.update(saved)


def test_local_workers_give_the_serial_files(serial, tiny_root, tmp_path, monkeypatch):
    cfg = make_config(tmp_path, tiny_root, **sections(serial, tmp_path, executor="local", workers=2))
    seen, start = {}, experiment.executor

    @contextlib.contextmanager
    def watched(*args, **kwargs):
        with start(*args, **kwargs) as ex:
            seen["pins"] = ex.client.run(lambda: (sorted(os.sched_getaffinity(0)), os.environ["OMP_NUM_THREADS"],
                                                  os.environ["KERAS_BACKEND"], os.environ["TF_NUM_INTRAOP_THREADS"]))
            yield ex

    monkeypatch.setattr(experiment, "executor", watched)
    run_grid(cfg, progress=False)
    assert_same_files(serial, cfg.output.result_dir)
    assert len(list((cfg.output.result_dir / ".store").glob("*.json"))) == CELLS
    pins = list(seen["pins"].values())  # each worker on a core of its own, one thread, the driver's backend
    assert len(pins) == 2 and all(threads == "1" and backend == loaded_backend() for _, threads, backend, _ in pins)
    # ... and the driver's intra-op pool, whose size decides the bits (issue 27, C12)
    assert all(pool == str(len(os.sched_getaffinity(0))) for *_, pool in pins)
    if len(os.sched_getaffinity(0)) >= 2:
        assert all(len(cores) == 1 for cores, *_ in pins) and pins[0][0] != pins[1][0]


def test_a_killed_worker_is_replaced_and_its_cell_rerun(serial, dask_cluster, tiny_root, tmp_path, monkeypatch):
    from distributed import Client

    address = dask_cluster.scheduler_address
    cfg = make_config(tmp_path, tiny_root, **sections(serial, tmp_path, executor="cluster", address=address))
    killed, saves, save = [], [], experiment._save

    def save_then_kill(ctx, store, result):
        save(ctx, store, result)
        saves.append(result.cell)
        if not killed:  # mid-run: kill (SIGKILL) a worker that is running a cell
            with Client(address, set_as_default=False) as client:
                running = client.processing()
                busy = next((w for w, tasks in running.items() if tasks), next(iter(running)))
                pid = client.run(os.getpid, workers=[busy])[busy]
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    monkeypatch.setattr(experiment, "_save", save_then_kill)
    run_grid(cfg, progress=False)
    assert killed and len(saves) == len(set(saves)) == CELLS  # every cell stored once
    assert not psutil.pid_exists(killed[0]) or psutil.Process(killed[0]).status() == psutil.STATUS_ZOMBIE
    with Client(address, set_as_default=False) as client:  # the nanny started a new worker in its place
        client.wait_for_workers(2, timeout=60)
        pids = set(client.run(os.getpid).values())
    assert len(pids) == 2 and killed[0] not in pids
    assert_same_files(serial, cfg.output.result_dir)


def test_pretraining_jobs_on_workers_save_the_serial_models(serial, dask_cluster, tiny_root, tmp_path):
    from common.models.saved import Sidecar, load_model

    cfg = make_config(tmp_path, tiny_root, data={"ids": ["id_00"], "cache_dir": str(serial.cache)},
                      experiment={"budgets": ["all"], "seeds": [0], "executor": "cluster",
                                  "address": dask_cluster.scheduler_address})
    made = pretrain(cfg, progress=False)  # the workers train and save the models
    assert [p.path.name for p in made] == [p.path.name for p in serial.made] and all(p.trained for p in made)
    for p in made:
        want = serial.models / p.path.name
        assert Sidecar.read(p.path).key == Sidecar.read(want).key
        assert Sidecar.read(p.path).train_scores == Sidecar.read(want).train_scores
        got, ref = (load_model(path)[0].get_weights() for path in (p.path, want))
        assert all(np.array_equal(a, b) for a, b in zip(got, ref, strict=True))
    assert (cfg.output.model_dir / "config.yaml").is_file()


def _stored(out: Path) -> int:
    return len(list((out / ".store").glob("*__*.json")))


def test_a_killed_driver_takes_its_workers_and_resumes(serial, dask_cluster, tiny_root, tmp_path, monkeypatch):
    path = write_config(tmp_path, tiny_root, **sections(serial, tmp_path, executor="local", workers=2))
    out = tmp_path / "results"
    log = tmp_path / "log.txt"
    with open(log, "w") as fh:
        driver = subprocess.Popen([sys.executable, "-m", "common", "transfer", str(path)], cwd=REPO, env=ENV,
                                  stdout=fh, stderr=subprocess.STDOUT)
    workers = []
    try:
        deadline = time.monotonic() + 240
        while _stored(out) < 2 and driver.poll() is None and time.monotonic() < deadline:
            workers = psutil.Process(driver.pid).children(recursive=True) or workers
            time.sleep(0.05)
        assert driver.poll() is None and _stored(out) >= 2, log.read_text()[-3000:]
        driver.send_signal(signal.SIGKILL)
        driver.wait()
        gone, alive = psutil.wait_procs(workers, timeout=30)
        assert workers and not alive, f"worker processes {alive} outlived their driver"
    finally:
        for p in [driver, *workers]:
            with contextlib.suppress(ProcessLookupError, psutil.NoSuchProcess):
                p.kill()
    stored = _stored(out)
    assert 2 <= stored < CELLS
    saves, save = [], experiment._save
    monkeypatch.setattr(experiment, "_save", lambda *a: saves.append(1) or save(*a))
    # The same YAML resumes on the module's Dask cluster: only the cells the store lacks run.
    again = load_config(path, overrides={"experiment": {"executor": "cluster",
                                                        "address": dask_cluster.scheduler_address}})
    run_grid(again, progress=False)
    assert len(saves) == CELLS - stored
    assert_same_files(serial, out)


def test_a_cell_does_not_depend_on_the_cells_before_it_in_its_process(serial, tiny_root, tmp_path):
    """Cells run in reverse order in one fresh process give the serial rows (no order-dependent caches)."""
    cfg = make_config(tmp_path, tiny_root, **sections(serial, tmp_path))
    machines = select_machines(cfg)
    targets = [(t, s) for t in machines if (s := source_sets(cfg.experiment.version, t, machines))]
    ctx = experiment._context(cfg, fresh=True)
    try:
        cells = experiment._plan(cfg, ctx, targets).cells
        rows = [experiment.run_cell(cfg, cell) for cell in reversed(cells)]
    finally:
        experiment._CONTEXT.clear()
    want = serial.results.set_index(["target_type", "method"])
    keys = [k for k in SAME if k not in ("target_type", "method")]
    blank = lambda v: None if isinstance(v, float) and v != v else v  # noqa: E731 - NaN (MIMII: no DCASE score)
    for result in rows:
        expected = want.loc[(result.cell.target.type, result.cell.method)]
        assert {k: blank(result.row[k]) for k in keys} == {k: blank(expected[k]) for k in keys}


PINNED = """
import json, os, random, sys, threading
from common.experiment.executor import Pins, pin_worker
pin_worker(Pins(1, None))
random.seed(7)
first = random.random()
random.seed(7)
other = threading.Thread(target=lambda: [random.random() for _ in range(100)])  # another thread draws meanwhile
other.start()
other.join()
print(json.dumps({"cores": sorted(os.sched_getaffinity(0)), "same_draw": random.random() == first,
                  "env": {k: os.environ.get(k) for k in ("TF_NUM_INTRAOP_THREADS", "OMP_NUM_THREADS")}}), flush=True)
sys.stdin.read()  # hold the core slot until the test is done
"""


def test_worker_pins_take_own_cores_threads_and_random(tmp_path):
    env = {**ENV, "TMPDIR": str(tmp_path)}  # a slot folder of its own
    procs = [subprocess.Popen([sys.executable, "-c", PINNED], cwd=REPO, env=env, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        seen = [json.loads(p.stdout.readline()) for p in procs]
    finally:
        for p in procs:
            p.communicate("")
    cpus = len(os.sched_getaffinity(0))
    for s in seen:
        assert s["same_draw"] and s["env"] == {"TF_NUM_INTRAOP_THREADS": "1", "OMP_NUM_THREADS": "1"}
        assert len(s["cores"]) == 1
    if cpus >= 2:
        assert not set(seen[0]["cores"]) & set(seen[1]["cores"])  # two workers, two cores


@pytest.mark.parametrize("key, value, message", [
    ("executor", "threads", "'experiment.executor' must be one of: serial, local, cluster"),
    ("workers", 0, "'experiment.workers' must be an integer >= 1"),
    ("threads_per_worker", 0, "'experiment.threads_per_worker' must be an integer >= 1"),
    ("address", "host:8786", "'experiment.address' must be null or a scheduler address such as tcp://host:8786"),
    ("executor", "cluster", "'experiment.address' must be the Dask scheduler's address .* got null"),
])
def test_bad_executor_settings_name_the_key_and_file(tiny_root, tmp_path, key, value, message):
    with pytest.raises(ConfigError, match=rf"{tmp_path / 'cfg.yaml'}: {message}"):
        make_config(tmp_path, tiny_root, experiment={key: value})


def test_a_cluster_address_where_no_scheduler_answers_is_a_config_error(tiny_root, tmp_path, monkeypatch):
    import common.experiment.executor

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr(common.experiment.executor, "CONNECT_SECONDS", 1)
    cfg = make_config(tmp_path, tiny_root, experiment={"executor": "cluster", "address": f"tcp://127.0.0.1:{port}"})
    with pytest.raises(ConfigError, match=rf"'experiment.address' is tcp://127.0.0.1:{port}, where no Dask "
                                          r"scheduler answers .*start one with `dask scheduler`"):
        with executor(cfg):
            pass


def test_serial_runs_in_order_and_a_task_error_reaches_the_driver(dask_cluster, tiny_root, tmp_path):
    from distributed import Client

    cfg = make_config(tmp_path, tiny_root)
    with executor(cfg) as ex:
        assert list(ex.run(str, [3, 1, 2])) == [(3, "3"), (1, "1"), (2, "2")]
    with Client(dask_cluster, set_as_default=False) as client:
        ex = Dask(client, Pins(1, None))
        assert sorted(ex.run(abs, [-2, 1])) == [(-2, 2), (1, 1)]
        with pytest.raises(ValueError, match="invalid literal for int"):
            list(ex.run(int, ["x"]))
        with pytest.raises(ConfigError, match=r"runs other code of the `common` package .* than the driver"):
            list(Dask(client, Pins(1, None, code="another checkout")).run(abs, [1]))
