"""Facts about the machine a benchmark ran on, for the header of every table."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return None


def machine() -> dict:
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "ram_gib": _ram_gib(),
        "os": platform.platform(),
    }


def load() -> list[float]:
    """Load average over 1, 5 and 15 minutes: how much else ran on the machine."""
    return [round(x, 2) for x in os.getloadavg()]


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and all its descendants still alive, from /proc."""
    todo, seen, ticks = [pid], set(), 0
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
            for tid in os.listdir(f"/proc/{p}/task"):
                todo += [int(c) for c in Path(f"/proc/{p}/task/{tid}/children").read_text().split()]
        except (OSError, IndexError):
            continue
    return ticks / os.sysconf("SC_CLK_TCK")


def source(root: Path) -> dict:
    """Which checkout ``ours`` was installed from (editable: the working tree as it is)."""
    try:

        def git(*args: str) -> str:
            return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=True).stdout

        return {"commit": git("rev-parse", "--short", "HEAD").strip(),
                "modified": bool(git("status", "--porcelain", "--", "packages").strip())}  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return {"commit": "unknown", "modified": None}
