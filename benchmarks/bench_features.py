"""Benchmark: MIMII baseline feature pipeline (librosa) vs `common.features.extract.extract` on the same clips.

Usage::

    python benchmarks/bench_features.py [--root DIR] [--n-clips 200] [--jobs 2] [--repeat 3]

Without ``--root`` it writes MIMII-like clips (10 s, 8 channels, 16 kHz, 16-bit PCM) into a
temporary folder with `common.data.synth` (random noise if that module is missing) and deletes them
afterwards. The page cache and librosa are warmed first; each pipeline then runs `--repeat`
times over all clips and the best run counts (this machine is shared, so the slower runs
measure the neighbours). The reference is timed with BLAS as configured and, when threadpoolctl
is installed, with single-threaded BLAS too; the faster of the two is the baseline, so the
reported ratio is the conservative one.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np

from common.features.cache import feature_key
from common.features.extract import extract
from common.features.logmel import reference_logmel_frames

TARGET_RATIO = 5.0


def make_clips(root: Path, n_clips: int, *, seed: int = 0) -> list[Path]:
    """Write `n_clips` MIMII-like 10 s, 8-channel, 16 kHz PCM_16 clips under `root`."""
    try:
        from common.data.synth import generate_dataset
    except ImportError:
        generate_dataset = None
    if generate_dataset is not None:
        n_abnormal = n_clips // 4
        generate_dataset(
            root, n_normal=n_clips - n_abnormal, n_abnormal=n_abnormal, types=("fan",), ids=("id_00",),
            seconds=10, channels=8, seed=seed, jobs=2, progress=False,
        )
        return sorted(root.rglob("*.wav"))
    import soundfile as sf

    rng = np.random.default_rng(seed)
    folder = root / "noise"
    folder.mkdir(parents=True)
    paths = []
    for i in range(n_clips):
        path = folder / f"{i:08d}.wav"
        sf.write(path, np.clip(0.1 * rng.standard_normal((160000, 8)), -1, 0.999), 16000, subtype="PCM_16")
        paths.append(path)
    return paths


def _blas_single_thread():
    """A context limiting BLAS to one thread, or None without threadpoolctl."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    return ThreadpoolController().limit(limits=1, user_api="blas")


def run(files: list[Path], *, jobs: int, repeat: int, channel: int = 0) -> dict[str, float]:
    """Time both pipelines on `files`; returns clips/s, ratios and the max abs dB difference."""
    for path in files:  # page cache
        path.read_bytes()
    reference_logmel_frames(files[0], channel=channel)  # imports, librosa/numba caches
    extract(files[:4], channel=channel, jobs=jobs, progress=False)

    def reference():
        return [reference_logmel_frames(p, channel=channel) for p in files]

    def ours(n_jobs: int):
        return lambda: extract(files, channel=channel, jobs=n_jobs, progress=False)

    variants = {"ref": reference, "ref_blas1": reference, "ours": ours(jobs), "ours_1": ours(1)}
    times: dict[str, list[float]] = {name: [] for name in variants}
    results: dict[str, object] = {}
    # Interleaved, so that every pipeline sees the same neighbours on a shared machine.
    for _ in range(repeat):
        for name, fn in variants.items():
            limit = _blas_single_thread() if name == "ref_blas1" else nullcontext()
            if limit is None:
                continue
            with limit:
                start = time.perf_counter()
                results[name] = fn()
                times[name].append(time.perf_counter() - start)

    vectors, offsets = results["ours"]
    max_diff = max(
        float(np.max(np.abs(vectors[offsets[i] : offsets[i + 1]] - ref))) for i, ref in enumerate(results["ref"])
    )
    n = len(files)
    best = {name: min(t) for name, t in times.items() if t}
    best_ref = min(best["ref"], best.get("ref_blas1", np.inf))
    return {
        "n_clips": n,
        "vectors": vectors.shape[0],
        "ref_clips_s": n / best_ref,
        "ref_clips_s_blas_default": n / best["ref"],
        "ref_clips_s_blas_1": n / best["ref_blas1"] if "ref_blas1" in best else float("nan"),
        "ours_clips_s": n / best["ours"],
        "ours_1_clips_s": n / best["ours_1"],
        "ratio": best_ref / best["ours"],
        "ratio_1": best_ref / best["ours_1"],
        "max_abs_db": max_diff,
    }


