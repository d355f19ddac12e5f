"""Where a method's code runs: one child process per role, sandboxed with bubblewrap.

Isolation levels (`bench run --isolation`):

- ``sandbox`` (the default where bubblewrap works): every role runs in a bubblewrap sandbox with read-only binds
  of the interpreter, site-packages and the suite's source, a private empty ``/tmp``, ``/dev/shm`` and home, no
  network, a cleared environment, its own read-only input folder and one writable output folder, and
  ``--die-with-parent``. The data files of the embedded datasets, the dataset root and the results folder are
  hidden where they lie under a bound folder. Nothing a role writes outside its output folder outlives it.
- ``process``: separate child processes with a private temporary folder and home and a cleared environment, but
  no file-system sandbox (``/tmp``, ``/dev/shm`` and the dataset are reachable). The fallback, with a warning,
  where bubblewrap cannot run (no user namespaces, macOS, a container whose seccomp profile blocks them).
- ``none``: everything in the calling process, as before roles existed; for debugging only.

Under ``CI=true`` a missing sandbox is an error instead of a fallback. Only ``sandbox`` results are ranked or
accepted by ``bench submit``.

Start-up cost: a role process pays the imports of torch and the method (seconds of CPU). To keep it small a
*zygote* — a process that imported torch, CompressAI and the suite (never a method) inside one bubblewrap sandbox
— forks one child per role; each child enters a new user and mount namespace of its own, mounts a private
``/tmp``, ``/dev/shm`` and home, sees only its own role folder, drops every capability and only then imports the
method. Children are forked from a zygote that never ran method code and share nothing with each other. Where
nested namespaces are not allowed, each role gets a bubblewrap sandbox of its own (slower, same isolation)."""
from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmark.errors import IsolationError

LEVELS = ("sandbox", "process", "none")
RESPONSE = "response.json"
LOG = "log.txt"
MAX_RESPONSE = 64 << 20  # a role's response.json is parsed only below this size
NETWORK_FILES = ("/etc/hosts", "/etc/resolv.conf", "/etc/nsswitch.conf", "/etc/host.conf", "/etc/gai.conf")


# ----------------------------------------------------------------------------------------------- the levels
def _bwrap() -> str | None:
    return shutil.which("bwrap")


@functools.lru_cache(maxsize=1)
def sandbox_problem() -> str | None:
    """Why bubblewrap cannot run here (None: it can)."""
    exe = _bwrap()
    if exe is None:
        return "bubblewrap is not installed (Debian/Ubuntu: apt-get install bubblewrap; Fedora: dnf install bubblewrap)"
    argv = [exe, *_base_args(), "--", sys.executable, "-c", "pass"]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=_clean_env())
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bubblewrap failed to start: {exc}"
    if proc.returncode != 0:
        return (f"bubblewrap cannot create its namespaces here ({proc.stderr.strip()[:300] or 'exit ' + str(proc.returncode)}); "
                "user namespaces may be disabled (sysctl kernel.unprivileged_userns_clone=1) or blocked by a container's "
                "seccomp profile (docker run --security-opt seccomp=unconfined)")
    return None


def resolve_isolation(requested: str | None = None) -> str:
    """The isolation level a run uses: `requested`, or the best available (sandbox, else process with a warning;
    under CI=true a missing sandbox raises)."""
    if requested is None:
        requested = os.environ.get("BENCH_ISOLATION") or None  # e.g. the test suite's fixtures: none
    if requested not in (None, "auto") and requested not in LEVELS:
        raise IsolationError(f"unknown isolation level {requested!r}; choose one of {', '.join(LEVELS)}")
    if requested in ("process", "none"):
        return requested
    why = sandbox_problem()
    if why is None:
        return "sandbox"
    if requested == "sandbox" or os.environ.get("CI", "").lower() == "true":
        raise IsolationError(f"--isolation sandbox is not available: {why}. Results made without the sandbox are not "
                             "ranked or accepted; pass --isolation process to run anyway")
    warnings.warn(f"running methods in plain child processes (--isolation process), not a sandbox: {why}", stacklevel=2)
    print(f"warning: no sandbox ({why}); methods run as plain child processes and their results are not ranked",
          file=sys.stderr)
    return "process"


# ----------------------------------------------------------------------------------------------- what is bound
def _clean_env(home: str = "/tmp/home", threads: int | None = None) -> dict[str, str]:
    """The environment a role gets: nothing of the caller's but the path to the interpreter's libraries."""
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": home, "TMPDIR": str(Path(home).parent),
           "MPLCONFIGDIR": f"{home}/.mpl", "MPLBACKEND": "Agg", "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1",
           "PYTHONHASHSEED": "0"}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    return env


