"""One server of a real cluster: the student's Raft (lab 2) or KV server (lab 3) in its own OS
process, serving gRPC, persisting to disk.

    python -m cluster.node --id 0 --cluster-file DIR/cluster --dir DIR/node-0 --lab 3

`labs cluster start` runs these for you; run one by hand to spread a cluster over machines (the
same cluster file, one `host:port` line per server, on each). The node builds exactly what the
lab tests build — `Node(Raft(peers, me, persister, apply_ch))` or `KvServer(peers, me,
persister, maxraftstate)` — with gRPC ends instead of labrpc's and a `FilePersister`.

Fault rules (partitions, an unreliable network) come from `--faults FILE`, a JSON file the
controller rewrites; the node rereads it every FAULT_POLL_INTERVAL, so a paused or restarted
node picks up the rules in force. With `--exit-with-stdin` the node exits as soon as its standard
input closes: the controller holds the other end, so when the controller dies, however it
dies, its nodes die with it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from cluster.clusterpb import AdminService, StatusReply, StatusRequest
from cluster.persister import FilePersister
from cluster.progress import Progress
from cluster.transport import (
    DEFAULT_DEADLINE,
    FaultInterceptor,
    FaultRules,
    GrpcEnd,
    GrpcServer,
    as_client_end,
    connect,
)
from labdebug.logsetup import configure_logging

if TYPE_CHECKING:
    from kvraft.server import KvServer
    from kvraft.server import Node as KvNode
    from labrpc.service import Service
    from proto.raftpb import RaftClient
    from raft.persister import Persister
    from raft.raft import State

__all__ = ["main", "read_cluster_file", "RAFT_DEADLINE", "DEFAULT_MAXRAFTSTATE"]

log = logging.getLogger("cluster.node")

FAULT_POLL_INTERVAL = 0.05
# Raft's calls get a shorter deadline than a clerk's: a follower's reply takes a lock and a
# disk write, and a leader waiting on a paused follower should retry within a heartbeat or so.
RAFT_DEADLINE = 1.0
# Lab 3: snapshot once the Raft state reaches this many bytes (the lab 3B tests use 1000).
DEFAULT_MAXRAFTSTATE = 8192


def read_cluster_file(path: str | os.PathLike[str]) -> list[str]:
    """The `host:port` lines of a cluster file (blank lines and # comments skipped)."""
    addresses = []
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        host, sep, port = line.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{path}:{number}: {line!r} is not host:port")
        addresses.append(line)
    if not addresses:
        raise ValueError(f"{path}: no host:port line")
    return addresses


class _Admin:
    """The admin service: what `labs cluster status` shows (see cluster/progress.py)."""

    def __init__(self, me: int, lab: int, persister: FilePersister,
                 get_state: Callable[[], State], progress: Progress) -> None:
        self._me, self._lab, self._persister = me, lab, persister
        self._get_state, self._progress = get_state, progress
        self._started = time.monotonic()

    def status(self, _: StatusRequest) -> StatusReply:
        indexes = self._progress.indexes(self._get_state)
        return StatusReply(
            id=self._me, pid=os.getpid(), lab=self._lab, term=indexes.term,
            is_leader=indexes.is_leader, raft_state_size=self._persister.raft_state_size(),
            snapshot_size=self._persister.snapshot_size(), last_applied=indexes.applied,
            last_log_index=indexes.last_log, commit_index=indexes.commit,
            uptime=time.monotonic() - self._started)


def _watch_faults(path: Path, rules: FaultRules) -> None:
    last = None
    while True:
        try:
            text = path.read_text()
        except FileNotFoundError:
            text = "{}"
        if text != last:
            try:
                spec = json.loads(text or "{}")
                rules.set(spec.get("groups"), bool(spec.get("unreliable", False)))
                log.info("fault rules: %s", spec or "none")
                last = text
            except (ValueError, AttributeError):
                pass  # a file being rewritten by hand: read it again next time
        time.sleep(FAULT_POLL_INTERVAL)


class ServiceHost(Protocol):
    """A server that routes a service's rpcs to an object: `GrpcServer`, or labrpc's `Server`."""

    def add_service(self, service: Service, implementation: Any) -> None: ...


def add_kv_server(server: ServiceHost, peers: list[RaftClient], me: int, persister: Persister,
                  maxraftstate: int | None) -> tuple[KvServer, KvNode]:
    """One lab 3 server as the lab 3 tests build it — `KvServer(peers, me, persister,
    maxraftstate)`, the clerks' rpcs to its `Node`, the Raft rpcs to `kv.rf` — on `server`."""
    from kvraft.server import KvServer
    from kvraft.server import Node as KvNode
    from proto.kvraftpb import KvService
    from proto.raftpb import RaftService

    kv = KvServer(peers, me, persister, maxraftstate)
    kv_node = KvNode(kv)
    server.add_service(KvService, kv_node)
    server.add_service(RaftService, kv.rf)
    return kv, kv_node


def serve(me: int, addresses: list[str], data_dir: Path, lab: int, maxraftstate: int | None,
          faults: Path | None, kv_deadline: float = DEFAULT_DEADLINE) -> GrpcServer:
    """Build the node and start serving; returns the running server."""
    from proto.raftpb import RaftClient, RaftService

    persister = FilePersister(data_dir)
    rules = FaultRules()
    if faults is not None:
        threading.Thread(target=_watch_faults, args=(faults, rules), name="fault-rules",
                         daemon=True).start()
    executor = ThreadPoolExecutor(64, thread_name_prefix="faults")
    ends = [GrpcEnd(f"node-{me}-to-{j}", connect(address, FaultInterceptor(rules, me, j, executor)),
                    deadline=RAFT_DEADLINE)
            for j, address in enumerate(addresses)]
    peers = [RaftClient(as_client_end(end)) for end in ends]
    server = GrpcServer(addresses[me].replace("localhost", "127.0.0.1"), name=f"node-{me}")
    progress = Progress()
    if lab == 2:
        from raft.raft import ApplyMsg, ApplySnapshot, Node, Raft

        apply_ch: queue.Queue[ApplyMsg] = queue.Queue()
        node = Node(Raft(peers, me, persister, apply_ch))
        progress.watch_start(node)

        def apply_loop() -> None:
            # Lab 2 has no service: the runtime plays it, taking what Raft applies.
            while True:
                msg = apply_ch.get()
                if not isinstance(msg, ApplySnapshot) or node.cond_install_snapshot(
                        msg.term, msg.index, msg.data):
                    progress.saw_applied(msg)

        threading.Thread(target=apply_loop, name="apply", daemon=True).start()
        server.add_service(RaftService, node)
        admin = _Admin(me, lab, persister, node.get_state, progress)
    else:
        kv, kv_node = add_kv_server(server, peers, me, persister, maxraftstate)
        # The handout's KvServer hands Raft `self.apply_ch` and keeps the peer in `self.rf`.
        progress.watch_apply_channel(getattr(kv, "apply_ch", None))
        progress.watch_start(kv.rf)
        admin = _Admin(me, lab, persister, kv_node.get_state, progress)
    server.add_service(AdminService, admin)
    server.start()
    log.info("node %d (lab %d) serving on %s, pid %d", me, lab, addresses[me], os.getpid())
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cluster.node",
                                     description="run one server of a raftlabs cluster")
    parser.add_argument("--id", type=int, required=True,
                        help="this server's line in the file, from 0")
    parser.add_argument("--cluster-file", required=True,
                        help="host:port of every server, one a line")
    parser.add_argument("--dir", required=True, help="this server's data directory")
    parser.add_argument("--lab", type=int, choices=(2, 3), default=3)
    parser.add_argument("--maxraftstate", type=int, default=DEFAULT_MAXRAFTSTATE,
                        help="lab 3: snapshot at this many bytes of Raft state; 0: never")
    parser.add_argument("--faults", help="the controller's fault-rules file (JSON)")
    parser.add_argument("--exit-with-stdin", action="store_true",
                        help="exit when standard input closes (the controller's pipe)")
    args = parser.parse_args(argv)
    # LOG_LEVEL as in the lab tests (`LOG_LEVEL=raft=debug labs cluster start`: each node's log
    # then holds your debug() lines, for `labs logs`). The runtime's own lines stay on at info.
    try:
        configure_logging()
    except ValueError as exc:
        print(f"cluster.node: {exc}", file=sys.stderr)
        return 2
    if "cluster" not in os.environ.get("LOG_LEVEL", ""):
        logging.getLogger("cluster").setLevel(logging.INFO)
    try:
        addresses = read_cluster_file(args.cluster_file)
    except (OSError, ValueError) as exc:
        print(f"cluster.node: {exc}", file=sys.stderr)
        return 2
    if not 0 <= args.id < len(addresses):
        print(f"cluster.node: --id {args.id} is not a line of {args.cluster_file} "
              f"(0..{len(addresses) - 1})", file=sys.stderr)
        return 2
    done = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: done.set())
    try:
        # Keep the server referenced: a collected grpc.Server stops listening.
        server = serve(args.id, addresses, Path(args.dir), args.lab, args.maxraftstate or None,
              Path(args.faults) if args.faults else None)
    except OSError as exc:
        log.error("%s", exc)
        return 1
    if args.exit_with_stdin:
        def watch_stdin() -> None:
            while sys.stdin.buffer.read(1 << 16):
                pass
            log.info("the controller's pipe closed: exiting")
            done.set()
        threading.Thread(target=watch_stdin, name="stdin-watch", daemon=True).start()
    while not done.wait(0.5):  # a timed wait, so that signal handlers run promptly
        pass
    log.info("node %d exiting (served on port %s)", args.id, server.port)
    logging.shutdown()
    # Everything acknowledged is on disk already; exit without waiting for gRPC's threads.
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
