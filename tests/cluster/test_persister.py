"""cluster.persister.FilePersister: the Persister protocol on disk, and durability under kill -9
at random points of a stream of saves."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from cluster.persister import STATE_FILE, FilePersister, PersisterCorrupt
from raft.persister import Persister

KILL_ROUNDS = 25

# The writer: from the state it finds, saves state k+1, k+2, ... (large, so that a kill often
# lands inside a write), each save followed by "k" on stdout once it returned (acknowledged).
# Even k save state and snapshot together; odd k only the state (keeping the snapshot of k-1).
WRITER = textwrap.dedent("""
    import sys
    from cluster.persister import FilePersister
    sys.path.insert(0, sys.argv[2])
    from test_persister import snapshot_of, state_of, number_of
    p = FilePersister(sys.argv[1])
    k = number_of(p.raft_state())
    while True:
        k += 1
        if k % 2 == 0:
            p.save_state_and_snapshot(state_of(k), snapshot_of(k))
        else:
            p.save_raft_state(state_of(k))
        print(k, flush=True)
""")


def state_of(k: int) -> bytes:
    return f"state {k};".encode() * (2000 + 997 * k % 20000)


def snapshot_of(k: int) -> bytes:
    return f"snapshot {k};".encode() * (1000 + 1531 * k % 30000)


def number_of(state: bytes) -> int:
    return int(state.split(b";", 1)[0].split()[1]) if state else 0


def test_it_is_a_persister_and_round_trips(tmp_path: Path):
    p = FilePersister(tmp_path)
    assert isinstance(p, Persister)
    assert (p.raft_state(), p.snapshot()) == (b"", b"")
    assert (p.raft_state_size(), p.snapshot_size()) == (0, 0)
    p.save_state_and_snapshot(b"state-1", b"snap-1")
    p.save_raft_state(b"state-2")
    assert (p.raft_state(), p.snapshot()) == (b"state-2", b"snap-1")
    again = FilePersister(tmp_path)
    assert (again.raft_state(), again.snapshot()) == (b"state-2", b"snap-1")
    assert (again.raft_state_size(), again.snapshot_size()) == (7, 6)


def test_a_damaged_file_is_refused_with_the_reason(tmp_path: Path):
    FilePersister(tmp_path).save_state_and_snapshot(b"state", b"snapshot")
    path = tmp_path / STATE_FILE
    data = path.read_bytes()
    path.write_bytes(data[:-3])
    with pytest.raises(PersisterCorrupt, match="the header says"):
        FilePersister(tmp_path)
    path.write_bytes(data[:-1] + b"X")
    with pytest.raises(PersisterCorrupt, match="checksum"):
        FilePersister(tmp_path)
    path.write_bytes(b"garbage")
    with pytest.raises(PersisterCorrupt, match="bad magic"):
        FilePersister(tmp_path)


def test_a_temporary_file_of_an_interrupted_save_is_ignored_and_removed(tmp_path: Path):
    FilePersister(tmp_path).save_raft_state(b"kept")
    leftover = tmp_path / f"{STATE_FILE}.123.456.tmp"
    leftover.write_bytes(b"half a state")
    assert FilePersister(tmp_path).raft_state() == b"kept"
    assert not leftover.exists()


def test_kill_9_at_random_points_leaves_the_acknowledged_state_or_the_next(tmp_path: Path):
    rng = random.Random(14)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[2]),
                                         env.get("PYTHONPATH", "")])
    data = tmp_path / "data"
    killed_mid_stream = 0
    for _ in range(KILL_ROUNDS):
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(data), str(Path(__file__).parent)],
            stdout=subprocess.PIPE, env=env, text=True)
        try:
            acknowledged = number_of(FilePersister(data).raft_state()) if data.exists() else 0
            first = writer.stdout.readline()  # the writer is running and has saved once
            assert first, "the writer died before its first save"
            acknowledged = int(first)
            time.sleep(rng.uniform(0, 0.05))
        finally:
            writer.send_signal(signal.SIGKILL)
            rest, _ = writer.communicate()
        lines = rest.split()
        if lines:
            acknowledged = int(lines[-1])
        killed_mid_stream += 1
        p = FilePersister(data)  # raises PersisterCorrupt on a torn file
        k = number_of(p.raft_state())
        assert k in (acknowledged, acknowledged + 1), (
            f"after kill -9: state {k} on disk, {acknowledged} was acknowledged")
        assert p.raft_state() == state_of(k)
        assert p.snapshot() == (b"" if k == 1 else snapshot_of(k if k % 2 == 0 else k - 1))
    assert killed_mid_stream == KILL_ROUNDS
