"""`labs cluster ...` and `labs kv ...`: the command lines of the real-cluster runtime."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

__all__ = ["add_commands", "DEFAULT_DIR"]

DEFAULT_DIR = ".cluster"
MAX_NODES = 15
START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
_ROOT = Path(__file__).resolve().parent.parent
_Number = TypeVar("_Number", int, float)


def _error(message: str) -> int:
    print(f"labs cluster: {message}", file=sys.stderr)
    return 2


def _positive(kind: Callable[[str], _Number], what: str) -> Callable[[str], _Number]:
    def parse(text: str) -> _Number:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
        return value
    return parse


def _node_count(text: str) -> int:
    value = _positive(int, "a number of nodes")(text)
    if value > MAX_NODES:
        raise argparse.ArgumentTypeError(f"{value} nodes is more than this machine should run "
                                         f"(at most {MAX_NODES})")
    return value


def _nemesis(text: str) -> list[str]:
    from cluster.check import NEMESES

    if text in ("", "none"):
        return []
    kinds = [k.strip() for k in text.split(",")]
    unknown = [k for k in kinds if k not in NEMESES]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown fault {unknown[0]!r}: choose from {', '.join(NEMESES)} (comma-separated), "
            "or none")
    return kinds


# --- the controller's files --------------------------------------------------------------------

def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    from cluster.control import process_alive

    if not process_alive(pid):
        return False
    try:  # a zombie child of ours is dead for our purposes
        waited, _ = os.waitpid(pid, os.WNOHANG)
        return waited == 0
    except ChildProcessError:
        return True


def _is_ours(pid: int, module: str) -> bool:
    """Whether `pid` runs `python -m <module>`: a pidfile may outlive its process, and the pid be
    reused by something else, which must not be signalled."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        result = subprocess.run(["ps", "-o", "command=", "-p", str(pid)], capture_output=True,
                                text=True)
        command = result.stdout
    return f"-m {module}" in command


def _controller(directory: Path) -> tuple[int | None, str | None]:
    from cluster.controller import ADDR_FILE, PID_FILE

    pid = _read_pid(directory / PID_FILE)
    if pid is not None and not (_alive(pid) and _is_ours(pid, "cluster.controller")):
        pid = None
    address = None
    if pid is not None and (directory / ADDR_FILE).exists():
        address = (directory / ADDR_FILE).read_text().strip()
    return pid, address


def _send(directory: Path, command: str, args: list[str], quiet: bool = False) -> int:
    from cluster.clusterpb import ControlClient, ControlRequest
    from cluster.transport import GrpcEnd, as_client_end, connect
    from labrpc import RpcError

    pid, address = _controller(directory)
    if address is None:
        return _error(f"no cluster is running in {directory}; start one with "
                      f"`labs cluster start --dir {directory}`")
    end = GrpcEnd("control", connect(address), deadline=60.0)
    try:
        reply = ControlClient(as_client_end(end)).do(ControlRequest(command=command, args=args))
    except RpcError as exc:
        return _error(f"the controller (pid {pid}) did not answer: {exc}")
    finally:
        end.close()
    if not reply.ok:
        return _error(reply.message)
    if not quiet:
        print(reply.message)
    return 0


# --- commands ------------------------------------------------------------------------------------

def _cmd_start(args: argparse.Namespace) -> int:
    from cluster.controller import ADDR_FILE
    from cluster.node import read_cluster_file

    directory = Path(args.dir)
    pid, _ = _controller(directory)
    if pid is not None:
        return _error(f"a cluster is already running in {directory} (controller pid {pid}); "
                      "`labs cluster stop` it first, or choose another --dir")
    n = args.n
    if args.cluster_file:
        try:
            n = len(read_cluster_file(args.cluster_file))
        except (OSError, ValueError) as exc:
            return _error(str(exc))
    directory.mkdir(parents=True, exist_ok=True)
    (directory / ADDR_FILE).unlink(missing_ok=True)
    command = [sys.executable, "-m", "cluster.controller", "--dir", str(directory), "-n", str(n),
               "--lab", str(args.lab), "--maxraftstate", str(args.maxraftstate)]
    if args.cluster_file:
        command += ["--cluster-file", str(Path(args.cluster_file).resolve())]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_ROOT), env.get("PYTHONPATH")]))
    log_path = directory / "controller.log"
    with open(log_path, "ab") as log_file:
        # A session of its own: it outlives this command and the terminal's Ctrl-C.
        controller = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log_file,
                                      stderr=subprocess.STDOUT, env=env, start_new_session=True)
    deadline = time.monotonic() + START_TIMEOUT
    try:
        while not (directory / ADDR_FILE).exists():
            if controller.poll() is not None:
                tail = log_path.read_text().splitlines()[-5:]
                return _error("the cluster did not start:\n  " + "\n  ".join(tail))
            if time.monotonic() > deadline:
                controller.terminate()
                controller.wait()
                return _error(f"the cluster did not start within {START_TIMEOUT:g} s; "
                              f"see {log_path}")
            time.sleep(0.1)
    except KeyboardInterrupt:
        controller.terminate()  # it stops its nodes
        controller.wait()
        return 130
    print(f"started {n} nodes (lab {args.lab}) in {directory}; controller pid {controller.pid}")
    time.sleep(args.settle)
    return _print_status(directory, None, 1.0)


