"""How much CPU the graded runs can really use.

The lab tests are timed (elections within a second or two, agreement within ten): a Raft that is
correct can fail them on a starved machine. The grader measures what it may use and says so in
the report when it is below MIN_CPUS per parallel run.

Measured as the smallest of: the CPUs this process may run on (sched_getaffinity, else
os.cpu_count) and the CFS quota of its cgroup (v2 `cpu.max` up the hierarchy, or v1
`cpu.cfs_quota_us / cpu.cfs_period_us`), which is how containers (Gradescope's 0.5 vCPU default,
for one) are limited.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["MIN_CPUS", "CpuBudget", "usable_cpus", "parse_cpu_max", "cpu_warning"]

MIN_CPUS = 2.0
CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class CpuBudget:
    cpus: float
    how: str  # what limited it, for the report


def parse_cpu_max(text: str) -> float | None:
    """CPUs allowed by a cgroup v2 `cpu.max` line ("max 100000" or "50000 100000")."""
    fields = text.split()
    if len(fields) != 2 or fields[0] == "max":
        return None
    try:
        quota, period = int(fields[0]), int(fields[1])
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def _cgroup_quota(cgroup_root: Path, proc_cgroup: Path) -> tuple[float, str] | None:
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        lines = []
    best: tuple[float, str] | None = None

    def consider(cpus: float | None, where: str) -> None:
        nonlocal best
        if cpus is not None and (best is None or cpus < best[0]):
            best = (cpus, where)

    for line in lines:
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hierarchy == "0" and controllers == "":  # cgroup v2: check every level up to the root
            directory = cgroup_root / path.lstrip("/")
            while True:
                cpu_max = directory / "cpu.max"
                if cpu_max.is_file():
                    consider(parse_cpu_max(cpu_max.read_text()), f"cgroup {cpu_max}")
                if directory == cgroup_root or cgroup_root not in directory.parents:
                    break
                directory = directory.parent
        elif "cpu" in controllers.split(","):  # cgroup v1
            for mount in ("cpu", "cpu,cpuacct", "cpuacct,cpu"):
                for directory in (cgroup_root / mount / path.lstrip("/"), cgroup_root / mount):
                    try:
                        quota = int((directory / "cpu.cfs_quota_us").read_text())
                        period = int((directory / "cpu.cfs_period_us").read_text())
                    except (OSError, ValueError):
                        continue
                    if quota > 0 and period > 0:
                        consider(quota / period, f"cgroup {directory}/cpu.cfs_quota_us")
    return best


def usable_cpus(cgroup_root: Path = CGROUP_ROOT,
                proc_cgroup: Path = Path("/proc/self/cgroup")) -> CpuBudget:
    try:
        cpus, how = float(len(os.sched_getaffinity(0))), "CPU affinity"
    except (AttributeError, OSError):
        cpus, how = float(os.cpu_count() or 1), "os.cpu_count()"
    quota = _cgroup_quota(cgroup_root, proc_cgroup)
    if quota is not None and quota[0] < cpus:
        cpus, how = quota
    return CpuBudget(cpus, how)


def cpu_warning(budget: CpuBudget, jobs: int) -> str | None:
    """A warning for the report when each parallel run gets less than MIN_CPUS, else None."""
    per_run = budget.cpus / max(1, jobs)
    if per_run >= MIN_CPUS:
        return None
    share = f" shared by {jobs} parallel runs" if jobs > 1 else ""
    return (f"WARNING: the grader may use {budget.cpus:g} CPU(s) ({budget.how}){share}; the timed "
            f"lab tests need {MIN_CPUS:g} per run, so correct solutions may fail here.")
