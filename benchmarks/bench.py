"""`labs bench` (`make bench`): measure groups of metrics, print them as a table and write them as
JSON.

A group is a function returning `{metric: number}`, registered in `GROUPS` under a short name
(`labs bench --only rpc`). A metric may have a target in `TARGETS`; the table shows whether the
measured value meets it. The JSON file holds one object, metric -> number, of every group run.

    GROUPS["kv"] = lazy("benchmarks.bench_kv", "kv_metrics")   # how a further group is added
"""

from __future__ import annotations

import argparse
import importlib
import json
import operator
import statistics
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from queue import SimpleQueue
from typing import Any

from google.protobuf.message import Message

from labrpc.affinity import one_cpu

__all__ = ["GROUPS", "TARGETS", "Target", "lazy", "rpc_metrics", "run_benchmarks",
           "add_bench_arguments", "bench_command"]

MetricGroup = Callable[[], dict[str, float]]

BENCH_PROTO = Path(__file__).with_name("rpc_bench.proto")
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = REPO_ROOT / "bench" / "results.json"


@dataclass(frozen=True)
class Target:
    """A bound a metric should meet, e.g. `Target("<=", 1.5)`."""

    op: str
    value: float

    _OPS = {"<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt}

    def met_by(self, measured: float) -> bool:
        return self._OPS[self.op](measured, self.value)

    def __str__(self) -> str:
        return f"{self.op} {self.value:g}"


def lazy(module: str, function: str) -> MetricGroup:
    """A group whose code is imported only when the group runs."""

    def run() -> dict[str, float]:
        return getattr(importlib.import_module(module), function)()

    run.__name__ = f"{module}.{function}"
    return run


# --- group "rpc": the cost of a labrpc call -------------------------------------------------------


def _batch_mean_us(operation: Callable[[], object], calls: int) -> float:
    """Mean microseconds of `calls` back-to-back runs of `operation`."""
    began = time.perf_counter()
    for _ in range(calls):
        operation()
    return (time.perf_counter() - began) / calls * 1e6


class _EchoThread:
    """A thread that hands back every value it is given: the floor of any cross-thread call."""

    def __init__(self) -> None:
        self.requests: SimpleQueue = SimpleQueue()
        self.replies: SimpleQueue = SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=type(self).__name__, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (value := self.requests.get()) is not None:
            self.replies.put(value)

    def roundtrip(self, value: object = 111) -> object:
        self.requests.put(value)
        return self.replies.get()

    def stop(self) -> None:
        self.requests.put(None)
        self._thread.join(5)


class _EncodedEchoThread(_EchoThread):
    """The floor of any RPC that passes messages as bytes, as labrpc must: the caller encodes the
    arguments, a thread decodes them, runs the handler and encodes its reply, and the caller
    decodes that; the same work as a labrpc call without the emulator (no network, ends,
    counters or faults), over the same two queues as the bare round trip."""

    def __init__(self, handler: Callable[[Any], Any], request_type: type[Message]) -> None:
        self._handler = handler
        self._decode_request = request_type.FromString
        super().__init__()

    def _run(self) -> None:
        while (request := self.requests.get()) is not None:
            self.replies.put(self._handler(self._decode_request(request)).SerializeToString())

    def call(self, args: Message, reply_type: type[Message]) -> Any:
        self.requests.put(args.SerializeToString())
        return reply_type.FromString(self.replies.get())


class _BenchHandler:
    """The `Bench` service: records x, answers "handler-<x>" (as the talent-plan benchmark)."""

    def __init__(self, reply_type: type) -> None:
        self.reply_type = reply_type
        self.last = 0

    def handler(self, args):  # untyped: the message types come from the generated module
        self.last = args.x
        return self.reply_type(x=f"handler-{args.x}")


def rpc_metrics(batches: int = 9, calls_per_batch: int = 2000, threads: int = 8,
                concurrent_calls_per_thread: int = 1500,
                concurrent_rounds: int = 3) -> dict[str, float]:
    """Sequential call latency against a bare thread round trip, and throughput of 8 callers.

    The two latencies are measured in `batches` interleaved pairs (a batch of labrpc calls, then
    a batch of bare round trips), so a change in machine load affects both alike. `rpc_ratio` is
    the median of the pairs' ratios, `rpc_ratio_min` and `rpc_ratio_max` their spread; the
    latencies are the medians of the batch means. A third batch in each round times the floor
    of an RPC that crosses as bytes (`_EncodedEchoThread`: labrpc's encoding and the handler,
    no emulator): `rpc_floor_ratio` is that floor against the bare round trip, the least any
    labrpc could reach, and `rpc_over_floor` what labrpc itself adds to it.

    The whole group runs pinned to one CPU where the system allows it (`rpc_one_cpu` is 1 then),
    as every lab test does: unpinned, the scheduler decides per run, even per batch, whether a
    hand-off crosses cores (~60-70 us against ~5 us on one core, see labrpc/affinity.py), and
    the ratio swings by an order of magnitude while measuring the scheduler rather than labrpc.
    On one CPU the paths are compared on equal terms: what differs between them is the work
    done per call. That work costs more between hand-offs than on one thread: a woken thread
    preempts its waker, finds the GIL still held and sleeps again, so a hand-off takes about
    three context switches rather than one, and ~0.5 us of Python work on each side of a bare
    round trip adds ~3 us to it (measured on a 2-core VM). This is why `rpc_floor_ratio`, not
    1.0, is the floor of `rpc_ratio`.
    """
    with one_cpu() as cpu:
        metrics = _rpc_metrics(batches, calls_per_batch, threads, concurrent_calls_per_thread,
                               concurrent_rounds)
    metrics["rpc_one_cpu"] = 0.0 if cpu is None else 1.0
    return metrics


def _rpc_metrics(batches: int, calls_per_batch: int, threads: int,
                 concurrent_calls_per_thread: int, concurrent_rounds: int) -> dict[str, float]:
    import labrpc
    from labrpc.service import services_of
    from proto.compiler import load_proto

    module = load_proto(BENCH_PROTO)
    service = services_of(module)["Bench"]
    net = labrpc.Network()
    echo = _EchoThread()
    handler = _BenchHandler(module.BenchReply)
    encoded_echo = _EncodedEchoThread(handler.handler, module.BenchArgs)
    try:
        server = labrpc.Server("bench-server")
        server.add_service(service, handler)
        net.add_server(server)
        clients = []
        for i in range(max(1, threads)):
            end = net.create_client(f"bench-client-{i}")
            net.connect(end, "bench-server")
            net.enable(end, True)
            clients.append(service.client_class(end))
        args = module.BenchArgs(x=111)
        call = lambda: clients[0].handler(args)  # noqa: E731
        floor_call = lambda: encoded_echo.call(args, module.BenchReply)  # noqa: E731
        assert call().x == floor_call().x == "handler-111"
        for path in (call, echo.roundtrip, floor_call):  # warm up every path
            _batch_mean_us(path, calls_per_batch // 4)
        rpc_us, thread_us, floor_us = [], [], []
        for _ in range(batches):
            rpc_us.append(_batch_mean_us(call, calls_per_batch))
            thread_us.append(_batch_mean_us(echo.roundtrip, calls_per_batch))
            floor_us.append(_batch_mean_us(floor_call, calls_per_batch))
        rates = [_concurrent_rate(clients, args, concurrent_calls_per_thread)
                 for _ in range(concurrent_rounds)]
    finally:
        echo.stop()
        encoded_echo.stop()
        net.shutdown()
    ratios = [rpc / thread for rpc, thread in zip(rpc_us, thread_us, strict=True)]
    return {
        "rpc_seq_us": statistics.median(rpc_us),
        "thread_roundtrip_us": statistics.median(thread_us),
        "rpc_ratio": statistics.median(ratios),
        "rpc_ratio_min": min(ratios),
        "rpc_ratio_max": max(ratios),
        "rpc_floor_us": statistics.median(floor_us),
        "rpc_floor_ratio": statistics.median(
            floor / thread for floor, thread in zip(floor_us, thread_us, strict=True)),
        "rpc_over_floor": statistics.median(
            rpc / floor for rpc, floor in zip(rpc_us, floor_us, strict=True)),
        f"rpc_concurrent{len(clients)}_per_s": statistics.median(rates),
    }


def _concurrent_rate(clients: list, args: object, calls_per_client: int) -> float:
    """Calls per second completed by one thread per client, each calling back to back."""
    start = threading.Barrier(len(clients) + 1)
    errors: list[BaseException] = []

    def run(client) -> None:
        start.wait()
        try:
            for _ in range(calls_per_client):
                client.handler(args)
        except BaseException as exc:  # reported below
            errors.append(exc)

    workers = [threading.Thread(target=run, args=(c,), name="bench-caller") for c in clients]
    for worker in workers:
        worker.start()
    start.wait()
    began = time.perf_counter()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - began
    if errors:
        raise errors[0]
    return len(clients) * calls_per_client / elapsed


# --- the registry and the runner ------------------------------------------------------------------

GROUPS: dict[str, MetricGroup] = {
    "rpc": rpc_metrics,
    "raft": lazy("benchmarks.bench_raft", "raft_metrics"),
    "kv": lazy("benchmarks.bench_kv", "kv_metrics"),
    "linearizability": lazy("benchmarks.bench_linearizability", "linearizability_metrics"),
}

# Targets: labrpc's own; Raft and KV against a complete Go solution on this kind of machine: wall
# time no more than theirs, CPU no more than 3x theirs (../shared/reference/anchors.md).
TARGETS: dict[str, Target] = {
    "rpc_ratio": Target("<=", 1.5),
    "raft_agree_ms_p50": Target("<=", 2),
    "raft_2a_wall_s": Target("<=", 13.2), "raft_2b_wall_s": Target("<=", 28.5),
    "raft_2c_wall_s": Target("<=", 119.2), "raft_2d_wall_s": Target("<=", 122.0),
    "raft_2a_cpu_s": Target("<=", 1.2), "raft_2b_cpu_s": Target("<=", 2.7),
    "raft_2c_cpu_s": Target("<=", 32.1), "raft_2d_cpu_s": Target("<=", 9.9),
    "raft_peak_rss_mb": Target("<=", 256),
    # An idle cluster needs no election at all; each one is a follower that lost heartbeats.
    "raft_idle_unreliable_elections_per_min": Target("<=", 1),
    # KV: the Go solution under the official harness takes 1.42 ms per op; instructors grade
    # in 768 MB.
    "kv_op_ms_p50": Target("<=", 1.42),
    "kv_3a_wall_s": Target("<=", 243.5), "kv_3b_wall_s": Target("<=", 136.8),
    "kv_3a_cpu_s": Target("<=", 677), "kv_3b_cpu_s": Target("<=", 238),
    "kv_peak_rss_mb": Target("<=", 512),
    "kv_3b_one_client_ops": Target(">=", 17536),  # 70% of the Go solution's 25,052
    "check_50clients_s": Target("<", 1),
    # The KV tests give the checker 1 s per history; these shapes must fit well inside it.
    "check_single_key_long_s": Target("<", 1), "check_one_key_appends_s": Target("<", 1),
}


def _format(value: float) -> str:
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.1f}"
    return f"{value:.2f}" if abs(value) >= 1 else f"{value:.3g}"


def _print_table(metrics: dict[str, float], title: str) -> None:
    from rich.table import Table

    from labs.console import make_console

    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("target", justify="right")
    for name, value in metrics.items():
        target = TARGETS.get(name)
        if target is None:
            table.add_row(name, _format(value), "")
        else:
            style = "green" if target.met_by(value) else "red"
            table.add_row(name, f"[{style}]{_format(value)}[/{style}]", str(target))
    make_console().print(table)


def run_benchmarks(only: list[str], output: Path) -> int:
    """Run the groups in `only` (every group when empty), print a table, write `output` as JSON.

    Returns 0, 1 if a group failed (the others are still reported), 2 for an unknown group.
    """
    unknown = [name for name in only if name not in GROUPS]
    if unknown:
        print(f"labs bench: unknown group {', '.join(map(repr, unknown))} "
              f"(groups: {', '.join(GROUPS)})", file=sys.stderr)
        return 2
    selected = list(dict.fromkeys(only)) or list(GROUPS)
    metrics: dict[str, float] = {}
    status = 0
    for name in selected:
        print(f"running benchmark group {name!r} ...", file=sys.stderr, flush=True)
        try:
            results = GROUPS[name]()
        except Exception:
            traceback.print_exc()
            print(f"labs bench: group {name!r} failed", file=sys.stderr)
            status = 1
            continue
        metrics.update({metric: float(value) for metric, value in results.items()})
    _print_table(metrics, title=f"labs bench: {', '.join(selected)}")
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps({k: round(v, 3) for k, v in metrics.items()}, indent=2) + "\n")
    print(f"wrote {len(metrics)} metrics to {output}", file=sys.stderr)
    return status


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    """`labs bench`'s arguments."""
    parser.add_argument("--only", action="append", default=[], metavar="GROUP",
                        help=f"run only this group of metrics ({', '.join(GROUPS)}); repeatable")
    parser.add_argument("--output", default=str(DEFAULT_OUTPUT),
                        help="where to write the metrics (default: bench/results.json)")


def bench_command(args: argparse.Namespace) -> int:
    """`labs bench`: the exit status of run_benchmarks."""
    return run_benchmarks(only=args.only, output=Path(args.output))
