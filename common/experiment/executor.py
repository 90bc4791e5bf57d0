"""Where pretraining jobs and grid cells run: in this process, or as tasks on Dask (``experiment.executor``).

The one module that knows about Dask (`dask.distributed`). ``serial`` is the plain loop in this
process. ``local`` starts a `distributed.LocalCluster` of ``experiment.workers`` processes on this
machine; ``cluster`` connects to the scheduler at ``experiment.address``. A task returns a value
and writes nothing the driver writes: the driver (the caller of `Serial.run` or `Dask.run`) stores
each result as it arrives, so the files do not depend on where or in which order tasks ran. A worker that dies
is restarted and the scheduler reruns its tasks; a driver that dies takes its local workers with it.

Each worker runs one task at a time, and before Keras is first imported in it (`pin_worker`, run by
a worker plugin as the worker joins, before it receives a task) it checks that it runs the driver's
code, takes the driver's Keras backend and pins its compute to ``experiment.threads_per_worker`` cores:
the thread variables of BLAS, and the CPU affinity of the process, which is what limits JAX
(``XLA_FLAGS=--xla_cpu_multi_thread_eigen=false`` no longer does with jaxlib 0.10: measured,
docs/performance.md). Workers of one machine take disjoint cores through slot files in the
temporary folder.

The bits of a result depend on how many threads the backend splits a large product over (XLA's and
TensorFlow's intra-op pool: a sum in another order). So every worker starts its backend with the
driver's pool (`compute_threads`: the CPUs the driver may run on), then restricts itself to its
cores: the pool's threads share those cores, and a task gives the serial run's bits. A worker that
cannot start that pool (a machine with fewer CPUs) refuses, naming both counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import hashlib
import logging
import os
import random
import tempfile
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from common.backend import loaded_backend, use_backend
from common.config import Config
from common.errors import ConfigError, ProjectError

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TF_NUM_INTRAOP_THREADS",
                    "TF_NUM_INTEROP_THREADS")
SLOT_DIR = "mimii-worker-slots"  # under the temporary folder: one lock file per worker slot of this machine
CONNECT_SECONDS = 30  # how long `cluster` waits for the scheduler (its handshake included) and for a first worker


@dataclass(frozen=True)
class Pins:
    """What every worker process is pinned to: its cores (`threads`), the intra-op pool its backend computes
    with (`pool`: the driver's; None: not pinned), the Keras backend (None: Keras' own choice) and the digest of
    the driver's `common` sources (None: not checked)."""

    threads: int
    backend: str | None
    code: str | None = None
    pool: int | None = None

    def environ(self) -> dict[str, str]:
        """The variables that size BLAS's and TensorFlow's thread pools (intra-op: `pool`), and the Keras backend."""
        return {**{k: str(self.threads) for k in THREAD_VARIABLES},
                **({"TF_NUM_INTRAOP_THREADS": str(self.pool)} if self.pool else {}),
                **({"KERAS_BACKEND": self.backend} if self.backend else {})}


def compute_threads() -> int:
    """The intra-op pool this process's backend computes with: ``TF_NUM_INTRAOP_THREADS`` when set, else the CPUs
    it may run on (what XLA and TensorFlow size their pools by when they start)."""
    if os.environ.get("TF_NUM_INTRAOP_THREADS", "").isdigit():
        return int(os.environ["TF_NUM_INTRAOP_THREADS"])
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


_PINNED: list[Pins] = []  # the pins this process took (a worker's, when it joined the run)
_SLOT: list[int] = []  # the open slot file whose lock this process holds for its life
_ONE_AT_A_TIME = threading.Lock()  # a worker started with several threads still runs one task at a time


