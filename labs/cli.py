"""The `labs` command line: `labs --help` lists the tools."""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from types import ModuleType

REPO_ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = REPO_ROOT / "proto"


def _cmd_proto(args: argparse.Namespace) -> int:
    from proto.compiler import ProtoCompileError, compile_proto

    status = 0
    for proto_file in sorted(PROTO_DIR.glob("*.proto")):
        try:
            print(f"{proto_file.relative_to(REPO_ROOT)} -> "
                  f"{compile_proto(proto_file, force=args.force).relative_to(REPO_ROOT)}")
        except ProtoCompileError as exc:
            print(exc, file=sys.stderr)
            status = 1
    return status


def _cmd_test(args: argparse.Namespace) -> int:
    from labs.repeat import DEFAULT_TIMEOUT, run_tests

    timeout = DEFAULT_TIMEOUT if args.timeout is None else args.timeout
    return run_tests(args.tests, iterations=args.iterations, workers=args.workers,
                     output=Path(args.output), timeout=timeout, seed=args.seed,
                     tests_dir=Path(args.tests_dir) if args.tests_dir else None)


def _cmd_logs(args: argparse.Namespace) -> int:
    from labdebug import parse_topics
    from labs.logview import open_lines, view_log

    try:
        ignore = parse_topics(args.ignore) if args.ignore else set()
        only = parse_topics(args.just) if args.just else None
    except ValueError as exc:
        print(f"labs logs: {exc}", file=sys.stderr)
        return 2
    if args.columns is not None and args.columns < 1:
        print("labs logs: -c must be at least 1", file=sys.stderr)
        return 2
    try:
        lines = open_lines(args.file)
    except OSError as exc:
        print(f"labs logs: {exc}", file=sys.stderr)
        return 2
    try:
        view_log(lines, columns=args.columns, width=args.width, ignore=ignore, only=only)
    except BrokenPipeError:  # `labs logs x.log | head`
        sys.stderr.close()
    return 0


def _cmd_check_history(args: argparse.Namespace) -> int:
    from labs.linearizability.command import check_history

    return check_history(args.file, timeout=args.timeout or None, html=args.html)


def _cmd_timeline(args: argparse.Namespace) -> int:
    from labs.timeline.command import timeline_command

    return timeline_command(args.log, args.output)


def _timeout_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds (0: no limit)")
    return value


# Instructor-only commands: (name, module, its argument adder, its command, help, description).
# Their modules live in the top-level packages that the student handout leaves out (`instructor`,
# `benchmarks`: INSTRUCTOR_ONLY in instructor/handout.py), so each is offered only where its
# package is there: `labs --help` in a handout lists only commands that work there. This table
# is the one way the CLI knows an instructor-only command: a new one belongs here, not in
# build_parser.
_INSTRUCTOR_COMMANDS = (
    ("handout", "instructor.handout", "add_handout_arguments", "handout_command",
     "write the student handout (solution regions replaced by stubs)",
     "Write the student repository: every tracked file but the instructor-only ones, each "
     "solution region replaced by a hint, checked for leaks. See docs/instructors.md."),
    ("grade", "instructor.grading.command", "add_grade_arguments", "grade_command",
     "grade a submission (directory, git repo or archive); or write a Gradescope bundle",
     "Grade a student's submission: only the student files are taken, laid on the pristine "
     "framework, and every test of the rubric runs N times, each in a fresh, limited process. "
     "Writes results.json (Gradescope), junit.xml, report.txt and the logs of failed runs. See "
     "docs/instructors.md."),
    ("mutants", "instructor.mutants.command", "add_mutants_arguments", "mutants_command",
     "run the lab suites against the corpus of buggy Raft/KV variants; write the kill matrix",
     "Apply each mutant of the corpus (a small student bug in the reference solution) to a "
     "scratch copy of the repository, run the suites of the parts that should catch it, "
     "cheapest first, stopping at the first failure, N times; print the kill matrix and write "
     "it as JSON and Markdown. See docs/instructors.md."),
    ("bench", "benchmarks.bench", "add_bench_arguments", "bench_command",
     "run the benchmarks of the reference solution; print a table, write JSON",
     "Measure groups of metrics (labrpc's cost, Raft's agreement latency and test-suite costs, "
     "the KV service, the linearizability checker), print them against their targets and write "
     "them as JSON. See docs/instructors.md."),
)


def _import_if_present(module_name: str) -> ModuleType | None:
    """The module, or None when its package is not there (a student handout). Any other import
    error is a bug of the instructors' tools and is raised, not hidden as a missing command."""
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        # The missing module is the command's own or one of its packages (an unrelated package
        # of the same top-level name, such as PyPI's `instructor`, counts as missing too).
        parts = module_name.split(".")
        if exc.name in {".".join(parts[:n]) for n in range(1, len(parts) + 1)}:
            return None
        raise


