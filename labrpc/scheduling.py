"""The two kinds of threads the network runs: one timer thread and a pool of handler workers.

Delayed messages wait in the timer's heap, not on a sleeping thread each, so hundreds of calls
in flight cost a heap entry apiece. Handlers run on pool threads because a handler may block
(a KV server waits for Raft) and the caller must still be failed if its server dies meanwhile.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from queue import SimpleQueue
from typing import Any

log = logging.getLogger("labrpc")

__all__ = ["TimerQueue", "WorkerPool"]


class TimerQueue:
    """Runs callbacks at their due time on one thread. Callbacks must be short."""

    def __init__(self, name: str) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._heap: list[tuple[float, int, Callable[..., None], tuple[Any, ...]]] = []
        self._seq = itertools.count()  # tie-breaker: equal due times run in schedule order
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"{name}-timer", daemon=True)
        self._thread.start()

    def schedule(self, delay: float, callback: Callable[..., None], *args: Any) -> None:
        """Run `callback(*args)` after `delay` seconds (dropped silently once closed)."""
        due = time.monotonic() + delay
        with self._cond:
            if self._closed:
                return
            heapq.heappush(self._heap, (due, next(self._seq), callback, args))
            if self._heap[0][0] == due:
                self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed:
                    now = time.monotonic()
                    if self._heap and self._heap[0][0] <= now:
                        break
                    self._cond.wait(self._heap[0][0] - now if self._heap else None)
                if self._closed:
                    return
                _, _, callback, args = heapq.heappop(self._heap)
            try:
                callback(*args)
            except Exception:  # a broken callback must not stop every later timer
                log.exception("labrpc timer callback %r failed", callback)

    def close(self, timeout: float = 2.0) -> None:
        """Stop the thread; pending callbacks are discarded (the network fails their calls)."""
        with self._cond:
            self._closed = True
            self._heap.clear()
            self._cond.notify()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)


_STOP = object()


class WorkerPool:
    """A pool that grows to the largest number of jobs running at once and stops on `close()`.

    Handing a job to an idle worker takes no lock: `_idle` holds one token per worker that has
    finished its job and is waiting (or about to wait) for the next one, and `list.pop()` and
    `list.append()` are atomic. Only starting a thread and closing take `_lock`.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._jobs: SimpleQueue[Any] = SimpleQueue()
        self._lock = threading.Lock()
        self._idle: list[None] = []  # a token per worker waiting for a job and not yet promised one
        self._threads: list[threading.Thread] = []
        self._closed = False

    def submit(self, job: Callable[[Any], Callable[[], None] | None], arg: Any) -> None:
        """Run `job(arg)` on a pool thread, starting a new one when none is idle. If the job
        returns a callable, the thread calls it after counting itself idle; it must not block.

        A job submitted before `close()` runs. One that races `close()` either runs, or raises
        `RuntimeError`, or is dropped without running (its submitter must not wait for it: the
        network fails such calls itself when it shuts down).
        """
        if self._closed:
            raise RuntimeError("worker pool is closed")
        try:
            self._idle.pop()  # that worker is now promised this job
        except IndexError:
            self._start_worker(job, arg)
            return
        self._jobs.put((job, arg))

    def _start_worker(self, job: Callable[[Any], Callable[[], None] | None], arg: Any) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError("worker pool is closed")
            # Queue the job and start its worker before close() can look: close() must neither
            # join a thread not yet started nor queue a worker's stop ahead of this job.
            self._jobs.put((job, arg))
            thread = threading.Thread(
                target=self._work, name=f"{self._name}-worker-{len(self._threads)}", daemon=True,
            )
            self._threads.append(thread)
            thread.start()

    def _work(self) -> None:
        get, idle = self._jobs.get, self._idle
        while True:
            item = get()
            if item is _STOP:
                return
            job, arg = item
            try:
                follow_up = job(arg)
            except Exception:
                log.exception("labrpc worker job %r failed", job)
                follow_up = None
            idle.append(None)
            if follow_up is not None:
                # A job may hand back one last non-blocking step (waking its caller) to run
                # right before this thread waits again, so the woken caller finds it idle.
                try:
                    follow_up()
                except Exception:  # the thread has counted itself idle: it must live on
                    log.exception("labrpc worker follow-up %r failed", follow_up)

    def close(self, timeout: float = 2.0) -> list[threading.Thread]:
        """Stop idle workers; return the threads still busy in a job after `timeout`."""
        with self._lock:
            self._closed = True
            threads = list(self._threads)
        for _ in threads:
            self._jobs.put(_STOP)
        deadline = time.monotonic() + timeout
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))
        return [t for t in threads if t.is_alive()]