def pin_worker(pins: Pins) -> None:
    """Pin this worker process to `pins` as it joins, and check them before each task (threads: before Keras loads).

    Raises
    ------
    ConfigError
        The worker's `common` sources differ from the driver's (another checkout, or edited since the
        worker started), or Keras already runs on another backend in it: start the workers again. Or
        its machine has fewer CPUs than the driver's intra-op pool (`_start_pool`).
    """
    if pins.code is not None and pins.code != code_digest():
        raise ConfigError(f"the worker process {os.getpid()} runs other code of the `common` package "
                          f"({Path(__file__).parent}) than the driver: give every node the same checkout, "
                          "and start the workers again after changing it")
    if not _PINNED:
        if loaded_backend() is None:
            os.environ.update(pins.environ())
            if pins.pool is not None:
                _start_pool(pins.pool)
            _limit_cores(pins.threads)
        _random_per_thread()
        _PINNED.append(pins)
    if pins.backend is not None:
        use_backend(pins.backend, key="fit.backend")


def _start_pool(pool: int) -> None:
    """Start Keras' backend while this process may run on `pool` CPUs, so that its intra-op pool has `pool` threads.

    Raises
    ------
    ConfigError
        This machine has fewer CPUs than `pool` (the driver's): the worker's results would differ.
    """
    if not hasattr(os, "sched_getaffinity"):
        return
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < pool:
        raise ConfigError(f"the worker process {os.getpid()} may run on {len(cpus)} CPU(s), fewer than the {pool} "
                          "threads the driver computes with: its results would differ from a serial run's in the last "
                          f"digits. Run the workers on machines with at least {pool} CPUs, or start the driver on "
                          f"{len(cpus)} (e.g. taskset -c 0-{len(cpus) - 1})")
    os.sched_setaffinity(0, set(cpus[:pool]))
    import keras  # noqa: F401 - the backend starts here: XLA sizes its pool by this affinity

    if keras.backend.backend() == "jax":
        import jax

        jax.devices()  # the CPU client, and its pool, start on first use


@functools.lru_cache(maxsize=1)
def code_digest() -> str:
    """A digest of this process's `common` package: its sources and defaults (read once per process)."""
    package = Path(__file__).parent
    h = hashlib.sha256()
    for path in sorted(p for p in package.rglob("*") if p.suffix in (".py", ".yaml") and "__pycache__" not in p.parts):
        h.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def _random_per_thread() -> None:
    """Give each thread of this worker its own `random` generator (the module's functions dispatch by thread).

    A seeded fit draws from Python's global generator (Keras' default initializer seeds), and a
    worker's other threads draw from it at any time (tornado's jittered timers): shared, a
    task's weights would depend on when they did. Per thread, ``random.seed`` in a task
    fixes what that task draws, as in a serial run.
    """
    local = threading.local()

    def generator() -> random.Random:
        if not hasattr(local, "rng"):
            local.rng = random.Random()
        return local.rng

    def dispatch(name: str) -> Callable[..., Any]:
        return lambda *args, **kwargs: getattr(generator(), name)(*args, **kwargs)

    for name in dir(random):
        if getattr(getattr(random, name), "__self__", None) is random._inst:
            setattr(random, name, dispatch(name))


def _limit_cores(threads: int) -> None:
    """Restrict every thread of this process to `threads` cores of its own (a free slot of this machine)."""
    if not hasattr(os, "sched_setaffinity"):
        return
    cpus = sorted(os.sched_getaffinity(0))
    if threads >= len(cpus):
        return
    slot = _claim_slot(len(cpus))
    cores = {cpus[(slot * threads + k) % len(cpus)] for k in range(threads)}
    for tid in os.listdir("/proc/self/task") if os.path.isdir("/proc/self/task") else [0]:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.sched_setaffinity(int(tid), cores)


