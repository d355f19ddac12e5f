"""Atomic file writes for everything the suite writes (results, CSVs, leaderboard, manifests, checkpoints).

A crash (SIGKILL, power loss) leaves either the old file or the new one, never half a file: the bytes go to
a temporary file in the same folder, are flushed to disk, then renamed over the target. The file gets the
permissions an ordinary `open(path, "w")` would give (0666 minus the umask, e.g. 0644 under umask 022),
not mkstemp's private 0600, so a shared results folder or a served leaderboard stays readable. Any OSError
(read-only folder, full disk, missing permission) becomes an OutputError that names the folder.

Symbolic links are never followed for writing: a file is written only into a folder that is not itself a link
(a results folder from a stranger may hold `leaderboard -> /somewhere/else`), and the rename replaces a link at
the target's name instead of writing through it. `output_dir` creates an output folder the same way, with a
clear message when it cannot."""
from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import tempfile
from pathlib import Path
from typing import Iterator

from benchmark.errors import OutputError


def current_umask() -> int:
    """The process umask, read without changing it where the OS tells it (Linux), else by set-and-restore."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def output_error(path: Path, exc: OSError) -> OutputError:
    """An OutputError for a failed write of `path`, naming its folder and saying what to do."""
    folder = Path(path).parent
    hint = {
        errno.ENOSPC: "the disk is full: free space or choose another --out",
        errno.EDQUOT: "the disk quota is exceeded: free space or choose another --out",
        errno.EROFS: "the file system is read-only: choose another --out",
        errno.EACCES: "permission denied: make the folder writable or choose another --out",
        errno.EPERM: "permission denied: make the folder writable or choose another --out",
    }.get(exc.errno, "check the folder or choose another --out")
    return OutputError(f"cannot write {Path(path).name!r} in folder {str(folder)!r}: {exc.strerror or exc}; {hint}")


def link_problem(folder: Path) -> str | None:
    """Why files must not be written into `folder`: it is a symbolic link (None otherwise, missing included)."""
    folder = Path(folder)
    if folder.is_symlink():
        try:
            target = os.readlink(folder)
        except OSError:
            target = "?"
        return (f"{str(folder)!r} is a symbolic link (to {target!r:.160}); the suite never writes through links: "
                "remove the link, or pass the real folder as --out")
    return None


def output_dir(folder: Path, *, what: str = "--out") -> Path:
    """Create output folder `folder` (and its parents) if needed; OutputError when it is a symbolic link or cannot be
    created (read-only file system, a file in the way, no permission), naming it and saying what to do."""
    folder = Path(folder)
    why = link_problem(folder)
    if why:
        raise OutputError(f"refusing to write into {what} {why}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputError(f"cannot create {what} folder {str(folder)!r}: a file of that name is in the way; "
                          "remove it or choose another --out") from None
    except OSError as exc:
        err = output_error(folder / ".", exc)
        raise OutputError(f"cannot create {what} folder {str(folder)!r}: {exc.strerror or exc}; "
                          f"{str(err).rsplit('; ', 1)[-1]}") from None
    return folder


@contextlib.contextmanager
def exclusive_run(pdir: Path, key: str) -> Iterator[None]:
    """Hold an exclusive, non-blocking `flock` on ``pdir/.<key>.run.lock`` for the body: a second `bench run` of the
    same method, variant and seed into the same results folder stops with an OutputError instead of training beside
    the first and overwriting its checkpoints (``train/<key>``), partial CSV and weights. Runs of other methods or
    variants in the same folder go on side by side. The kernel drops the lock when the process dies, so a killed
    run never leaves a stale lock (the empty lock file stays, as the sweep's do)."""
    lock = Path(pdir) / f".{key}.run.lock"
    why = link_problem(lock)
    if why:
        raise OutputError(f"refusing to use the run lock: {why}")
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o666)
    except OSError as exc:
        raise output_error(lock, exc) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OutputError(f"another `bench run` of {key!r} is writing into {str(pdir)!r} right now; two runs of one "
                              "method, variant and seed in one folder would overwrite each other's checkpoints, partial "
                              "results and weights: wait for it to finish, or choose another --out") from None
        yield
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically, with umask permissions; OSError -> OutputError naming the folder. The folder
    must not be a symbolic link (`link_problem`)."""
    path = Path(path)
    why = link_problem(path.parent)
    if why:
        raise OutputError(f"refusing to write {path.name!r}: its folder {why}")
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o666 & ~current_umask())
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        raise output_error(path, exc) from exc
    finally:  # whatever stopped us (an error, KeyboardInterrupt), no temporary file is left behind
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))
