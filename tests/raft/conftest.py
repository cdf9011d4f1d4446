"""Fixtures and hooks of the Raft tests (lab 2).

* `make_config(servers, unreliable=False, snapshot=False)` builds the cluster of a test and
  tears it down afterwards: every peer killed, the network shut down, and any thread the test
  started still alive 2 s later fails the test, by name.
* Every test here gets a pytest-timeout watchdog a little past the 120 s limit; when it fires,
  pytest-timeout dumps the stack of every live thread and fails the test.
* Summary lines ("Test (2A): initial election ... Passed -- ...") go through the terminal
  reporter, so they show in plain `make test_2a` output despite output capture.
"""

from __future__ import annotations

import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Callable

import pytest

from raft_harness import WATCHDOG_SECONDS, Config

THREAD_EXIT_GRACE = 2.0   # threads of a test must be gone this long after teardown
THREAD_EXIT_POLL = 0.050
LEAKED_STACK_FRAMES = 4   # innermost frames shown for each thread that did not exit

_RAFT_TESTS = Path(__file__).resolve().parent
_call_report = pytest.StashKey[pytest.TestReport]()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _RAFT_TESTS in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.lab)
            item.add_marker(pytest.mark.timeout(WATCHDOG_SECONDS))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if report.when == "call":
        item.stash[_call_report] = report
    return report


@pytest.fixture
def make_config(request: pytest.FixtureRequest) -> Callable[..., Config]:
    """`cfg = make_config(5, unreliable=True)`: a started, fully connected cluster."""
    reporter = request.config.pluginmanager.getplugin("terminalreporter")

    def report(line: str) -> None:
        if reporter is not None:
            reporter.write_line(line)
        else:
            print(line, file=sys.__stdout__, flush=True)

    threads_before = set(threading.enumerate())
    configs: list[Config] = []

    def make(servers: int, unreliable: bool = False, snapshot: bool = False) -> Config:
        cfg = Config(servers, unreliable=unreliable, snapshot=snapshot, report=report)
        configs.append(cfg)
        return cfg

    yield make

    call = request.node.stash.get(_call_report, None)
    passed = call is not None and call.passed
    problems = []
    for cfg in configs:
        problems += cfg.cleanup(check_time_limit=passed)
    leaked = _threads_still_running(threads_before)
    if leaked:
        problems.append(f"{len(leaked)} thread(s) still running {THREAD_EXIT_GRACE:.0f} s after "
                        "teardown:\n" + "\n".join(_describe(t) for t in leaked))
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


def _threads_still_running(threads_before: set[threading.Thread]) -> list[threading.Thread]:
    deadline = time.monotonic() + THREAD_EXIT_GRACE
    while True:
        leaked = [t for t in threading.enumerate() if t not in threads_before and t.is_alive()]
        if not leaked or time.monotonic() >= deadline:
            return leaked
        time.sleep(THREAD_EXIT_POLL)


def _describe(thread: threading.Thread) -> str:
    frame = sys._current_frames().get(thread.ident)
    if frame is None:
        return f"  {thread.name}"
    frames = [f for f in traceback.extract_stack(frame) if f.filename != threading.__file__]
    stack = traceback.format_list(frames[-LEAKED_STACK_FRAMES:] or traceback.extract_stack(frame))
    return f"  {thread.name}, at:\n" + "".join("    " + line.replace("\n", "\n    ").rstrip() + "\n"
                                              for line in stack).rstrip()