def _claim_slot(n_cpus: int) -> int:
    """The lowest worker slot of this machine no live process holds (its lock is held until this process ends)."""
    folder = Path(tempfile.gettempdir()) / SLOT_DIR
    folder.mkdir(exist_ok=True)
    for slot in range(64 * n_cpus):
        fd = os.open(folder / f"{slot}.lock", os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        _SLOT.append(fd)
        return slot
    return 0


def _task(fn: Callable[[Any], Any], item: Any, pins: Pins) -> Any:
    """What a worker runs: ``fn(item)``, one task at a time, in a process pinned to `pins` (checked again)."""
    with _ONE_AT_A_TIME:
        pin_worker(pins)
        return fn(item)


PLUGIN = "mimii-pin-worker"  # the name of the worker plugin a run registers


def _driver_reports_task_errors(record: logging.LogRecord) -> bool:
    """A worker's log filter: drop Dask's "Compute Failed" block (with the task's traceback) for a task's error.

    The driver raises every task's error where it collects the result (`Dask.run`): a `ProjectError`
    becomes the command's one ``error:`` line, so the worker's copy only repeats it with a traceback.
    """
    return not str(record.msg).startswith("Compute Failed")


def _plugin(pins: Pins):
    """A Dask worker plugin that pins each worker (`pin_worker`) when it joins, before it receives any task.

    Receiving a task unpickles its arguments, which imports Keras with the project's modules: too
    late to size thread pools. The class is made here so that importing this module needs no Dask.
    """
    from distributed import WorkerPlugin

    class PinWorker(WorkerPlugin):
        name = PLUGIN

        def __init__(self, pins: Pins) -> None:
            self.pins = pins

        def setup(self, worker) -> None:
            pin_worker(self.pins)
            logging.getLogger("distributed.worker").addFilter(_driver_reports_task_errors)

    return PinWorker(pins)


class Serial:
    """Run tasks one after another in this process, in order (``experiment.executor: serial``)."""

    remote = False

    def run(self, fn: Callable[[Any], Any], items: Sequence[Any], *,
            name: Callable[[Any], str] = str) -> Iterator[tuple[Any, Any]]:
        """Yield ``(item, fn(item))`` for each item, in order."""
        for item in items:
            yield item, fn(item)


class Dask:
    """Run tasks on the workers of a Dask client; results come back as they finish."""

    remote = True

    def __init__(self, client, pins: Pins) -> None:
        self.client, self.pins = client, pins

    def run(self, fn: Callable[[Any], Any], items: Sequence[Any], *,
            name: Callable[[Any], str] = str) -> Iterator[tuple[Any, Any]]:
        """Submit every item at once (in order: earlier first), yield ``(item, fn(item))`` as each finishes.

        `fn` and the items must pickle. A task whose worker dies is rerun elsewhere; one that kills
        its workers again and again (``distributed.scheduler.allowed-failures``) is a ProjectError.
        """
        from distributed import KilledWorker, as_completed

        run_id = uuid.uuid4().hex[:8]
        futures = {self.client.submit(_task, fn, item, self.pins, key=f"{name(item)}-{i}-{run_id}", pure=False): item
                   for i, item in enumerate(items)}
        try:
            for future in as_completed(list(futures), loop=self.client.loop):
                try:
                    result = future.result()
                except KilledWorker as exc:
                    raise ProjectError(f"{name(futures[future])} killed its worker process every time it ran "
                                       f"({exc}); out of memory? Use fewer workers or more memory per worker") from None
                item = futures.pop(future)
                future.release()
                yield item, result
        finally:
            for future in futures:
                future.cancel()


def _pins(cfg: Config) -> Pins:
    """The driver's pins: ``threads_per_worker``, the backend Keras runs on here (resolved from ``auto``), its code."""
    backend = loaded_backend() or (None if cfg.fit.backend == "auto" else cfg.fit.backend)
    return Pins(cfg.experiment.threads_per_worker, backend, code_digest(), compute_threads())


@contextlib.contextmanager
def executor(cfg: Config, *, tasks: int | None = None) -> Iterator[Serial | Dask]:
    """The executor of ``experiment.executor``, started for the block and stopped after it.

    With ``tasks=0`` (nothing to run) it is `Serial`: no cluster is started for nothing.

    Raises
    ------
    ConfigError
        Dask is not installed, or no scheduler (or no worker) answers at ``experiment.address``, or
        a worker runs other code or another Keras backend (`pin_worker`).
    """
    kind = cfg.experiment.executor
    if kind == "serial" or tasks == 0:
        yield Serial()
        return
    try:
        import distributed  # noqa: F401 - only to say what to install
    except ImportError:
        raise ConfigError(f"{cfg.source}: 'experiment.executor' is {kind}, which needs Dask: "
                          "pip install 'dask[distributed]' (or set it to serial)") from None
    pins = _pins(cfg)
    start = _local_client if kind == "local" else _cluster_client
    with start(cfg, pins) as client:
        client.register_plugin(_plugin(pins), name=PLUGIN)  # every worker now, and each one that joins later
        try:
            yield Dask(client, pins)
        finally:
            with contextlib.suppress(Exception):  # a shared scheduler keeps no pins of a finished run
                client.unregister_worker_plugin(PLUGIN)


@contextlib.contextmanager
def _local_client(cfg: Config, pins: Pins):
    """A LocalCluster of ``experiment.workers`` processes (one task slot each), pinned from their start."""
    import dask
    from distributed import Client, LocalCluster

    saved = dict(os.environ)  # the Nanny copies its pre-spawn variables into this process too
    spawn = {"MALLOC_TRIM_THRESHOLD_": "65536", **pins.environ()}
    try:
        with dask.config.set({"distributed.nanny.pre-spawn-environ": spawn}):
            with LocalCluster(n_workers=cfg.experiment.workers, threads_per_worker=1, processes=True,
                              dashboard_address=None, silence_logs=logging.ERROR) as cluster, \
                    Client(cluster, set_as_default=False) as client:
                yield client
    finally:
        for key in set(os.environ) - set(saved):
            del os.environ[key]
        os.environ.update(saved)


@contextlib.contextmanager
def _cluster_client(cfg: Config, pins: Pins):
    """A client of the scheduler at ``experiment.address``, once at least one worker is there."""
    from distributed import Client

    address = cfg.experiment.address
    check_scheduler(address, source=cfg.source)
    try:
        client = Client(address, timeout=f"{CONNECT_SECONDS}s", set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise ConfigError(f"{cfg.source}: 'experiment.address' is {address}, where no Dask scheduler answers "
                          f"({exc}); start one with `dask scheduler` and give its address") from None
    with client:
        try:
            client.wait_for_workers(1, timeout=CONNECT_SECONDS)
        except TimeoutError:
            raise ConfigError(f"{cfg.source}: the Dask scheduler at 'experiment.address' {address} has no worker "
                              f"after {CONNECT_SECONDS} s; start some with `dask worker {address} --nthreads 1`") from None
        yield client


def check_scheduler(address: str, *, source: object) -> None:
    """Refuse, within ``CONNECT_SECONDS``, an `address` where no Dask scheduler completes Dask's handshake.

    `distributed.Client` bounds the TCP connect but not the handshake after it: a server of another
    kind (HTTP) that waits for a request hangs it for ever, and one that sends a banner (SSH) makes
    it read the banner as a frame length (exbibytes). Probed here first, with the whole handshake bounded.

    Raises
    ------
    ConfigError
        Naming `source` (the YAML), the key and the address.
    """
    from distributed.security import Security

    async def handshake() -> None:
        from distributed.comm import connect

        comm = await asyncio.wait_for(connect(address, timeout=CONNECT_SECONDS,
                                              **Security().get_connection_args("client")), CONNECT_SECONDS)
        await comm.close()

    where = f"{source}: 'experiment.address' is {address}, where no Dask scheduler answers"
    advice = "start one with `dask scheduler` and give the address it prints"
    try:
        asyncio.run(handshake())
    except TimeoutError:  # connected, then no handshake: another kind of server, or a stalled one
        raise ConfigError(f"{where} within {CONNECT_SECONDS} s (nothing, or a server of another kind, listens "
                          f"there); {advice}") from None
    except OSError as exc:
        raise ConfigError(f"{where} ({exc}); {advice}") from None
    except Exception as exc:  # noqa: BLE001 - whatever a non-Dask peer makes Dask's protocol raise
        text = str(exc).splitlines()[0][:200] if str(exc) else ""
        raise ConfigError(f"{where}: something else does, whose reply is no Dask handshake ({type(exc).__name__}: "
                          f"{text}); {advice}") from None


def task_name(*parts: Any) -> str:
    """A readable Dask task name (the run adds a unique suffix): the parts joined by '-', spaces dropped."""
    return "-".join(str(p).replace(" ", "") for p in parts)

