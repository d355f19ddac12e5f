"""What produced a result: package versions, device, git commit, command line."""
from __future__ import annotations

import platform
import shlex
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

_PACKAGES = ("dsc-bench", "torch", "torchvision", "compressai", "numpy", "pillow", "pytorch-msssim", "constriction", "scikit-image", "scikit-learn")


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def git_commit() -> str | None:
    repo = Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=5)
        if sha.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo, capture_output=True, text=True, timeout=5)
        return sha.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def git_diff_sha256() -> str | None:
    """sha256 of the uncommitted changes to tracked files (`git diff HEAD --binary`) when the checkout is dirty: what
    a result made from a dirty tree ran, beyond its commit. None for a clean checkout or outside git."""
    import hashlib

    repo = Path(__file__).resolve().parents[2]
    try:
        diff = subprocess.run(["git", "diff", "HEAD", "--binary"], cwd=repo, capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return hashlib.sha256(diff.stdout).hexdigest() if diff.returncode == 0 and diff.stdout else None


def device_name(device: str) -> str:
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        return f"{device} ({torch.cuda.get_device_name(0)})"
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def environment(device: str = "cpu") -> dict[str, Any]:
    return {
        "versions": package_versions(),
        "device": device_name(device),
        "git_commit": git_commit(),
        "git_diff_sha256": git_diff_sha256(),
        "command": " ".join(shlex.quote(a) for a in (["bench"] + sys.argv[1:] if Path(sys.argv[0]).name == "bench" else sys.argv)),
        "platform": platform.platform(),
    }
