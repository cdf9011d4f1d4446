"""The `labs grade` command line: arguments, progress lines, reports, the Gradescope bundle."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

__all__ = ["add_grade_arguments", "grade_command", "parse_size"]

DEFAULT_TIMEOUT = 150.0        # the lab tests' own limit is 120 s (plus pytest start-up, teardown)
DEFAULT_MEMORY = "2G"          # address space; see instructor/grading/sandbox.py
DEFAULT_BUNDLE_BUDGET = 38 * 60.0  # Gradescope's longest timeout is 40 min: stop grading before


def parse_size(text: str) -> int:
    """`2G`, `1536M`, `1GiB`, `512MB` or a number of bytes."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgG]?)(?:i?[bB])?\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size like 2G or 1536M")
    number, unit = float(match.group(1)), match.group(2).upper()
    return int(number * {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[unit])


def _positive(kind: type):
    def parse(text: str):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError("must be more than 0")
        return value
    return parse


def add_grade_arguments(parser: argparse.ArgumentParser) -> None:
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("submission", nargs="?", metavar="SUBMISSION",
                        help="a directory, a git repository (its last commit is graded) or a "
                             ".zip/.tar/.tar.gz archive of the student's work")
    target.add_argument("--gradescope", metavar="OUT_DIR",
                        help="instead of grading, write a Gradescope autograder bundle into "
                             "OUT_DIR, with the options below baked in")
    parser.add_argument("-n", "--runs", type=_positive(int), default=3, metavar="N",
                        help="runs of each test; a test scores only if all pass (default: 3)")
    parser.add_argument("-j", "--jobs", type=_positive(int), default=1, metavar="J",
                        help="tests graded at once (default: 1; the tests are timed and need "
                             "2 CPUs each)")
    parser.add_argument("-o", "--output", default="grade-results", metavar="DIR",
                        help="where results.json, junit.xml, report.txt and the logs of failed "
                             "runs go (default: grade-results/)")
    parser.add_argument("--parts", action="append", default=[], metavar="LIST",
                        help="grade only these: parts (2A) or test names (test_backup_2b, or "
                             "any part of a name), comma-separated; repeatable")
    parser.add_argument("--rubric", metavar="FILE",
                        help="the rubric (JSON; default: instructor/rubric.json)")
    parser.add_argument("--framework", metavar="DIR",
                        help="the pristine framework to grade in (default: the handout built "
                             "from this repository)")
    parser.add_argument("--timeout", type=_positive(float), default=DEFAULT_TIMEOUT,
                        metavar="SECONDS",
                        help=f"wall-time limit of one run (default: {DEFAULT_TIMEOUT:g})")
    parser.add_argument("--memory", type=parse_size, default=parse_size(DEFAULT_MEMORY),
                        metavar="SIZE",
                        help=f"address-space limit of one run (default: {DEFAULT_MEMORY})")
    parser.add_argument("--max-output", type=parse_size, default=parse_size("64M"), metavar="SIZE",
                        help="a run printing more than this is killed and fails (default: 64M)")
    parser.add_argument("--keep-output", type=parse_size, default=parse_size("256K"),
                        metavar="SIZE",
                        help="of each run's output, keep this much for its log: the first and "
                             "last halves (default: 256K)")
    parser.add_argument("--all-runs", action="store_true",
                        help="run every repetition even after one failed (default: stop, since "
                             "the test cannot score any more)")
    parser.add_argument("--time-budget", type=_positive(float), metavar="SECONDS",
                        help="stop starting runs after this long; what is left fails as not run "
                             "(default: none; for --gradescope: "
                             f"{DEFAULT_BUNDLE_BUDGET:g})")
    parser.add_argument("--worktree", action="store_true",
                        help="for a git repository: grade the files as they are on disk, not "
                             "the last commit (e.g. `labs grade . --worktree` for the reference "
                             "solution)")
    parser.add_argument("--user", metavar="NAME",
                        help="run the tests as this unprivileged user (the grader must run as "
                             "root); what the Gradescope bundle does")


def _selectors(args: argparse.Namespace) -> tuple[str, ...]:
    return tuple(s.strip() for item in args.parts for s in item.split(",") if s.strip())


def _baked_options(args: argparse.Namespace) -> list[str]:
    options = ["-n", str(args.runs), "-j", str(args.jobs), "--timeout", f"{args.timeout:g}",
               "--memory", str(args.memory), "--max-output", str(args.max_output),
               "--keep-output", str(args.keep_output),
               "--time-budget", f"{args.time_budget or DEFAULT_BUNDLE_BUDGET:g}"]
    for selector in _selectors(args):
        options += ["--parts", selector]
    if args.all_runs:
        options.append("--all-runs")
    return options


def grade_command(args: argparse.Namespace) -> int:
    from instructor.grading.grader import GradeOptions, Grader
    from instructor.grading.report import (
        render_table,
        save_failed_log,
        summary_lines,
        write_reports,
    )
    from instructor.grading.rubric import RubricError, load_rubric
    from instructor.grading.sandbox import Limits
    from instructor.grading.submission import SubmissionError
    from labs.console import make_console

    err = make_console(stderr=True, highlight=False)
    try:
        rubric = load_rubric(Path(args.rubric) if args.rubric else None)
        options = GradeOptions(
            runs=args.runs, jobs=args.jobs, selectors=_selectors(args), all_runs=args.all_runs,
            time_budget=args.time_budget, user=args.user, worktree=args.worktree,
            limits=Limits(timeout=args.timeout, memory_bytes=args.memory,
                          max_output_bytes=args.max_output, kept_bytes=args.keep_output))
        rubric.select(list(options.selectors))  # reject an unknown part before any work
    except RubricError as exc:
        err.print(f"labs grade: {exc}", markup=False)
        return 2
    framework = Path(args.framework) if args.framework else None
    if framework is not None and not framework.is_dir():
        err.print(f"labs grade: --framework {framework}: not a directory", markup=False)
        return 2
    try:
        grader = Grader(rubric, options, framework=framework)
    except PermissionError as exc:
        err.print(f"labs grade: {exc}", markup=False)
        return 2
    with grader:
        if args.gradescope:
            return _write_gradescope(args, grader, rubric, err)
        out_dir = Path(args.output)
        _clear_previous(out_dir)

        def progress(outcome, run) -> None:
            mark = "[green]passed[/]" if run.passed else f"[red]failed[/]: {run.reason}"
            if not run.passed:
                save_failed_log(out_dir, outcome, run)
            err.print(f"  {outcome.test.part} {outcome.test.name}  run {run.run}/{options.runs}  "
                      f"{run.seconds:5.1f} s  {mark}", soft_wrap=True)

        err.print(f"grading {args.submission} ({len(rubric.select(list(options.selectors)))} "
                  f"tests, up to {options.runs} run(s) each)")
        try:
            report = grader.grade(Path(args.submission), progress=progress,
                                  on_test_done=lambda partial: write_reports(partial, out_dir))
        except SubmissionError as exc:
            err.print(f"labs grade: {exc}", markup=False)
            return 2
        write_reports(report, out_dir)
    out = make_console(highlight=False)
    out.print(render_table(report))
    for line in summary_lines(report):
        out.print(line, markup=False)
    if report.flags:  # for staff only: Gradescope shows stdout to staff, results.json to students
        out.print("Worth a look in the student files (not evidence of anything):", markup=False)
        for flag in report.flags:
            out.print(f"  {flag}", markup=False)
    logs = f"; logs of failed runs in {out_dir}/logs/" if (out_dir / "logs").exists() else ""
    out.print(f"Reports: {out_dir}/results.json, junit.xml, report.txt{logs}", markup=False)
    return 0


def _clear_previous(out_dir: Path) -> None:
    """Remove what an earlier grade wrote there, so old logs are not mistaken for new ones."""
    import shutil

    for name in ("results.json", "junit.xml", "report.txt"):
        (out_dir / name).unlink(missing_ok=True)
    if (out_dir / "logs").is_dir():
        shutil.rmtree(out_dir / "logs")


def _write_gradescope(args, grader, rubric, err) -> int:
    from instructor.grading.gradescope import write_bundle

    try:
        archive = write_bundle(Path(args.gradescope), rubric, grader.pristine(),
                               _baked_options(args))
    except FileExistsError as exc:
        err.print(f"labs grade: {exc}", markup=False)
        return 2
    budget = args.time_budget or DEFAULT_BUNDLE_BUDGET
    print(f"Gradescope bundle written to {args.gradescope}; upload {archive}.\n"
          f"In the assignment's autograder settings, set the timeout above {budget / 60:.0f} "
          "minutes (the bundle stops starting runs then), and give it at least 2 CPUs and "
          "2 GB of memory: see docs/instructors.md.")
    return 0
