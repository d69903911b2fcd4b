"""What the benchmarks ran on: CPU, memory, OS, interpreter, package versions, commit."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["describe_machine", "load_average"]

PACKAGES = ("triostream", "trio", "httpx", "httpcore", "msgspec", "anthropic", "httpx2", "jiter")
_ROOT = Path(__file__).resolve().parent.parent


def _run(*command: str) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=10, cwd=_ROOT)
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def _cpu() -> dict[str, str]:
    fields = {}
    for line in _run("lscpu").splitlines():
        name, _, value = line.partition(":")
        if name.strip() in ("Model name", "CPU(s)", "Thread(s) per core", "CPU max MHz"):
            fields[name.strip()] = value.strip()
        if name.strip() == "Hypervisor vendor":
            fields["Hypervisor"] = value.strip()
    if "Model name" not in fields:
        fields["Model name"] = platform.processor() or "unknown"
    return fields


def _memory() -> str:
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    return f"{int(line.split()[1]) / (1 << 20):.1f} GiB"
    except OSError:
        pass
    return "unknown"


def _version(package: str) -> str:
    if package == "triostream":
        import triostream

        return triostream.__version__
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def load_average() -> str:
    """The 1/5/15-minute load averages, as ``a / b / c``."""
    try:
        return " / ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def describe_machine() -> dict[str, Any]:
    """Everything the report says about where and when it was measured."""
    commit = _run("git", "rev-parse", "--short", "HEAD")
    dirty = bool(_run("git", "status", "--porcelain", "--untracked-files=no", "--", "src"))
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": _cpu(),
        "cores": os.cpu_count(),
        "memory": _memory(),
        "os": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "packages": {p: _version(p) for p in PACKAGES},
        "commit": (commit + (" + uncommitted changes in src/" if dirty else "")) or "unknown",
        "load_at_start": load_average(),
    }
