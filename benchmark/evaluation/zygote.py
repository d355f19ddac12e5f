"""The zygote: one process inside a bubblewrap sandbox that imported torch, CompressAI and the suite — never a
method — and forks one child per role (benchmark/evaluation/sandbox.py says why: the imports are most of a role's cost).

Each child, before it runs any method code, enters namespaces of its own: a user namespace (so it may mount),
a mount namespace in which it mounts a private ``/tmp`` (home inside it), ``/dev/shm``, and an empty folder over
the run's scratch folder with only its own role folder bound back (read-only, its ``out/`` writable); new IPC,
network, UTS and PID namespaces (the role runs as PID 1 of its own namespace, so a process it leaves behind dies
with it). Then it drops every capability, sets no_new_privs and non-dumpable, and only then imports the method.
Children run one at a time and share nothing with each other or with the zygote.

Protocol on stdin/stdout, one JSON object per line: ``{"request": PATH}`` -> ``{"rc": N}``."""
from __future__ import annotations

import ctypes
import json
import os
import sys
from pathlib import Path

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 2, 4, 32, 4096, 16384, 1 << 18
MNT_DETACH = 2
PR_SET_DUMPABLE, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS = 4, 24, 38

STAGE = "/.stage"  # created empty by the zygote's bubblewrap (--dir): where a child holds its folders aside
_libc = ctypes.CDLL(None, use_errno=True)


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(src: str | None, dst: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    _check(_libc.mount(src.encode() if src else None, dst.encode(), fstype.encode() if fstype else None, flags,
                       data.encode() if data else None), f"mount {src} -> {dst}")


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _drop_capabilities() -> None:
    for cap in range(64):
        _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)  # bounding set (EINVAL past the last cap: ignored)
    hdr = _CapHeader(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3
    data = (_CapData * 2)()
    _check(_libc.capset(ctypes.byref(hdr), data), "capset")
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    _libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)


def enter(folder: Path, keep: list[tuple[str, bool]], hide: list[str]) -> None:
    """Namespaces and mounts of one role child (see the module docstring): `folder` is its role folder (read-only,
    its out/ writable); `keep` further (path, writable) folders it may use; `hide` the folders covered by an empty
    one first (the run's scratch folder, every method's training folders), with `folder` and `keep` bound back."""
    uid, gid = os.getuid(), os.getgid()
    _check(_libc.unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWNET | CLONE_NEWUTS | CLONE_NEWPID), "unshare")
    Path("/proc/self/setgroups").write_text("deny")
    Path("/proc/self/uid_map").write_text(f"0 {uid} 1")
    Path("/proc/self/gid_map").write_text(f"0 {gid} 1")
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    _mount("tmpfs", STAGE, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0700")  # an empty folder the zygote's sandbox made
    paths = [(str(folder), False)] + [(p, w) for p, w in keep if os.path.isdir(p)]
    for i, (p, _) in enumerate(paths):  # held aside before /tmp and the hidden folders are covered
        os.makedirs(f"{STAGE}/{i}")
        _mount(p, f"{STAGE}/{i}", None, MS_BIND | MS_REC)
    _mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755")
    for h in hide:
        if os.path.isdir(h):
            _mount("tmpfs", h, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755")  # the other roles, the samples
    for i, (p, writable) in enumerate(paths):
        os.makedirs(p, exist_ok=True)
        _mount(f"{STAGE}/{i}", p, None, MS_BIND | MS_REC)
        if not writable:
            _mount(None, p, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
        if i == 0:  # the one writable part of the role folder, bound from the writable copy held aside
            _mount(f"{STAGE}/0/out", str(folder / "out"), None, MS_BIND)
        _check(_libc.umount2(f"{STAGE}/{i}".encode(), MNT_DETACH), "umount")
    _check(_libc.umount2(STAGE.encode(), MNT_DETACH), "umount")
    os.makedirs("/tmp/home/.mpl", exist_ok=True)
    if os.path.isdir("/dev/shm"):
        _mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777")
    _drop_capabilities()


def _child(request: Path) -> None:
    """In the forked child: enter the namespaces, then run the role as PID 1 of its own PID namespace."""
    req = json.loads(request.read_text(encoding="utf-8"))
    folder = Path(req["out"]).parent
    log = os.open(str(folder / "out" / "log.txt"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    try:
        box = req.get("_sandbox") or {}
        enter(folder, [(str(p), bool(w)) for p, w in box.get("keep", [])], [str(h) for h in box.get("hide", [])])
    except OSError as exc:
        print(f"sandbox: could not set up the role's namespaces: {exc}", file=sys.stderr, flush=True)
        os._exit(70)
    pid = os.fork()  # the first process of the new PID namespace: when it exits, everything it left dies
    if pid:
        _, status = os.waitpid(pid, 0)
        os._exit(os.waitstatus_to_exitcode(status) & 0xFF)
    os.environ.clear()
    os.environ.update({"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp/home", "TMPDIR": "/tmp",
                       "MPLCONFIGDIR": "/tmp/home/.mpl", "MPLBACKEND": "Agg", "LANG": "C.UTF-8",
                       "PYTHONDONTWRITEBYTECODE": "1"})
    os.chdir("/tmp/home")
    from benchmark.evaluation.roles import run_request

    try:
        rc = run_request(request)
    except BaseException:  # noqa: BLE001 - a role's crash must not take the zygote's protocol with it
        import traceback

        traceback.print_exc()
        rc = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc)


def main() -> None:
    import numpy  # noqa: F401 - the imports every role pays for, paid once here
    import torch  # noqa: F401

    try:
        import compressai  # noqa: F401
    except ImportError:
        pass
    from benchmark.contract import codec, container  # noqa: F401
    from benchmark.evaluation import complexity, roles, runner  # noqa: F401
    from benchmark.training import weights  # noqa: F401

    out = sys.stdout
    for line in sys.stdin:
        try:
            msg = json.loads(line)
            request = Path(msg["request"])
        except (ValueError, KeyError, TypeError):
            break
        pid = os.fork()
        if pid == 0:
            _child(request)
        _, status = os.waitpid(pid, 0)
        out.write(json.dumps({"rc": os.waitstatus_to_exitcode(status)}) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
