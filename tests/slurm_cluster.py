"""A one-node Slurm cluster on localhost for tests: munged, slurmctld and slurmd in a temporary folder.

Debian's `slurm-wlm` and `munge` packages (.ci/run installs them). No systemd and no cgroups here, so the
configuration uses proctrack/linuxproc and task/none, runs every daemon as the current user (root in CI),
keeps all state, sockets, logs and the munge key inside the folder, and picks free ports. `start` returns
the environment (SLURM_CONF) under which sbatch/squeue/scancel reach the cluster, or raises
ClusterUnavailable with the reason (a test turns that into a skip with the reason)."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path


class ClusterUnavailable(RuntimeError):
    pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _conf(d: Path, host: str, user: str, cpus: int, mem_mb: int) -> str:
    return "\n".join([
        "ClusterName=benchtest", f"SlurmctldHost={host}", f"SlurmUser={user}", f"SlurmdUser={user}",
        # cred_expire: how long a requeued job waits before it may start again (Slurm's default: 120 s)
        "AuthType=auth/munge", "CredType=cred/munge", f"AuthInfo=socket={d / 'munge.socket'},cred_expire=10",
        "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none", "MpiDefault=none",
        "SelectType=select/cons_tres", "SelectTypeParameters=CR_Core", "SchedulerType=sched/builtin",
        "SlurmdParameters=config_overrides", "ReturnToService=2",
        "JobAcctGatherType=jobacct_gather/none", "AccountingStorageType=accounting_storage/none",
        "JobCompType=jobcomp/none", "SwitchType=switch/none", "LaunchParameters=use_interactive_step",
        f"StateSaveLocation={d / 'state'}", f"SlurmdSpoolDir={d / 'spool'}",
        f"SlurmctldPidFile={d / 'slurmctld.pid'}", f"SlurmdPidFile={d / 'slurmd.pid'}",
        f"SlurmctldLogFile={d / 'slurmctld.log'}", f"SlurmdLogFile={d / 'slurmd.log'}",
        f"SlurmctldPort={_free_port()}", f"SlurmdPort={_free_port()}",
        "SlurmctldTimeout=30", "SlurmdTimeout=30", "InactiveLimit=0", "KillWait=5", "MinJobAge=300",
        f"NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={mem_mb} State=UNKNOWN",
        "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES",
    ]) + "\n"


class Cluster:
    def __init__(self, folder: Path):
        self.dir = Path(folder)
        self.procs: list[subprocess.Popen] = []
        self.env: dict[str, str] = {}

    def start(self, timeout_s: float = 60.0) -> dict[str, str]:
        missing = [b for b in ("munged", "slurmctld", "slurmd", "sbatch", "squeue") if shutil.which(b) is None]
        if missing:
            raise ClusterUnavailable(f"{', '.join(missing)} not installed (apt-get install slurm-wlm munge; .ci/run does)")
        d = self.dir
        for sub in ("state", "spool", "munge"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(d, 0o755)
        os.chmod(d / "munge", 0o700)
        key = d / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        os.chmod(key, 0o400)
        self._run(["munged", "--force", f"--key-file={key}", f"--socket={d / 'munge.socket'}",
                   f"--pid-file={d / 'munge' / 'munged.pid'}", f"--log-file={d / 'munge' / 'munged.log'}",
                   f"--seed-file={d / 'munge' / 'munged.seed'}"], "munged")
        host = socket.gethostname().split(".")[0]
        import getpass

        conf = d / "slurm.conf"
        conf.write_text(_conf(d, host, getpass.getuser(), os.cpu_count() or 1, 2000))
        self.env = {**os.environ, "SLURM_CONF": str(conf)}
        self.procs.append(subprocess.Popen(["slurmctld", "-D", "-i", "-f", str(conf)], env=self.env,
                                           stdout=subprocess.DEVNULL, stderr=open(d / "slurmctld.stderr", "wb")))
        self.procs.append(subprocess.Popen(["slurmd", "-D", "-f", str(conf), "-N", host], env=self.env,
                                           stdout=subprocess.DEVNULL, stderr=open(d / "slurmd.stderr", "wb")))
        self._wait_idle(host, timeout_s)
        return self.env

    def _run(self, cmd: list[str], what: str) -> None:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        if res.returncode != 0:
            raise ClusterUnavailable(f"{what} did not start: {(res.stderr or res.stdout).strip()[-500:]}")

    def _wait_idle(self, host: str, timeout_s: float) -> None:
        t0, last = time.monotonic(), ""
        while time.monotonic() - t0 < timeout_s:
            for p in self.procs:
                if p.poll() is not None:
                    raise ClusterUnavailable(f"a Slurm daemon exited ({p.args[0]}): {self.logs()}")
            res = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], env=self.env, capture_output=True, text=True, timeout=30)
            last = (res.stdout + res.stderr).strip()
            if res.returncode == 0 and last.split() and last.split()[0].rstrip("*") in ("idle", "mixed", "allocated"):
                return
            time.sleep(1)
        raise ClusterUnavailable(f"the node did not become idle in {timeout_s:.0f} s (sinfo: {last!r}); {self.logs()}")

    def logs(self) -> str:
        out = []
        for name in ("slurmctld.log", "slurmd.log", "slurmctld.stderr", "slurmd.stderr"):
            p = self.dir / name
            if p.is_file():
                out.append(f"{name}: " + " | ".join(p.read_text(errors="replace").splitlines()[-5:]))
        return "; ".join(out)

    def stop(self) -> None:
        """Cancel what is left, let srun/slurmstepd finish, stop the daemons, then end every process that still
        runs under this cluster's SLURM_CONF (an srun whose controller went away would wait forever)."""
        if self.env:
            subprocess.run(["scancel", "--user", __import__("getpass").getuser()], env=self.env, capture_output=True, timeout=30)
            t0 = time.monotonic()
            while time.monotonic() - t0 < 30 and self._cluster_pids():
                res = subprocess.run(["squeue", "-h"], env=self.env, capture_output=True, text=True, timeout=30)
                if res.returncode == 0 and not res.stdout.strip() and not self._cluster_pids(steps_only=True):
                    break
                time.sleep(1)
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
        pid = self.dir / "munge" / "munged.pid"
        if pid.is_file():
            try:
                os.kill(int(pid.read_text().strip()), 15)
            except (ValueError, ProcessLookupError):
                pass
        for pid in self._cluster_pids():
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass

    def _cluster_pids(self, steps_only: bool = False) -> list[int]:
        """Processes (not this one, not the daemons) whose environment names this cluster's slurm.conf."""
        if not self.env:
            return []
        tag = f"SLURM_CONF={self.env['SLURM_CONF']}".encode()
        daemons = {p.pid for p in self.procs}
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) in daemons or int(entry.name) == os.getpid():
                continue
            try:
                env = (entry / "environ").read_bytes()
                cmd = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if tag in env.split(b"\0") and (not steps_only or b"srun" in cmd or b"slurmstepd" in cmd):
                found.append(int(entry.name))
        return found
