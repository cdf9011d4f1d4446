"""The daemon behind `labs cluster start`: it owns the node processes and carries out `labs
cluster kill/restart/pause/resume/partition/heal/unreliable/stop`, sent to it over gRPC.

    python -m cluster.controller --dir DIR -n 5 --lab 3

It writes `controller.pid` and, once every node answers, `controller.addr` (host:port of its
Control service) into DIR. The nodes are its children and exit when its pipes to them close, so
killing the controller in any way, even with SIGKILL, takes the cluster down with it.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from cluster.clusterpb import ControlReply, ControlRequest, ControlService
from cluster.control import ClusterError, LocalCluster
from cluster.node import DEFAULT_MAXRAFTSTATE, read_cluster_file
from cluster.transport import GrpcServer

__all__ = ["main", "ADDR_FILE", "PID_FILE", "COMMANDS", "parse_groups"]

log = logging.getLogger("cluster.controller")

ADDR_FILE = "controller.addr"
PID_FILE = "controller.pid"
COMMANDS = ("kill", "restart", "pause", "resume", "partition", "heal", "unreliable", "stop")


def parse_groups(texts: list[str], n: int) -> list[list[int]]:
    """`["0,1", "2,3,4"]` -> [[0, 1], [2, 3, 4]]; ValueError naming the bad part."""
    groups = []
    seen: set[int] = set()
    for text in texts:
        group = []
        for part in text.split(","):
            part = part.strip()
            if not part.isdigit():
                raise ValueError(f"{text!r}: {part!r} is not a node number")
            i = int(part)
            if not 0 <= i < n:
                raise ValueError(f"{text!r}: no node {i} (nodes are 0..{n - 1})")
            if i in seen:
                raise ValueError(f"node {i} is in two groups")
            seen.add(i)
            group.append(i)
        groups.append(group)
    return groups


def parse_node(text: str, n: int) -> int:
    if not text.isdigit() or not 0 <= int(text) < n:
        raise ValueError(f"{text!r} is not a node of this cluster (0..{n - 1})")
    return int(text)


class _Control:
    def __init__(self, cluster: LocalCluster, done: threading.Event) -> None:
        self.cluster = cluster
        self.done = done
        self._lock = threading.Lock()  # one command at a time

    def do(self, request: ControlRequest) -> ControlReply:
        try:
            with self._lock:
                message = self._do(request.command, list(request.args))
        except (ClusterError, ValueError) as exc:
            return ControlReply(ok=False, message=str(exc))
        log.info("%s %s: %s", request.command, " ".join(request.args), message)
        return ControlReply(ok=True, message=message)

    def _do(self, command: str, args: list[str]) -> str:
        cluster = self.cluster
        if command == "partition":
            groups = parse_groups(args, cluster.n)
            cluster.partition(groups)
            return "partitioned: " + " | ".join(",".join(map(str, g)) for g in groups)
        if command == "heal":
            cluster.heal()
            return "healed: every node reaches every node"
        if command == "unreliable":
            if args not in (["on"], ["off"]):
                raise ValueError("unreliable takes on or off")
            cluster.set_unreliable(args == ["on"])
            return f"unreliable network {args[0]}"
        if command == "stop":
            self.done.set()
            return "stopping"
        if command not in COMMANDS or len(args) != 1:
            raise ValueError(f"{command} takes one node number")
        i = parse_node(args[0], cluster.n)
        if command == "kill":
            cluster.kill(i)
            return f"node {i} killed (SIGKILL)"
        if command == "restart":
            cluster.restart(i)
            return f"node {i} restarted, pid {cluster.process(i).pid}"
        if command == "pause":
            cluster.pause(i)
            return f"node {i} paused (SIGSTOP)"
        cluster.resume(i)
        return f"node {i} resumed (SIGCONT)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cluster.controller")
    parser.add_argument("--dir", required=True)
    parser.add_argument("-n", type=int, default=5)
    parser.add_argument("--lab", type=int, choices=(2, 3), default=3)
    parser.add_argument("--cluster-file")
    parser.add_argument("--maxraftstate", type=int, default=DEFAULT_MAXRAFTSTATE)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s.%(msecs)03d controller %(levelname)s %(message)s",
                        datefmt="%H:%M:%S")
    directory = Path(args.dir)
    done = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, lambda *_: done.set())
    (directory / PID_FILE).write_text(f"{os.getpid()}\n")
    addresses = read_cluster_file(args.cluster_file) if args.cluster_file else None
    cluster = LocalCluster(directory, n=args.n, lab=args.lab, addresses=addresses,
                           maxraftstate=args.maxraftstate)
    server = None
    try:
        cluster.start()
        server = GrpcServer("127.0.0.1:0", max_workers=4, name="control")
        server.add_service(ControlService, _Control(cluster, done))
        port = server.start()
        temp = directory / f"{ADDR_FILE}.tmp"
        temp.write_text(f"127.0.0.1:{port}\n")
        os.replace(temp, directory / ADDR_FILE)
        log.info("cluster of %d up; control on port %d", cluster.n, port)
        while not done.wait(0.5):
            pass
    except ClusterError as exc:
        log.error("%s", exc)
        return 1
    finally:
        killed = cluster.stop()
        log.info("nodes stopped%s", f" ({len(killed)} with SIGKILL)" if killed else "")
        (directory / ADDR_FILE).unlink(missing_ok=True)
        (directory / PID_FILE).unlink(missing_ok=True)
        if server is not None:
            server.stop(0.5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
