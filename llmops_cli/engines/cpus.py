"""How many CPUs this process may really use, and thread settings that survive a shared machine.

``os.cpu_count()`` counts the machine's CPUs, not the ones this process may run on: a container
limited by a cgroup quota, a CI job pinned with ``taskset``, or a worker that shares the machine
with other workers would start one busy thread per machine CPU and spend its time fighting them
for cores. :func:`usable_cpus` reads the affinity mask and the cgroup (v2 ``cpu.max``, v1
``cpu.cfs_quota_us``) quota; :func:`thread_budget` splits that budget between workers.

:func:`configure_torch_threads` applies it to torch once per process: intra-op threads from the
budget (``LLMOPS_THREADS`` overrides), one inter-op thread, and OpenMP told not to spin while it
waits (``OMP_WAIT_POLICY=PASSIVE``; only effective before torch loads its OpenMP runtime, which is
why providers call it before importing torch). An OpenMP team that spin-waits at every barrier
is what made generation 17x slower under a load average of 6 on 2 cores: a descheduled thread
holds up the others while they burn the remaining CPU.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
from pathlib import Path

THREADS_ENV = "LLMOPS_THREADS"
_CGROUP_ROOT = Path("/sys/fs/cgroup")
_configured = threading.Lock()
_torch_threads: int | None = None


def usable_cpus(cgroup_root: Path = _CGROUP_ROOT) -> int:
    """CPUs this process may use: the affinity mask, capped by a cgroup CPU quota; at least 1."""
    try:
        count = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        count = os.cpu_count() or 1
    quota = cgroup_cpu_quota(cgroup_root)
    if quota is not None:
        count = min(count, max(1, math.ceil(quota)))
    return max(1, count)


def cgroup_cpu_quota(root: Path = _CGROUP_ROOT) -> float | None:
    """The CPU quota in CPUs (e.g. 1.5) set on this process's cgroup, or None when unlimited/unknown."""
    v2 = _read(root / "cpu.max")
    if v2:
        parts = v2.split()
        if len(parts) == 2 and parts[0] != "max":
            try:
                return int(parts[0]) / int(parts[1])
            except (ValueError, ZeroDivisionError):
                return None
        return None
    quota, period = _read(root / "cpu" / "cpu.cfs_quota_us"), _read(root / "cpu" / "cpu.cfs_period_us")
    if quota and period:
        try:
            q, p = int(quota), int(period)
        except ValueError:
            return None
        return q / p if q > 0 and p > 0 else None
    return None


def thread_budget(workers: int = 1, *, cpus: int | None = None) -> int:
    """Threads for each of ``workers`` that share this process's CPUs (``LLMOPS_THREADS`` wins)."""
    override = os.environ.get(THREADS_ENV, "").strip()
    if override.isdigit() and int(override) > 0:
        return int(override)
    total = cpus if cpus is not None else usable_cpus()
    return max(1, total // max(1, workers))


def configure_torch_threads(threads: int | None = None) -> int:
    """Set torch's thread pools once for this process (before the first torch op); returns the count.

    Respects what the user set: ``OMP_NUM_THREADS`` (as ``make test`` does for its workers) wins over
    our budget, and so does ``LLMOPS_THREADS``.
    """
    global _torch_threads
    with _configured:
        if _torch_threads is not None:
            return _torch_threads
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        omp = os.environ.get("OMP_NUM_THREADS", "").strip()
        if threads is None:
            threads = int(omp) if omp.isdigit() and int(omp) > 0 else thread_budget()
        import torch

        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        with contextlib.suppress(RuntimeError):  # already set, or inter-op work already ran here
            torch.set_num_interop_threads(1)
        _torch_threads = threads
        return threads


def cpu_has_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX-BF16; Linux x86)."""
    text = _read(cpuinfo) or ""
    for line in text.splitlines():
        if line.startswith("flags"):
            flags = set(line.partition(":")[2].split())
            return bool(flags & {"avx512_bf16", "amx_bf16"})
    return False


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
