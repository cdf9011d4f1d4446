"""Fixtures of the KV service tests (lab 3).

`make_config(servers, unreliable=False, maxraftstate=None)` builds the service of a test. The lab
harness (tests/lab_harness.py) does the rest: it tears the service down after the test (every
server killed, the network shut down, clerks still retrying stopped; a thread the test started
still alive 2 s later fails the test, by name), gives the test a pytest-timeout watchdog a
little past the 120 s limit, and prints the summary lines through the terminal reporter.
A history found not linearizable is drawn in test-failures/ under the rootdir.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from kv_harness import Config
    from lab_harness import ClusterRegistry


@pytest.fixture
def make_config(request: pytest.FixtureRequest,
                lab_clusters: ClusterRegistry) -> Callable[..., Config]:
    """`cfg = make_config(5, unreliable=True, maxraftstate=1000)`: a started, fully connected
    service (maxraftstate None: the servers must not snapshot)."""
    # Imported here, not at the top: a pytest that runs no test itself (xdist's controller under
    # `make test_3a`) then never loads the harness, the KV service and Raft.
    from kv_harness import FAILURE_DIR, Config

    def make(servers: int, unreliable: bool = False, maxraftstate: int | None = None) -> Config:
        cfg = Config(servers, unreliable=unreliable, maxraftstate=maxraftstate,
                     report=lab_clusters.report,
                     failure_dir=request.config.rootpath / FAILURE_DIR,
                     test_name=request.node.name)
        lab_clusters.track(cfg)
        return cfg

    return make