def _suite_root() -> Path:
    return Path(__file__).resolve().parents[2]


@functools.lru_cache(maxsize=1)
def read_only_paths() -> tuple[str, ...]:
    """Folders every role may read: the system's libraries, the interpreter (and the base interpreter a virtual
    environment points to), site-packages, the suite's source and whatever else is on sys.path."""
    paths = {"/usr", "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/alternatives", "/etc/localtime",
             sys.prefix, sys.base_prefix, sys.exec_prefix, str(Path(sys.executable).resolve().parent),
             str(_suite_root())}
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        paths.add(sysconfig.get_paths()[key])
    for p in sys.path:
        if p and os.path.isabs(p) and os.path.exists(p):
            paths.add(p)
    # never a whole shared folder (a caller whose import path holds /tmp or the home folder would hand its
    # files to every role): folders *under* them are bound, on top of the role's private /tmp
    too_broad = {"/", "/tmp", "/dev", "/dev/shm", "/proc", "/sys", "/home", "/root", "/var", "/var/tmp", "/run",
                 os.path.expanduser("~")}
    out = []
    for p in sorted(paths, key=len):
        p = os.path.normpath(p)
        if not os.path.exists(p) or p in too_broad:
            continue
        if any(p == q or p.startswith(q.rstrip("/") + "/") for q in out):
            continue  # inside a folder bound already
        out.append(p)
    return tuple(out)


def _base_args() -> list[str]:
    args = ["--unshare-all", "--die-with-parent", "--new-session", "--proc", "/proc", "--dev", "/dev",
            "--tmpfs", "/tmp", "--tmpfs", "/dev/shm", "--dir", "/tmp/home"]
    for p in read_only_paths():
        args += ["--ro-bind", p, p]
    for link in ("/bin", "/sbin", "/lib", "/lib64", "/lib32"):  # usr-merged systems: symlinks into /usr
        if os.path.islink(link):
            args += ["--symlink", os.readlink(link), link]
        elif os.path.isdir(link) and link not in read_only_paths():
            args += ["--ro-bind", link, link]
    return args


def _under_bound(path: Path) -> bool:
    p = str(path)
    return any(p == q or p.startswith(q.rstrip("/") + "/") for q in read_only_paths())


@dataclass
class Role:
    """One role process: what it may read, where it writes, what it is asked."""

    name: str  # e.g. "encode-left"
    folder: Path  # the role folder: request.json, in/ (read-only), out/ (writable)
    request: dict[str, Any]
    read_only: list[Path] = field(default_factory=list)  # further folders it may read (weights)
    writable: list[Path] = field(default_factory=list)  # further folders it may write (training checkpoints)
    hide: list[Path] = field(default_factory=list)  # folders and files it must not see where they lie under a bind
    threads: int | None = None
    device: str = "cpu"
    timeout: float | None = None
    # data-parallel training: `processes` meet on loopback; `network` keeps the host's (several nodes; docs/security.md)
    processes: int = 1
    network: bool = False

    @property
    def out(self) -> Path:
        return self.folder / "out"


def new_role(parent: Path, name: str, request: dict[str, Any], **kw: Any) -> Role:
    folder = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=parent))
    (folder / "in").mkdir()
    (folder / "out").mkdir()
    return Role(name, folder, request, **kw)


def _bwrap_argv(role: Role) -> list[str]:
    args = [_bwrap() or "bwrap", *_base_args()]
    for h in role.hide:
        h = Path(h)
        if h.exists() and _under_bound(h.resolve()):
            args += ["--tmpfs", str(h.resolve())] if h.is_dir() else ["--ro-bind", "/dev/null", str(h.resolve())]
    for p in role.read_only:
        if Path(p).exists():
            args += ["--ro-bind", str(Path(p).resolve()), str(Path(p).resolve())]
    args += ["--ro-bind", str(role.folder), str(role.folder), "--bind", str(role.out), str(role.out)]
    for p in role.writable:
        Path(p).mkdir(parents=True, exist_ok=True)
        args += ["--bind", str(Path(p).resolve()), str(Path(p).resolve())]
    if role.device.startswith("cuda"):
        for dev in sorted(Path("/dev").glob("nvidia*")):
            args += ["--dev-bind-try", str(dev), str(dev)]
        args += ["--ro-bind-try", "/sys", "/sys"]
    if role.network:  # multi-node training: the host's network namespace and name resolution for the rendezvous
        args += ["--share-net", *(a for f in NETWORK_FILES for a in ("--ro-bind-try", f, f))]
    elif role.processes > 1:  # processes of one node meet on loopback: "localhost" and this host's name resolve to it
        args += _loopback_names(role)
    args += ["--chdir", "/tmp/home"]
    env = _clean_env(threads=role.threads)
    env["PYTHONPATH"] = _python_path()
    for k, v in env.items():
        args += ["--setenv", k, v]
    return args