def _drop_page_cache(files: list[Path]) -> bool:
    """Ask the kernel to forget the files' cached pages (no root needed); False where unsupported."""
    if not hasattr(os, "posix_fadvise"):
        return False
    for path in files:
        with open(path, "rb") as fh:
            os.posix_fadvise(fh.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
    return True


def _content_digest(files: list[Path]) -> str:
    """The rejected cache key: sha256 over every byte of every clip."""
    h = hashlib.sha256()
    for path in files:
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
    return h.hexdigest()


def _best_ms_per_clip(fn, *, n_clips: int, repeat: int, drop: list[Path] | None) -> float:
    """Best of `repeat` calls of `fn` in ms per clip; `drop`: files whose pages leave the page cache before each
    call (a cold read), NaN where the kernel cannot be asked."""
    best = float("inf")
    for _ in range(repeat):
        if drop is not None and not _drop_page_cache(drop):
            return float("nan")
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return 1000 * best / n_clips


def key_cost(files: list[Path], *, repeat: int = 3) -> dict[str, float]:
    """ms per clip of the feature-cache key (stat fingerprint) and of a content digest, cold and warm.

    Cold: the files' pages dropped from the page cache first (``POSIX_FADV_DONTNEED``), as for a
    data set just copied in or not read since boot; NaN where the kernel cannot be asked.
    """
    def timed(fn, *, cold: bool) -> float:
        return _best_ms_per_clip(fn, n_clips=len(files), repeat=repeat, drop=files if cold else None)

    def stat_key():
        return feature_key(files, channel=0, sr=16000)

    def digest():
        return _content_digest(files)

    return {"stat_cold_ms": timed(stat_key, cold=True), "stat_warm_ms": timed(stat_key, cold=False),
            "digest_cold_ms": timed(digest, cold=True), "digest_warm_ms": timed(digest, cold=False)}


def checksum_cost(files: list[Path], *, jobs: int, repeat: int = 3) -> dict[str, float]:
    """ms per clip of the feature cache's checksum (sha256 of an entry's arrays), warm and cold, and of a cache hit.

    The checksum is what every load of an entry pays (`common.features.cache._load_entry`); the hit is the
    whole load (manifest, memory maps, checksums), for comparison with extracting the features.
    """
    from common.features.cache import cached_features
    from common.io import file_sha256

    with tempfile.TemporaryDirectory(prefix="bench_cache_") as cache:
        cached_features(files, cache_dir=cache, jobs=jobs, progress=False)
        arrays = sorted(Path(cache).glob("*.npy"))

        def timed(fn, *, cold: bool) -> float:
            return _best_ms_per_clip(fn, n_clips=len(files), repeat=repeat, drop=arrays if cold else None)

        return {"sum_warm_ms": timed(lambda: [file_sha256(a) for a in arrays], cold=False),
                "sum_cold_ms": timed(lambda: [file_sha256(a) for a in arrays], cold=True),
                "hit_warm_ms": timed(lambda: cached_features(files, cache_dir=cache, jobs=jobs, progress=False),
                                     cold=False),
                "entry_mb": sum(a.stat().st_size for a in arrays) / 1e6}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, help="folder searched for *.wav (default: generate clips in a temp dir)")
    parser.add_argument("--n-clips", type=int, default=200, help="clips to time (default: 200)")
    parser.add_argument("--jobs", type=int, default=2, help="worker threads for extract (default: 2)")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved runs per pipeline; the best counts (default: 3)")
    parser.add_argument("--channel", type=int, default=0, help="channel to use (default: 0)")
    args = parser.parse_args(argv)

    with (nullcontext(None) if args.root else tempfile.TemporaryDirectory(prefix="bench_features_")) as tmp:
        if args.root:
            files = sorted(args.root.rglob("*.wav"))[: args.n_clips]
            if not files:
                parser.error(f"no *.wav files under {args.root}")
        else:
            start = time.perf_counter()
            files = make_clips(Path(tmp), args.n_clips)
            print(f"wrote {len(files)} clips to {tmp} in {time.perf_counter() - start:.1f} s")
        r = run(files, jobs=args.jobs, repeat=args.repeat, channel=args.channel)
        k = key_cost(files, repeat=args.repeat)
        c = checksum_cost(files, jobs=args.jobs, repeat=args.repeat)

    load = " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    print(
        f"clips: {r['n_clips']} ({r['vectors']} vectors), best of {args.repeat} interleaved runs, "
        f"{os.cpu_count()} CPUs, load average {load}"
    )
    print(
        f"reference (librosa.load + melspectrogram): {r['ref_clips_s']:8.1f} clips/s ({1000 / r['ref_clips_s']:.2f} ms/clip; "
        f"BLAS default {r['ref_clips_s_blas_default']:.1f}, BLAS 1 thread {r['ref_clips_s_blas_1']:.1f})"
    )
    print(f"ours (extract, jobs={args.jobs}):{r['ours_clips_s']:26.1f} clips/s ({1000 / r['ours_clips_s']:.2f} ms/clip)")
    print(
        f"ours (extract, jobs=1):{r['ours_1_clips_s']:26.1f} clips/s ({1000 / r['ours_1_clips_s']:.2f} ms/clip, "
        f"{r['ratio_1']:.1f}x)"
    )
    verdict = "met" if r["ratio"] >= TARGET_RATIO else "NOT met (a busy machine? see the load average)"
    print(f"speed-up ours/reference: {r['ratio']:.1f}x (target >= {TARGET_RATIO:.0f}x: {verdict})")
    print(f"max |ours - reference|: {r['max_abs_db']:.2e} dB over all vectors")
    extract_ms = 1000 / r["ours_clips_s"]
    print(
        f"cache key per clip: stat fingerprint (path, size, mtime, inode, ctime) {k['stat_warm_ms']:.4f} ms warm, "
        f"{k['stat_cold_ms']:.4f} ms with the page cache dropped ({100 * k['stat_warm_ms'] / extract_ms:.2f} % of "
        f"extract); sha256 of the content {k['digest_warm_ms']:.2f} ms warm, {k['digest_cold_ms']:.2f} ms cold "
        f"({100 * k['digest_warm_ms'] / extract_ms:.0f} % / {100 * k['digest_cold_ms'] / extract_ms:.0f} % of extract)"
    )
    print(
        f"cache checksum per clip (sha256 of the entry's arrays, {c['entry_mb']:.1f} MB): {c['sum_warm_ms']:.3f} ms warm, "
        f"{c['sum_cold_ms']:.3f} ms cold ({100 * c['sum_warm_ms'] / extract_ms:.0f} % / "
        f"{100 * c['sum_cold_ms'] / extract_ms:.0f} % of extract); a whole cache hit {c['hit_warm_ms']:.3f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
