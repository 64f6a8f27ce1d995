"""How many CPU threads and processes the toolkit uses: the cores free to this process, or what the user says.

Usable cores: those the process may run on (os.sched_getaffinity: taskset, cpusets), at most its cgroup's CPU quota
(a container's --cpus). Free cores: the usable ones less those other processes keep busy, the 1-minute load
average read once when a command starts (before its own work), at least 1.

torch's intra-op threads get the free cores: its threads wait for each other spinning, so with more threads than
free cores a step is many times slower (30x with two threads against one at load 20 on a 2-core machine, issue 28),
with fewer at most proportionally slower. The load is a minute's average and also counts processes waiting on a
disk: whoever knows better says so with --threads N (or DFD_THREADS), and an OMP_NUM_THREADS set in the environment
is taken as theirs. Loader workers (processes that decode) get the free cores too; the pipeline's process pools,
whose processes never wait on each other, the usable cores.
"""
from __future__ import annotations

import logging
import math
import os
from pathlib import Path

log = logging.getLogger(__name__)

ENV = "DFD_THREADS"          # the --threads option's environment variable
OMP = "OMP_NUM_THREADS"      # set in the environment: the user's choice, as OpenMP itself reads it


def _quota() -> float | None:
    """The cgroup v2 CPU quota in cores (cpu.max "QUOTA PERIOD"), None where there is none or it cannot be read."""
    try:
        rel = Path("/proc/self/cgroup").read_text().split("\n")[0].split("::", 1)[-1].strip().lstrip("/")
    except OSError:
        rel = ""
    for folder in dict.fromkeys((Path("/sys/fs/cgroup") / rel, Path("/sys/fs/cgroup"))):
        try:
            quota, period = (folder / "cpu.max").read_text().split()[:2]
        except (OSError, ValueError):
            continue
        return None if quota == "max" else int(quota) / int(period)
    return None


def usable_cores() -> int:
    """The cores this process may run on: its affinity, at most its cgroup's quota (rounded up); at least 1."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    quota = _quota()
    return max(1, min(cores, math.ceil(quota)) if quota else cores)


def _load() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:  # no load average on this system
        return 0.0


def free_cores() -> int:
    """The usable cores less those the 1-minute load average says other processes keep busy; at least 1."""
    usable = usable_cores()
    return max(1, min(usable, usable - round(_load())))


def resolve(threads: int | None = None) -> tuple[int, str]:
    """(torch's intra-op threads, why): `threads` (--threads / DFD_THREADS), else OMP_NUM_THREADS, else the free
    cores (shared by torchrun's local processes)."""
    if threads:
        return int(threads), "--threads"
    omp = os.environ.get(OMP, "").strip()
    if omp.isdigit() and int(omp) > 0:
        return int(omp), OMP
    local = os.environ.get("LOCAL_WORLD_SIZE", "")  # torchrun's processes on this machine
    share = int(local) if local.isdigit() and int(local) > 0 else 1
    return max(1, free_cores() // share), (f"the free cores: {usable_cores()} usable, load {_load():.1f}"
                                          + (f", shared by {share} processes" if share > 1 else ""))


def apply(threads: int | None = None) -> int:
    """Set torch's intra-op threads once for this command (and OMP_NUM_THREADS for the processes it starts)."""
    import torch

    n, why = resolve(threads)
    os.environ[OMP] = str(n)
    torch.set_num_threads(n)
    log.debug("torch uses %d CPU threads (%s)", n, why)
    return n
