"""Helpers shared by the benchmarks: the machine, its load, MIMII-sized synthetic data, memory readings.

Not a benchmark itself. Every benchmark prints `machine_line()` and `load_line()` so a figure is
never read without the machine and the neighbours it was measured with.
"""

from __future__ import annotations

import argparse
import os
import platform
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# Full-size MIMII at one SNR, as the benchmarks scale it: 16 machines (4 types x 4 IDs), about
# 1,000 normal and 250 abnormal 10 s clips each (the real set: 14,719 normal, 3,300 abnormal at -6 dB).
MIMII_NORMAL = 1000
MIMII_ABNORMAL = 250
MIMII_TYPES = ("fan", "pump", "slider", "valve")
MIMII_IDS = ("id_00", "id_02", "id_04", "id_06")
VECTORS_PER_CLIP = 309  # 10 s at 16 kHz, n_fft 1024, hop 512, frames 5
GIB = 2**30
MIB = 2**20


def best_seconds(func, repeat: int) -> float:
    """Best wall seconds of `func()` over `repeat` calls after one warm-up call."""
    func()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return min(times)


def load_line() -> str:
    """The 1, 5 and 15 minute load averages, as one string."""
    if not hasattr(os, "getloadavg"):
        return "n/a"
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def ram_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024 / GIB
    except OSError:
        pass
    return float("nan")


def usable_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def machine_line() -> str:
    return (f"machine: {cpu_model()}, {usable_cpus()} usable CPUs, {ram_gib():.0f} GiB RAM, "
            f"Python {platform.python_version()}, {platform.system()} {platform.release()}")


def add_backend_option(parser: argparse.ArgumentParser) -> None:
    """``--backend``: the Keras backend a benchmark runs on (default: the project's, `common.backend`)."""
    parser.add_argument("--backend", default="auto", choices=("auto", "jax", "tensorflow", "torch"),
                        help="Keras backend (default: auto = KERAS_BACKEND, else the fastest installed)")
    parser.add_argument("--ceiling-gflops", type=float,
                        help="the machine's matmul ceiling from bench_ceiling.py (default: measure it here)")


def use_backend(name: str) -> str:
    """Select backend `name` before Keras is imported (``auto``: the project's default); the backend running."""
    from common.backend import use_backend as select

    select(name, key="--backend")
    import keras

    return keras.backend.backend()


def backend_line() -> str:
    """Keras' version, its backend and the device that backend computes on (call after `use_backend`)."""
    import keras

    backend = keras.backend.backend()
    return f"Keras {keras.__version__}, backend {backend} on {device_of(backend)}"


def device_of(backend: str) -> str:
    """Where this backend computes: the first accelerator it sees, else cpu (benchmark code, not common/)."""
    if backend == "jax":
        import jax

        dev = jax.devices()[0]
        return f"{dev.platform}:{dev.device_kind}"
    if backend == "torch":
        import torch

        return f"cuda:{torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else "cpu"
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    return f"gpu:{gpus[0].name}" if gpus else "cpu"


def scaled_counts(scale: float) -> tuple[int, int]:
    """(normal, abnormal) clips per machine at `scale` (1.0 = MIMII-sized), at least (2, 1)."""
    return max(2, round(MIMII_NORMAL * scale)), max(1, round(MIMII_ABNORMAL * scale))


def make_dataset(root: Path, scale: float, *, seconds: float = 10.0, channels: int = 8, jobs: int = 2,
                 seed: int = 0) -> float:
    """Write the 16-machine synthetic set at `scale` under `root`; returns the seconds it took."""
    from common.data.synth import generate_dataset

    n_normal, n_abnormal = scaled_counts(scale)
    start = time.perf_counter()
    generate_dataset(root, snr=-6, n_normal=n_normal, n_abnormal=n_abnormal, seconds=seconds, channels=channels,
                     seed=seed, types=MIMII_TYPES, ids=MIMII_IDS, jobs=jobs, progress=False)
    return time.perf_counter() - start


def subset_root(src: Path, dst: Path, scale: float) -> Path:
    """A data root at a smaller `scale` made of symbolic links to the first clips of `src` (same layout).

    The synthetic generator seeds each clip from its index alone, so the first N clips of a larger
    set are exactly the clips a set of N would have.
    """
    n_normal, n_abnormal = scaled_counts(scale)
    for label, n in (("normal", n_normal), ("abnormal", n_abnormal)):
        for folder in sorted(src.glob(f"*/*/*/{label}")):
            files = sorted(folder.glob("*.wav"))
            if len(files) < n:
                raise SystemExit(f"{folder} has {len(files)} clips, fewer than the {n} scale {scale} needs")
            out = dst / folder.relative_to(src)
            out.mkdir(parents=True, exist_ok=True)
            for f in files[:n]:
                (out / f.name).symlink_to(f.resolve())
    return dst


def dataset_scale(root: Path) -> float:
    """The scale of a data root made by `make_dataset` (from its normal clips per machine)."""
    counts = [len(list(p.glob("*.wav"))) for p in root.glob("*/*/*/normal")]
    if not counts:
        raise SystemExit(f"no MIMII-layout machines under {root}")
    return min(counts) / MIMII_NORMAL


class MemorySampler:
    """Peak RSS of this process: the kernel's high-water mark, plus sampled anonymous and file-backed parts.

    ``ru_maxrss`` (= VmHWM) counts every resident page, also pages of memory-mapped files, which
    are shared page cache the kernel can drop. The sampler reads RssAnon (heap: what really has to
    fit in RAM) and RssFile every `interval` seconds in a thread.
    """

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval
        self.peak = {"RssAnon": 0, "RssFile": 0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def status() -> dict[str, int]:
        """VmRSS, VmHWM, RssAnon, RssFile of this process in bytes (empty off Linux)."""
        out = {}
        try:
            for line in Path("/proc/self/status").read_text().splitlines():
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                    out[key] = int(value.split()[0]) * 1024
        except OSError:
            pass
        return out

    def _run(self) -> None:
        while not self._stop.is_set():
            s = self.status()
            for k in self.peak:
                self.peak[k] = max(self.peak[k], s.get(k, 0))
            time.sleep(self.interval)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    @staticmethod
    def max_rss() -> int:
        """ru_maxrss of this process in bytes (Linux reports KiB)."""
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
