"""Folder locks: one run at a time writes a result or model folder; a second one is told who holds it.

`folder_lock` takes ``fcntl.flock`` on ``<folder>/.lock`` for the duration of a ``with`` block and
writes the holder's PID, what it runs and since when into the file. The kernel drops a flock when
its process dies (even by SIGKILL), so a lock file left by a dead run never blocks the next one.
A task that writes into a run's folder from another process (a Dask worker) checks first that the
run still holds it (`check_still_locked`): a worker outliving its killed driver writes nothing.
A reader that must not see a half-written folder (``report``) takes a shared lock without writing (`no_writer`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
import time
from pathlib import Path
from typing import Iterator

from common.errors import LockError

LOCK_FILE = ".lock"
_HELD: set[Path] = set()  # the folders this process holds (`check_still_locked` must not probe its own lock)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process: it exists
    return True


def _holders(path: Path) -> list[tuple[int, str, str]]:
    """(pid, what, since) of each live process the lock file names (shared holders append a line each)."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return []
    found = []
    for line in lines:
        parts = line.split("\t")
        if len(parts) == 3 and parts[0].isdigit() and _alive(int(parts[0])):
            found.append((int(parts[0]), parts[1], parts[2]))
    return found


def _refusal(folder: Path, path: Path) -> LockError:
    holders = _holders(path)
    if not holders:
        return LockError(f"{folder} is in use by another process (its lock file {path} is held); "
                         "wait for it or stop it")
    who = "; ".join(f"process {pid} ({what}) since {since}" for pid, what, since in holders)
    return LockError(f"{folder} is in use by {who}; wait for it or stop it")


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike, *, what: str, shared: bool = False) -> Iterator[Path]:
    """Hold a lock on `folder` (created if missing) for the block; LockError at once if another run holds it.

    Parameters
    ----------
    folder : str or os.PathLike
        The result or model folder the run writes (or reads, with ``shared=True``).
    what : str
        What the run does, e.g. ``"transfer Version1/transfer_pretrain_v1.yaml"``: written into
        the lock file, so a refused run can say who holds the folder.
    shared : bool
        A shared (reader's) lock: any number of readers together, never with a writer.

    Raises
    ------
    LockError
        Another process holds the lock (exclusively, or shared when this asks for it
        exclusively). The message names the folder and the holder's PID, what it runs and since when.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _refusal(folder, path) from None
        if not shared:
            os.ftruncate(fd, 0)  # the writer is the only holder: earlier lines are of dead processes
        holder = f"{what} [{' '.join(sys.argv)}]".replace("\t", " ").replace("\n", " ")
        line = f"{os.getpid()}\t{holder}\t{time.strftime('%Y-%m-%d %H:%M:%S')}\n"
        os.lseek(fd, 0, os.SEEK_END)
        os.write(fd, line.encode())
        _HELD.add(folder.resolve())
        try:
            yield path
        finally:
            _HELD.discard(folder.resolve())
    finally:
        os.close(fd)  # releases the flock


@contextlib.contextmanager
def no_writer(folder: str | os.PathLike, *, what: str) -> Iterator[None]:
    """Read `folder` in the block only while no run writes it (a shared lock, taken without writing anything).

    For a reader such as ``report``, which may read an archived, read-only folder: the lock file is
    not created, and a folder without one has no writer.

    Raises
    ------
    LockError
        A run holds the folder (exclusively): naming it, and saying its files are not finished.
    """
    path = Path(folder) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            who = "; ".join(f"process {pid} ({w}) since {since}" for pid, w, since in _holders(path)) or "another process"
            raise LockError(f"{folder} is being written by {who}: its files are not finished; {what} once it "
                            "has ended") from None
        yield
    finally:
        os.close(fd)


def check_still_locked(folder: str | os.PathLike, *, writing: str | os.PathLike) -> None:
    """Refuse to write `writing` into `folder` unless a run holds the folder's lock (the run a task belongs to).

    A task on a Dask worker runs on after its driver is killed; the driver's lock is gone with it,
    so the task's file would land in a folder no run holds. Probed with a shared lock, which the
    writer's exclusive lock refuses; not in the process that holds it (a serial run): where flock is
    emulated by POSIX locks (NFS), a second descriptor's lock and close would not see, and would drop, its own.

    Raises
    ------
    LockError
        No process holds the lock of `folder`.
    """
    if Path(folder).resolve() in _HELD:
        return
    path = Path(folder) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        fd = None
    if fd is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return  # held exclusively: the run is alive
        finally:
            os.close(fd)
    raise LockError(f"{folder} is no longer locked by the run this task belongs to (its driver ended?): "
                    f"{writing} is not written; run the command again to finish")
