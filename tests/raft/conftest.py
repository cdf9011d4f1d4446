"""Fixtures of the Raft tests (lab 2).

`make_config(servers, unreliable=False, snapshot=False)` builds the cluster of a test. The lab
harness (tests/lab_harness.py) does the rest: it tears the cluster down after the test (every
peer killed, the network shut down; a thread the test started still alive 2 s later fails the
test, by name), gives the test a pytest-timeout watchdog a little past the 120 s limit, and
prints the summary lines ("Test (2A): initial election ... Passed -- ...") through the terminal
reporter, so they show in plain `make test_2a` output despite output capture.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from lab_harness import ClusterRegistry
    from raft_harness import Config


@pytest.fixture
def make_config(lab_clusters: ClusterRegistry) -> Callable[..., Config]:
    """`cfg = make_config(5, unreliable=True)`: a started, fully connected cluster."""
    # Imported here, not at the top: a pytest that runs no test itself (xdist's controller under
    # `make test_2a`) then never loads the harness, Raft and its compiled messages.
    from raft_harness import Config

    def make(servers: int, unreliable: bool = False, snapshot: bool = False) -> Config:
        cfg = Config(servers, unreliable=unreliable, snapshot=snapshot, report=lab_clusters.report)
        lab_clusters.track(cfg)
        return cfg

    return make