def _addresses(args: argparse.Namespace) -> list[str]:
    from cluster.control import read_addresses
    from cluster.node import read_cluster_file

    if getattr(args, "cluster_file", None):
        return read_cluster_file(args.cluster_file)
    return read_addresses(args.dir)


def _print_status(directory: Path | None, cluster_file: str | None, deadline: float) -> int:
    """The status table of the cluster in `directory`, or of the servers of `cluster_file`
    (directory None: no pidfiles to tell a server that is down from one that does not answer)."""
    from cluster.control import ClusterError, query_status, read_addresses
    from cluster.node import read_cluster_file

    try:
        if cluster_file:
            addresses = read_cluster_file(cluster_file)
        else:
            addresses = read_addresses(directory or DEFAULT_DIR)
    except (ClusterError, OSError, ValueError) as exc:
        return _error(str(exc))
    statuses = query_status(addresses, deadline)
    errors: list[str] = []
    # last log and commit come from the Raft's optional log_indexes() hook (the last log also
    # from start() on a leader); applied is what the node delivered on apply_ch. See
    # cluster/progress.py. "-": the runtime cannot know.
    header = ("node", "address", "pid", "role", "term", "last log", "commit", "applied",
              "raft state", "snapshot")
    rows: list[tuple[str, ...]] = [header]
    blank = ("-",) * (len(header) - 4)
    for s in statuses:
        r = s.reply
        if r is None and s.answered:
            rows.append((str(s.id), s.address, "-", "error", *blank))
            errors.append(f"node {s.id}: {s.error}")
            continue
        if r is None:
            pid = _read_pid(directory / f"node-{s.id}.pid") if directory else None
            state = "down" if directory and pid is None else "no answer"
            rows.append((str(s.id), s.address, str(pid or "-"), state, *blank))
            continue
        rows.append((str(s.id), s.address, str(r.pid), s.role, str(r.term),
                     *(str(getattr(r, f)) if r.HasField(f) else "-"
                       for f in ("last_log_index", "commit_index", "last_applied")),
                     f"{r.raft_state_size} B", f"{r.snapshot_size} B"))
    widths = [max(len(row[k]) for row in rows) for k in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    for error in errors:
        print(error)
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    directory = None if args.cluster_file else Path(args.dir)
    return _print_status(directory, args.cluster_file, args.deadline)


def _cmd_stop(args: argparse.Namespace) -> int:
    from cluster.controller import PID_FILE

    directory = Path(args.dir)
    pid, address = _controller(directory)
    if pid is not None:
        if address is not None:
            _send(directory, "stop", [], quiet=True)
        else:
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)  # its nodes see their pipes close and exit
    # Whatever the controller left (it was killed, or crashed): nodes named by pidfiles.
    leftovers = []
    for pidfile in sorted(directory.glob("node-*.pid")):
        node_pid = _read_pid(pidfile)
        if node_pid is not None and _alive(node_pid) and _is_ours(node_pid, "cluster.node"):
            os.kill(node_pid, signal.SIGKILL)
            leftovers.append(node_pid)
        pidfile.unlink(missing_ok=True)
    (directory / PID_FILE).unlink(missing_ok=True)
    if pid is None and not leftovers:
        print(f"no cluster was running in {directory}")
        return 0
    print(f"stopped the cluster in {directory}"
          + (f"; killed {len(leftovers)} node(s) left behind" if leftovers else ""))
    return 0


