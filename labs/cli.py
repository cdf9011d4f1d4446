"""The `labs` command line: `labs --help` lists the tools."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

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


def _cmd_bench(args: argparse.Namespace) -> int:
    from labs.bench import run_benchmarks

    return run_benchmarks(only=args.only, output=Path(args.output))


def _cmd_handout(args: argparse.Namespace) -> int:
    from labs.handout import MarkerError, build_handout, commit_to_branch

    try:
        if args.branch:
            commit = commit_to_branch(args.branch)
            print(f"handout committed to branch {args.branch} ({commit[:12]}), with no history")
        else:
            files = build_handout(Path(args.out_dir))
            print(f"handout written to {args.out_dir}: {len(files)} files, one git commit")
    except (MarkerError, FileExistsError) as exc:
        print(f"labs handout: {exc}", file=sys.stderr)
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="labs", description="raftlabs tools")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    proto = commands.add_parser("proto", help="compile proto/*.proto now (otherwise done on import)")
    proto.add_argument("--force", action="store_true", help="recompile even if up to date")
    proto.set_defaults(func=_cmd_proto)

    bench = commands.add_parser("bench", help="run the benchmarks; print a table, write JSON")
    bench.add_argument("--only", action="append", default=[], metavar="GROUP",
                       help="run only this group of metrics (rpc, raft, ...); repeatable")
    bench.add_argument("--output", default=str(REPO_ROOT / "bench" / "results.json"),
                       help="where to write the metrics (default: bench/results.json)")
    bench.set_defaults(func=_cmd_bench)

    handout = commands.add_parser(
        "handout", help="write the student handout (solution regions replaced by stubs)")
    target = handout.add_mutually_exclusive_group(required=True)
    target.add_argument("out_dir", nargs="?", help="an empty or new directory for the handout")
    target.add_argument("--branch", metavar="NAME",
                        help="commit the handout to branch NAME of this repo, as a root commit")
    handout.set_defaults(func=_cmd_handout)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)
