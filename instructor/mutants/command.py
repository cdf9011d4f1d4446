"""The `labs mutants` command line (instructor-only, like `labs grade`)."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

__all__ = ["add_mutants_arguments", "mutants_command"]


def add_mutants_arguments(parser: argparse.ArgumentParser) -> None:
    from labs.repeat import DEFAULT_TIMEOUT

    parser.add_argument("--only", action="append", default=[], metavar="ID",
                        help="run only this mutant (repeatable, or comma-separated ids; "
                             "default: the whole corpus)")
    parser.add_argument("-n", "--iterations", type=int, default=1, metavar="N",
                        help="runs of each mutant (default: 1)")
    parser.add_argument("-p", "--workers", type=int, default=1, metavar="P",
                        help="runs at a time (default: 1); the tests are timed: keep 2 CPUs "
                             "per run")
    parser.add_argument("-o", "--output", default="mutant-results", metavar="DIR",
                        help="where matrix.json, matrix.md and the logs of the killing runs go "
                             "(default: mutant-results/)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                        help="a part's run may take this long per test it selects before it is "
                             f"stopped as hung (default: {DEFAULT_TIMEOUT:g})")
    parser.add_argument("--seed", type=int, metavar="S",
                        help="run r of every mutant gets network seed S+r (default: a random S)")
    shown = parser.add_mutually_exclusive_group()
    shown.add_argument("--list", action="store_true",
                       help="list the mutants (id, parts, the bug) and run nothing")
    shown.add_argument("--diff", action="store_true",
                       help="print each mutant's diff against the reference and run nothing")


def mutants_command(args: argparse.Namespace) -> int:
    from instructor.mutants.runner import list_mutants, run_mutants, show_diffs

    if args.list:
        return list_mutants(only=args.only)
    if args.diff:
        return show_diffs(only=args.only)
    command = "labs " + " ".join(shlex.quote(word) for word in sys.argv[1:])
    return run_mutants(args.only, iterations=args.iterations, workers=args.workers,
                       output=Path(args.output), timeout=args.timeout, seed=args.seed,
                       command=command)