def _cmd_control(args: argparse.Namespace) -> int:
    if args.cluster_command == "partition" and len(args.groups) < 2:
        return _error("partition needs at least two groups, e.g. `partition 0,1 2,3,4`")
    extra: list[str]
    if args.cluster_command == "partition":
        extra = args.groups
    elif args.cluster_command == "unreliable":
        extra = [args.state]
    elif args.cluster_command == "heal":
        extra = []
    else:  # kill, restart, pause, resume
        extra = [str(args.node)]
    return _send(Path(args.dir), args.cluster_command, extra)


def _cmd_check(args: argparse.Namespace) -> int:
    from cluster.check import run_check
    from cluster.control import ClusterError

    try:
        status, _ = run_check(args.seconds, args.clients, args.nemesis, n=args.n,
                              directory=args.dir, out_dir=args.out, seed=args.seed,
                              emulator=args.emulator)
    except ClusterError as exc:
        return _error(str(exc))
    except KeyboardInterrupt:
        print("interrupted; the cluster was stopped", file=sys.stderr)
        return 130
    return status


def _cmd_node(args: argparse.Namespace) -> int:
    from cluster.node import main as node_main

    argv = ["--id", str(args.id), "--cluster-file", args.cluster_file, "--dir", args.dir,
            "--lab", str(args.lab), "--maxraftstate", str(args.maxraftstate)]
    return node_main(argv)


def _cmd_kv(args: argparse.Namespace) -> int:
    from cluster.check import clerk_for
    from cluster.control import ClusterError

    if args.op == "get" and args.value is not None:
        print(f"labs kv: get takes no VALUE (got {args.value!r})", file=sys.stderr)
        return 2
    if args.op != "get" and args.value is None:
        print(f"labs kv: {args.op} needs a VALUE: labs kv {args.op} KEY VALUE", file=sys.stderr)
        return 2
    try:
        addresses = _addresses(args)
    except (ClusterError, OSError, ValueError) as exc:
        print(f"labs kv: {exc}", file=sys.stderr)
        return 2
    clerk, close = clerk_for(addresses, "labs-kv")
    result: list[str | None] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            if args.op == "get":
                result.append(clerk.get(args.key))
            else:
                getattr(clerk, args.op)(args.key, args.value)
                result.append(None)
        except Exception as exc:  # noqa: BLE001 - the Clerk's own error, shown as is
            failure.append(exc)

    # The clerk retries forever by design; the command gives up after --timeout.
    thread = threading.Thread(target=run, name="labs-kv", daemon=True)
    thread.start()
    thread.join(args.timeout)
    close()
    if failure:
        print(f"labs kv: the Clerk raised {type(failure[0]).__name__}: {failure[0]}",
              file=sys.stderr)
        return 1
    if not result:
        print(f"labs kv: no answer from the cluster within {args.timeout:g} s "
              "(is a majority up and reachable?)", file=sys.stderr)
        return 1
    print(result[0] if args.op == "get" else "ok")
    return 0


