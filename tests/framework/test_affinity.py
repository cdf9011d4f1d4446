"""labrpc.affinity.one_cpu: a test's threads on one CPU, claimed so that two runs at a time get
two different CPUs, and nothing pinned where that cannot be done."""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from labrpc.affinity import ONE_CPU_ENV, one_cpu

pytestmark = pytest.mark.skipif(
    not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="needs sched_setaffinity and at least two CPUs")


@pytest.fixture(autouse=True)
def private_claims(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The claims live under a temporary folder of this test, so that a lab test running at the
    same time elsewhere on the machine (which claims CPUs too) cannot change what we see."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.delenv(ONE_CPU_ENV, raising=False)
    yield


def mask_in_new_thread() -> set[int]:
    seen: list[set[int]] = []
    thread = threading.Thread(target=lambda: seen.append(os.sched_getaffinity(0)))
    thread.start()
    thread.join()
    return seen[0]


def test_pins_the_thread_and_the_threads_it_starts_then_restores() -> None:
    before = os.sched_getaffinity(0)
    with one_cpu() as cpu:
        assert cpu in before
        assert os.sched_getaffinity(0) == {cpu}
        assert mask_in_new_thread() == {cpu}
    assert os.sched_getaffinity(0) == before
    assert mask_in_new_thread() == before


def test_runs_at_the_same_time_claim_different_cpus() -> None:
    """Two holders never share a CPU while another is free; with every CPU claimed, the next
    one runs unpinned. (Threads here stand for processes: the claim is a lock on a file opened
    per claim, which conflicts within one process as it does across processes.)"""
    cpus = sorted(os.sched_getaffinity(0))
    got: list[int | None] = []
    release = threading.Event()
    claimed = threading.Semaphore(0)
    masks: list[set[int]] = []

    def holder() -> None:
        with one_cpu() as cpu:
            got.append(cpu)
            masks.append(os.sched_getaffinity(0))
            claimed.release()
            release.wait(10)

    holders = [threading.Thread(target=holder) for _ in range(len(cpus) + 1)]
    for thread in holders:
        thread.start()
        assert claimed.acquire(timeout=10)  # one at a time: each sees the earlier claims
    release.set()
    for thread in holders:
        thread.join(10)
    assert got[:-1] == cpus                  # each CPU once, in order
    assert got[-1] is None                   # more runs than CPUs: the last one is not pinned
    assert masks[-1] == set(cpus)
    with one_cpu() as cpu:                   # released on exit: claimable again
        assert cpu == cpus[0]


def test_off_by_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ONE_CPU_ENV, "0")
    before = os.sched_getaffinity(0)
    with one_cpu() as cpu:
        assert cpu is None
        assert os.sched_getaffinity(0) == before


def test_refused_mask_runs_unpinned(monkeypatch: pytest.MonkeyPatch) -> None:
    """A system that refuses the call (a container's policy) leaves the threads as they were."""
    def refuse(pid: int, mask: set[int]) -> None:
        raise PermissionError("not allowed here")

    before = os.sched_getaffinity(0)
    with monkeypatch.context() as patch:
        patch.setattr(os, "sched_setaffinity", refuse)
        with one_cpu() as cpu:
            assert cpu is None
            assert os.sched_getaffinity(0) == before
    with one_cpu() as cpu:  # and its claim was given back
        assert cpu == min(before)