def _loopback_names(role: Role) -> list[str]:
    """Binds of a hosts file naming only loopback (localhost, this host: torchrun's rendezvous) and nsswitch.conf."""
    hosts, nss = role.folder / "hosts", role.folder / "nsswitch.conf"
    hosts.write_text(f"127.0.0.1 localhost {socket.gethostname()}\n::1 localhost\n", encoding="utf-8")
    nss.write_text("hosts: files\n", encoding="utf-8")
    return ["--ro-bind", str(hosts), "/etc/hosts", "--ro-bind", str(nss), "/etc/nsswitch.conf"]


def launch(role: Role, level: str) -> dict[str, Any]:
    """Run `role` at isolation `level` ("sandbox" or "process"); its parsed response (IsolationError or the
    role's own error re-raised as BenchError when it failed)."""
    (role.folder / "request.json").write_text(json.dumps(role.request), encoding="utf-8")
    launcher = ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={role.processes}"] if role.processes > 1 else []
    cmd = [sys.executable, *launcher, "-m", "benchmark.evaluation.roles", str(role.folder / "request.json")]
    log = open(role.out / LOG, "wb")
    try:
        if level == "sandbox":
            argv = [_bwrap() or "bwrap", "--clearenv", *_bwrap_argv(role)[1:], "--", *cmd]
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=_clean_env())
        else:
            home = role.folder / "home"
            home.mkdir(exist_ok=True)
            env = _clean_env(str(home / "h"), role.threads)
            (home / "h").mkdir(exist_ok=True)
            env["PYTHONPATH"] = _python_path()
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                                    cwd=home / "h", start_new_session=True)
        try:
            rc = proc.wait(timeout=role.timeout)
        except subprocess.TimeoutExpired:
            _kill(proc)
            raise IsolationError(f"{role.name}: the method's {role.request.get('role')} process ran past {role.timeout:.0f} s "
                                 "and was stopped") from None
        except BaseException:
            _kill(proc)
            raise
    finally:
        log.close()
    return read_response(role, rc)


class Zygote:
    """One bubblewrap sandbox holding a process that imported torch, CompressAI and the suite (never a method),
    forking one child per role (benchmark/evaluation/zygote.py). `binds`: (path, writable) the children may be given —
    the scratch folder of the run (its role folders), the weights and training folders."""

    def __init__(self, binds: list[tuple[Path, bool]], hide: list[Path], threads: int | None = None, device: str = "cpu"):
        self.binds = [(Path(p).resolve(), w) for p, w in binds]
        args = [_bwrap() or "bwrap", "--clearenv", *_base_args()]
        for h in hide:
            h = Path(h)
            if h.exists() and _under_bound(h.resolve()):
                args += ["--tmpfs", str(h.resolve())] if h.is_dir() else ["--ro-bind", "/dev/null", str(h.resolve())]
        hidden = [Path(h).resolve() for h in hide]
        for p, writable in binds:
            p = Path(p).resolve()
            if writable:
                p.mkdir(parents=True, exist_ok=True)
            if p.exists():
                args += ["--bind" if writable else "--ro-bind", str(p), str(p)]
            elif any(h == p or h in p.parents for h in hidden):
                args += ["--dir", str(p)]  # not there yet: an empty folder, not the one underneath
        if device.startswith("cuda"):
            for dev in sorted(Path("/dev").glob("nvidia*")):
                args += ["--dev-bind-try", str(dev), str(dev)]
            args += ["--ro-bind-try", "/sys", "/sys"]
        env = _clean_env(threads=threads)
        env["PYTHONPATH"] = _python_path()
        for k, v in env.items():
            args += ["--setenv", k, v]
        args += ["--dir", "/.stage", "--chdir", "/tmp/home", "--", sys.executable, "-m", "benchmark.evaluation.zygote"]
        self._log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
                                     env=_clean_env())

    def serves(self, role: Role) -> bool:
        """Whether every folder `role` reads or writes lies under what this zygote bound (read-only folders under
        any bind, writable ones under a writable bind), and the role needs no network (data-parallel training)."""
        def under(p: Path, writable: bool) -> bool:
            p = Path(p).resolve()
            return any((p == b or b in p.parents) and (w or not writable) for b, w in self.binds)
        # data-parallel: a child's fresh network namespace has loopback down (no rendezvous): a bwrap sandbox of its own
        return not (role.network or role.processes > 1) and under(role.folder, True) and all(under(p, False) for p in role.read_only) and all(under(p, True) for p in role.writable)

    def run(self, role: Role) -> dict[str, Any]:
        # what the child keeps of the zygote's view: its role folder, its read-only and writable folders; the
        # writable binds (scratch folder, training folders) are covered first
        keep = [(str(Path(p).resolve()), False) for p in role.read_only] + [(str(Path(p).resolve()), True) for p in role.writable]
        # what every role reads and the child's private /tmp would cover: a checkout or a virtual environment
        # under /tmp (a fresh clone, CI)
        keep += [(p, False) for p in read_only_paths() if p.startswith("/tmp/")]
        role.request = {**role.request, "_sandbox": {"keep": keep, "hide": [str(b) for b, w in self.binds if w]}}
        (role.folder / "request.json").write_text(json.dumps(role.request), encoding="utf-8")
        (role.out / LOG).touch()
        assert self.proc.stdin is not None and self.proc.stdout is not None
        try:
            self.proc.stdin.write((json.dumps({"request": str(role.folder / "request.json")}) + "\n").encode())
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        except (BrokenPipeError, OSError):
            line = b""
        if not line:
            self._log.seek(0)
            raise IsolationError(f"{role.name}: the sandbox's zygote died: {self._log.read()[-1500:].decode('utf-8', 'replace')}")
        try:
            rc = int(json.loads(line)["rc"])
        except (ValueError, KeyError, TypeError):
            raise IsolationError(f"{role.name}: garbled answer from the sandbox's zygote") from None
        if rc == 70 and "could not set up the role's namespaces" in _log_tail(role):
            raise IsolationError(f"{role.name}: {_log_tail(role)}")
        return read_response(role, rc)

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()  # type: ignore[union-attr]
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                _kill(self.proc)
        self._log.close()

    def __enter__(self) -> "Zygote":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