def _dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", default=DEFAULT_DIR,
                        help=f"the cluster's directory (default: {DEFAULT_DIR}/)")


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `labs cluster` and `labs kv` on the `labs` subcommand parser."""
    from cluster.node import DEFAULT_MAXRAFTSTATE

    cluster = commands.add_parser(
        "cluster", help="run your Raft/KV as real processes over gRPC; inject faults; check",
        description="Run the lab code, unchanged, as one OS process per server talking gRPC, "
                    "with state on disk. See docs/cluster.md.")
    sub = cluster.add_subparsers(dest="cluster_command", required=True, metavar="COMMAND")

    start = sub.add_parser("start", help="start a cluster in the background",
                           description="Start one process per server on free localhost ports "
                                       "(or on the addresses of --cluster-file) and a controller "
                                       "that owns them; print their status.")
    start.add_argument("-n", type=_node_count, default=5, help="number of servers (default: 5)")
    _dir_option(start)
    start.add_argument("--lab", type=int, choices=(2, 3), default=3,
                       help="2: Raft peers only; 3: the KV service (default)")
    start.add_argument("--cluster-file", metavar="FILE",
                       help="host:port of each server, one a line (instead of -n)")
    start.add_argument("--maxraftstate", type=int, default=DEFAULT_MAXRAFTSTATE, metavar="BYTES",
                       help=f"lab 3: snapshot at this Raft state size (default: "
                            f"{DEFAULT_MAXRAFTSTATE}; 0: never)")
    start.add_argument("--settle", type=float, default=1.5, help=argparse.SUPPRESS)
    start.set_defaults(func=_cmd_start)

    status = sub.add_parser("status", help="role, term, log indexes, state sizes per node")
    _dir_option(status)
    status.add_argument("--cluster-file", metavar="FILE", help="ask these servers instead")
    status.add_argument("--deadline", type=_positive(float, "a number of seconds"), default=1.0,
                        help="seconds to wait for each node (default: 1)")
    status.set_defaults(func=_cmd_status)

    stop = sub.add_parser("stop", help="stop the cluster; no process is left behind")
    _dir_option(stop)
    stop.set_defaults(func=_cmd_stop)

    partition = sub.add_parser("partition", help="split the network: partition 0,1 2,3,4")
    partition.add_argument("groups", nargs="+", metavar="GROUP",
                           help="comma-separated nodes that still reach each other")
    heal = sub.add_parser("heal", help="undo the partition")
    unreliable = sub.add_parser("unreliable",
                                help="labrpc's drops and delays on every node: on|off")
    unreliable.add_argument("state", choices=("on", "off"))
    for name, text in (("kill", "kill -9 node N"), ("restart", "start node N again from its files"),
                       ("pause", "SIGSTOP node N"), ("resume", "SIGCONT node N")):
        node_command = sub.add_parser(name, help=text)
        node_command.add_argument("node", type=int, metavar="N")
        _dir_option(node_command)
        node_command.set_defaults(func=_cmd_control)
    for parser in (partition, heal, unreliable):
        _dir_option(parser)
        parser.set_defaults(func=_cmd_control)

    check = sub.add_parser(
        "check", help="Jepsen-style: clients and a nemesis, then a linearizability check",
        description="Start a fresh cluster, run clients that record a history while a nemesis "
                    "injects faults, heal, and check the history (linearizability, and each "
                    "client's appends). Prints throughput, latency and recovery times; writes "
                    "the history and an HTML report. Exit status: 0 correct, 1 a violation, "
                    "2 the checker could not decide.")
    check.add_argument("--seconds", type=_positive(float, "a number of seconds"), default=60.0)
    check.add_argument("--clients", type=_positive(int, "a number of clients"), default=5)
    check.add_argument("--nemesis", type=_nemesis, default=["partition", "kill", "pause"],
                       metavar="F,...", help="faults to inject in turn: partition, kill, pause, "
                       "unreliable, or none (default: partition,kill,pause)")
    check.add_argument("-n", type=_node_count, default=5, help="number of servers (default: 5)")
    check.add_argument("--dir", help="keep the nodes' files and logs here (default: a temporary "
                                     "directory, removed)")
    check.add_argument("--out", default="cluster-check", metavar="DIR",
                       help="where the history and the report go (default: cluster-check/)")
    check.add_argument("--seed", type=int, help="the clients' and nemesis' random seed")
    check.add_argument("--emulator", action="store_true",
                       help="run the same clients on labrpc's emulated network instead (no faults)")
    check.set_defaults(func=_cmd_check)

    node = sub.add_parser("node", help="run one server in the foreground (clusters over machines)")
    node.add_argument("--id", type=int, required=True, help="its line in the cluster file, from 0")
    node.add_argument("--cluster-file", required=True, metavar="FILE")
    node.add_argument("--dir", required=True, help="its data directory")
    node.add_argument("--lab", type=int, choices=(2, 3), default=3)
    node.add_argument("--maxraftstate", type=int, default=DEFAULT_MAXRAFTSTATE, metavar="BYTES")
    node.set_defaults(func=_cmd_node)

    kv = commands.add_parser("kv", help="get/put/append on a running cluster through your Clerk",
                             description="One request through the student's Clerk: "
                                         "labs kv get KEY | put KEY VALUE | append KEY VALUE")
    kv.add_argument("op", choices=("get", "put", "append"))
    kv.add_argument("key", metavar="KEY")
    kv.add_argument("value", nargs="?", metavar="VALUE")
    _dir_option(kv)
    kv.add_argument("--cluster-file", metavar="FILE", help="talk to these servers instead")
    kv.add_argument("--timeout", type=_positive(float, "a number of seconds"), default=30.0,
                    help="give up after this long (default: 30)")
    kv.set_defaults(func=_cmd_kv)
