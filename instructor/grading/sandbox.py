"""Running one graded process under limits, so that whatever it does costs only that run.

* wall time: past `timeout` the process group is killed (SIGKILL) and the run fails;
* memory: RLIMIT_AS in the child (address space, not resident memory: Python reserves 8 MiB of
  address space per thread stack and up to 64 MiB per malloc arena, so the limit is generous and
  MALLOC_ARENA_MAX keeps the arenas few); core dumps off; files the process writes are capped;
* output: stdout and stderr share one pipe, read as it comes; the first and last
  `kept_bytes / 2` are kept for the log, and past `max_output_bytes` the run is killed;
* processes: the child leads a new session and process group, and the whole group is killed when
  the run ends, however it ends. A descendant that escapes the group (setsid, double fork) is
  still found: on Linux the grader makes itself a "child subreaper", so orphans are re-parented
  to it instead of to init, and after every run it kills the children it did not start.

Each limit turns into a reason in the result; the caller decides what a run's outcome is.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import pwd
import resource
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["HeadTail", "Limits", "ProcessResult", "child_subreaper", "run_limited"]

EXIT_GRACE = 2.0           # after the process exits, wait this long for its pipes to close
POLL_INTERVAL = 0.1
CHANNEL_MAX_BYTES = 1 << 20
PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37


@dataclass(frozen=True)
class Limits:
    timeout: float = 150.0                 # seconds of wall time
    memory_bytes: int = 2 << 30            # RLIMIT_AS
    max_output_bytes: int = 64 << 20       # more output than this kills the run
    kept_bytes: int = 256 << 10            # output kept for the log: head and tail halves
    file_bytes: int = 1 << 30              # RLIMIT_FSIZE: largest file the run may write
    processes: int | None = None           # RLIMIT_NPROC, only when the run has its own user


class HeadTail:
    """The first and last `limit / 2` bytes of a stream, and how much was dropped between."""

    def __init__(self, limit: int) -> None:
        self.half = max(1, limit // 2)
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def add(self, data: bytes) -> None:
        self.total += len(data)
        room = self.half - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if data:
            self.tail += data
            if len(self.tail) > self.half:
                del self.tail[: len(self.tail) - self.half]

    def text(self) -> str:
        dropped = self.total - len(self.head) - len(self.tail)
        middle = (f"\n\n[... {dropped} bytes of output not kept ...]\n\n".encode() if dropped
                  else b"")
        return bytes(self.head + middle + self.tail).decode(errors="replace")


@dataclass
class ProcessResult:
    returncode: int | None
    seconds: float
    output: HeadTail
    channel: bytes = b""
    timed_out: bool = False
    flooded: bool = False
    channel_overflow: bool = False
    stray_processes: int = 0               # descendants still alive when the run ended
    notes: list[str] = field(default_factory=list)

    @property
    def signal_name(self) -> str | None:
        if self.returncode is None or self.returncode >= 0:
            return None
        try:
            return signal.Signals(-self.returncode).name
        except ValueError:
            return f"signal {-self.returncode}"


# --- the subreaper --------------------------------------------------------------------------------

class _Reaper:
    """Orphans of graded runs, re-parented to this process, are killed and reaped here."""

    def __init__(self) -> None:
        self.lock = threading.Lock()   # held while starting a run, and while sweeping
        self.running: set[int] = set()
        self.active = False

    def sweep(self) -> int:
        """Kill and reap every child of ours that is not a run in progress; return how many."""
        if not self.active:
            return 0
        killed = 0
        with self.lock:
            for _ in range(20):  # killing a process may orphan its children onto us: repeat
                strays = [pid for pid in _children_of(os.getpid()) if pid not in self.running]
                if not strays:
                    break
                for pid in strays:
                    try:
                        os.kill(pid, signal.SIGKILL)
                        killed += 1
                    except ProcessLookupError:
                        pass
                for pid in strays:
                    try:
                        os.waitpid(pid, 0)
                    except ChildProcessError:
                        pass
        return killed


_reaper = _Reaper()


def _children_of(parent: int) -> list[int]:
    children: list[int] = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return children
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # pid (comm) state ppid ...; comm may hold spaces and parentheses: split after the last ')'
        fields = stat[stat.rfind(b")") + 2:].split()
        if len(fields) > 1 and int(fields[1]) == parent:
            children.append(int(entry))
    return children


def _prctl(option: int, value: int = 0) -> int | None:
    libc_name = ctypes.util.find_library("c")
    if not libc_name or not os.path.isdir("/proc"):
        return None
    try:
        libc = ctypes.CDLL(libc_name, use_errno=True)
        if option == PR_GET_CHILD_SUBREAPER:
            out = ctypes.c_int(0)
            return out.value if libc.prctl(option, ctypes.byref(out), 0, 0, 0) == 0 else None
        return libc.prctl(option, value, 0, 0, 0)
    except (OSError, AttributeError):
        return None


@contextmanager
def child_subreaper() -> Iterator[bool]:
    """While inside, orphaned descendants of our runs become our children (Linux); yields
    whether that is in effect. The previous setting is restored on exit."""
    before = _prctl(PR_GET_CHILD_SUBREAPER)
    active = before is not None and _prctl(PR_SET_CHILD_SUBREAPER, 1) == 0
    _reaper.active = active
    try:
        yield active
    finally:
        _reaper.sweep()
        _reaper.active = False
        if active:
            _prctl(PR_SET_CHILD_SUBREAPER, before or 0)


# --- one run --------------------------------------------------------------------------------------

def _limit_child(limits: Limits) -> None:
    """preexec_fn: only calls into the already-imported resource module (safe after fork)."""
    resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_bytes, limits.file_bytes))
    if limits.processes is not None:
        resource.setrlimit(resource.RLIMIT_NPROC, (limits.processes, limits.processes))


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def run_limited(argv: Sequence[str], *, cwd: Path, env: dict[str, str], limits: Limits,
                pass_fds: Sequence[int] = (), channel_fd: int | None = None,
                user: str | None = None) -> ProcessResult:
    """Run `argv` under `limits`. The fds in `pass_fds` go to the child and are closed here once
    it has started; `channel_fd` (the read end of a pipe whose write end is among them) is read
    alongside the output, up to CHANNEL_MAX_BYTES."""
    output = HeadTail(limits.kept_bytes)
    channel = bytearray()
    result = ProcessResult(returncode=None, seconds=0.0, output=output)
    kwargs: dict[str, Any] = {}
    if user is not None:
        kwargs.update(user=user, group=_group_of(user), extra_groups=[])
    start = time.monotonic()
    with _reaper.lock:
        process = subprocess.Popen(
            list(argv), cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, pass_fds=tuple(pass_fds), start_new_session=True,
            preexec_fn=lambda: _limit_child(limits), **kwargs)
        _reaper.running.add(process.pid)
    for fd in pass_fds:
        os.close(fd)
    pgid = process.pid  # start_new_session: the child leads its own group
    selector = selectors.DefaultSelector()
    assert process.stdout is not None
    selector.register(process.stdout.fileno(), selectors.EVENT_READ, "output")
    if channel_fd is not None:
        selector.register(channel_fd, selectors.EVENT_READ, "channel")
    exited_at = None
    try:
        while True:
            now = time.monotonic()
            if now - start > limits.timeout:
                result.timed_out = True
                break
            if exited_at is None and process.poll() is not None:
                exited_at = now
            if exited_at is not None and (not selector.get_map() or now - exited_at > EXIT_GRACE):
                break
            for key, _ in selector.select(timeout=POLL_INTERVAL):
                data = os.read(key.fd, 1 << 16)
                if not data:
                    selector.unregister(key.fd)
                elif key.data == "output":
                    output.add(data)
                elif len(channel) + len(data) <= CHANNEL_MAX_BYTES:
                    channel += data
                else:
                    result.channel_overflow = True
            if output.total > limits.max_output_bytes:
                result.flooded = True
                break
    finally:
        selector.close()
        # However the run ended, nothing it started may outlive it.
        exited = process.poll() is not None  # reaps the leader, so the group is only the rest
        result.stray_processes = int(exited and _group_alive(pgid))
        _kill_group(pgid)
        process.wait()
        with _reaper.lock:
            _reaper.running.discard(process.pid)
        result.stray_processes += _reaper.sweep()
        process.stdout.close()
    result.seconds = time.monotonic() - start
    result.returncode = process.returncode
    result.channel = bytes(channel)
    return result


def _group_of(user: str) -> int:
    return pwd.getpwnam(user).pw_gid
