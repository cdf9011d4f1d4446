"""Keep a test's threads on one CPU: `with one_cpu() as cpu: ...`.

Why. Every labrpc call hands work from thread to thread (the caller's to the network's to the
server's and back), and the Raft and KV threads wake each other all the time. When the waking
thread and the woken one sit on different cores, the wake-up is an inter-processor interrupt
to a core that may be idle: measured on a small 2-core VM, ~60-70 us against ~5 us for a switch
on the same core. Python runs one thread at a time (the GIL), so a test gains nothing from the
second core and pays that price on every hand-off: "restarts, snapshots, one client (3B)" did
14,720 clerk operations unpinned and 38,955 on one CPU, one after the other on the same machine.

Which CPU. Two tests running at once (`labs test -p 2`, a student's second terminal) must not
share a CPU while another one idles, so a process *claims* its CPU: it holds an advisory lock
on a per-CPU file for as long as it is pinned, and takes the first CPU whose lock is free. When
every allowed CPU is claimed (more runs than CPUs), or the system has no affinity calls (macOS,
Windows), or refuses them, nothing is pinned and the threads run where the scheduler puts them,
as before. `LABRPC_ONE_CPU=0` turns the pinning off (to measure what it changes).

Linux applies an affinity mask to the calling thread; threads it starts afterwards inherit it.
So pin before the cluster's threads start: a thread started earlier keeps its mask.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import IO

__all__ = ["one_cpu", "ONE_CPU_ENV"]

ONE_CPU_ENV = "LABRPC_ONE_CPU"

try:  # advisory file locks: POSIX only
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


def _claim_dir() -> Path:
    """Where the per-CPU lock files live: one folder per user, so users do not share locks."""
    uid = os.getuid() if hasattr(os, "getuid") else 0
    path = Path(tempfile.gettempdir()) / f"raftlabs-cpus-{uid}"
    path.mkdir(mode=0o700, exist_ok=True)
    return path


def _claim(cpus: list[int], stack: ExitStack) -> int | None:
    """The first CPU of `cpus` whose lock this process could take (held until `stack` closes),
    or None when all are taken by other processes."""
    if fcntl is None:
        return None
    folder = _claim_dir()
    for cpu in cpus:
        handle: IO[bytes] = open(folder / f"cpu{cpu}.lock", "ab")  # held while pinned
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        stack.callback(handle.close)  # closing the file releases the lock
        return cpu
    return None


@contextmanager
def one_cpu() -> Iterator[int | None]:
    """Run the calling thread, and the threads it starts inside the block, on one CPU; yield
    that CPU, or None when nothing was pinned (see the module's docstring for when). The
    thread's previous mask is restored on exit."""
    getter = getattr(os, "sched_getaffinity", None)
    setter = getattr(os, "sched_setaffinity", None)
    if getter is None or setter is None or os.environ.get(ONE_CPU_ENV, "1") == "0":
        yield None
        return
    with ExitStack() as stack:
        previous: set[int] = getter(0)
        cpu = _claim(sorted(previous), stack) if len(previous) > 1 else None
        if cpu is not None:
            try:
                setter(0, {cpu})
            except OSError:  # refused (a container's policy, say): run unpinned
                cpu = None
                stack.close()  # and leave the CPU to others
        try:
            yield cpu
        finally:
            if cpu is not None:
                setter(0, previous)
