"""Files: atomic writes (a reader or a resumed run never sees a half-written file), fingerprints and digests."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside `path`, then rename it over `path`.

    The file gets the mode a plainly created one would (0666 less the umask), not the temporary file's 0600:
    a result, model or cache shared across users (NFS, a cluster) stays readable as the umask says.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
        with contextlib.suppress(PermissionError):  # a file system without modes (vfat) keeps its own
            os.chmod(tmp_path, 0o666 & ~umask())
        os.replace(tmp_path, path)
    except OSError as exc:
        if exc.errno is not None and exc.filename in (None, str(tmp_path)):
            exc.filename = str(path)  # a failed write (a full disk) names no file; the user knows `path`, not tmp
        raise
    finally:
        tmp_path.unlink(missing_ok=True)
    return path


def umask() -> int:
    """This process's umask, read without changing it (Linux: /proc; elsewhere set and restored at once)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write `text` to `path` atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def file_fingerprint(path: str | os.PathLike, *, missing_ok: bool = False) -> dict[str, int | str | bool]:
    """What identifies a file's content in the cache keys: absolute path, size, mtime, inode and ctime.

    Size and mtime alone miss a clip replaced by one of the same size and mtime (``cp -p``,
    ``rsync -a``, ``tar x``, every MIMII clip having one size): those write a new inode or at least
    move ctime, which no user call can set back. Costs one ``stat`` (see docs/performance.md).
    With `missing_ok`, a file that cannot be stat'ed is ``{"path": ..., "missing": True}``
    (the file check's key: a missing file is a problem that scan reports).

    Raises
    ------
    OSError
        The file cannot be stat'ed (and `missing_ok` is False).
    """
    try:
        st = os.stat(path)
    except OSError:
        if not missing_ok:
            raise
        return {"path": os.path.abspath(path), "missing": True}
    return {"path": os.path.abspath(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
            "inode": st.st_ino, "ctime_ns": st.st_ctime_ns}


def digest(obj: Any, *, length: int | None = None, compact: bool = True, sort_keys: bool = True) -> str:
    """The sha256 (hex, first `length` digits) of `obj` as JSON: every key and hash of the package.

    ``compact`` selects the JSON separators and ``sort_keys`` the key order; the other forms exist
    because changing them would change keys already on disk (feature caches: compact, full length;
    row config hashes: not compact, 16 digits; file-check caches: compact, keys in written order).
    """
    separators = (",", ":") if compact else None
    text = json.dumps(obj, sort_keys=sort_keys, separators=separators, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def file_sha256(path: str | os.PathLike, *, chunk: int = 8 * 2**20) -> str:
    """The sha256 of a file's bytes, read a chunk at a time (never the whole file in memory)."""
    h = hashlib.sha256()
    buf = bytearray(chunk)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as fh:
        while n := fh.readinto(buf):
            h.update(view[:n])
    return h.hexdigest()