def _add_instructor_commands(
        commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    for name, module_name, add_arguments, command, help_text, description in _INSTRUCTOR_COMMANDS:
        module = _import_if_present(module_name)
        if module is None:
            continue
        parser = commands.add_parser(name, help=help_text, description=description)
        getattr(module, add_arguments)(parser)
        parser.set_defaults(func=getattr(module, command))


def _add_cluster_commands(
        commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    # `labs cluster` and `labs kv`: the lab code as a real cluster (cluster/, docs/cluster.md)
    from cluster.command import add_commands

    add_commands(commands)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="labs", description="raftlabs tools")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    proto = commands.add_parser(
        "proto", help="compile proto/*.proto now (otherwise done on import)")
    proto.add_argument("--force", action="store_true", help="recompile even if up to date")
    proto.set_defaults(func=_cmd_proto)

    _add_instructor_commands(commands)
    _add_cluster_commands(commands)

    test = commands.add_parser(
        "test", help="run tests many times in parallel; keep the logs of failed runs",
        description="Run each selected test N times, each run in a fresh pytest process, and keep "
                    "the output of every failed run. Exit status 1 if any run failed.")
    test.add_argument("tests", nargs="+", metavar="TEST",
                      help="a part (2A, 3B), a whole lab (2, 3) or a test's exact name")
    test.add_argument("-n", "--iterations", type=int, default=10, metavar="N",
                      help="runs of each test (default: 10)")
    test.add_argument("-p", "--workers", type=int, default=1, metavar="P",
                      help="runs at a time (default: 1); mind your cores, the tests are timed")
    test.add_argument("-o", "--output", default="test-failures", metavar="DIR",
                      help="where the logs of failed runs go (default: test-failures/)")
    test.add_argument("--timeout", type=float, metavar="SECONDS",
                      help="stop a run after this long, with a thread dump, and count it failed "
                           "(default: 150, past a lab test's 120 s limit and its watchdog)")
    test.add_argument("--seed", type=int, metavar="S",
                      help="run r gets network seed S+r (default: a random S, shown)")
    test.add_argument("--tests-dir", metavar="DIR",
                      help="the tests to choose from (default: this repository's tests/); "
                           "runs start in its parent directory")
    test.set_defaults(func=_cmd_test)

    logs = commands.add_parser(
        "logs", help="show a debug() log as one column per peer, coloured by topic")
    logs.add_argument("file", nargs="?", default="-", metavar="FILE",
                      help="the log; - (the default) reads stdin")
    logs.add_argument("-c", "--columns", type=int, metavar="N",
                      help="number of peers (default: as many as the log names)")
    logs.add_argument("-i", "--ignore", metavar="TOPIC,...", help="drop these topics")
    logs.add_argument("-j", "--just", metavar="TOPIC,...", help="keep only these topics")
    logs.add_argument("--width", type=int, metavar="COLS",
                      help="total width (default: the terminal's)")
    logs.set_defaults(func=_cmd_logs)

    check = commands.add_parser(
        "check-history", help="check a Jepsen/porcupine-style KV history for linearizability",
        description="Check a KV history, one {:process P, :type :invoke|:ok|:fail|:info, :f "
                    ":get|:put|:append, :key K, :value V} event per line, in time order. "
                    "Exit status: 0 linearizable, 1 not linearizable (writes an HTML page "
                    "showing why), 2 undecided within --timeout, 3 unreadable input.")
    check.add_argument("file", metavar="FILE", help="the history; - reads standard input")
    check.add_argument("--timeout", type=_timeout_seconds, default=10.0, metavar="SECONDS",
                       help="give up (exit 2) after this long; 0 for no limit (default: 10)")
    check.add_argument("--html", metavar="PATH",
                       help="where to write the page if not linearizable (default: FILE's "
                            "name with .linearizability.html, beside it; for stdin, "
                            "history.linearizability.html here)")
    check.set_defaults(func=_cmd_check_history)

    timeline = commands.add_parser(
        "timeline", help="draw a failed run's timeline (an HTML page) from its kept log",
        description="Draw the timeline of a lab test run as one self-contained HTML page: each "
                    "peer's term, leadership, crashes, applied index and snapshots, the faults "
                    "the tester injected, the RPCs, clerk operations (lab 3) and the log's "
                    "debug() lines. LOG is a log that `labs test` kept (or any output of a "
                    "failed test): it names the events file the test wrote.")
    timeline.add_argument("log", metavar="LOG", help="the log of a failed run")
    timeline.add_argument("-o", "--output", metavar="PAGE",
                          help="where to write the page (default: LOG's name with "
                               ".timeline.html, beside it)")
    timeline.set_defaults(func=_cmd_timeline)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    status: int = args.func(args)
    return status