_ZYGOTES: dict[Any, Zygote] = {}


def shared_zygote(binds: list[tuple[Path, bool]], hide: list[Path], threads: int | None, device: str) -> Zygote:
    """A zygote for these binds, started once per process and reused by every later run with the same binds (the
    main job runs several methods in one worker: they share the imports, never a process that ran method code)."""
    key = (tuple((str(Path(p).resolve()), w) for p, w in binds), tuple(str(h) for h in hide), threads, device)
    z = _ZYGOTES.get(key)
    if z is None or z.proc.poll() is not None:
        for old in _ZYGOTES.values():  # one at a time: a zygote holds torch's memory
            old.close()
        _ZYGOTES.clear()
        z = _ZYGOTES[key] = Zygote(binds, hide, threads, device)
        if len(_ZYGOTES) == 1:
            import atexit

            atexit.register(lambda: [zz.close() for zz in _ZYGOTES.values()])
    return z


def _python_path() -> str:
    """The caller's import path (absolute entries: a plugin module beside the caller's code stays importable)."""
    return os.pathsep.join(p for p in sys.path if p and os.path.isabs(p) and os.path.exists(p))


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL) if proc.pid else None
    except (ProcessLookupError, PermissionError):
        proc.kill()
    proc.wait()


def read_response(role: Role, rc: int) -> dict[str, Any]:
    """The role's response.json (written by benchmark.evaluation.roles), read as untrusted input."""
    from benchmark.errors import BenchError

    path = role.out / RESPONSE
    tail = _log_tail(role)
    if not path.is_file() or path.is_symlink():
        raise IsolationError(f"{role.name}: the method's process exited with code {rc} without a response"
                             + (f"; its output ends with:\n{tail}" if tail else ""))
    if path.stat().st_size > MAX_RESPONSE:
        raise IsolationError(f"{role.name}: response of {path.stat().st_size} bytes is larger than {MAX_RESPONSE}")
    try:
        resp = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise IsolationError(f"{role.name}: unreadable response ({exc})") from exc
    if not isinstance(resp, dict) or not isinstance(resp.get("ok"), bool):
        raise IsolationError(f"{role.name}: malformed response")
    if not resp["ok"]:
        raise BenchError(f"{resp.get('error') or 'failed'}" + (f"\n{tail}" if tail and resp.get("traceback") else ""))
    return resp


def _log_tail(role: Role, n: int = 2000) -> str:
    try:
        data = (role.out / LOG).read_bytes()[-n:]
    except OSError:
        return ""
    return data.decode("utf-8", "replace").strip()
