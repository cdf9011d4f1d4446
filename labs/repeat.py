"""`labs test`: run tests many times, in parallel, and keep the logs of the runs that fail.

    labs test 2A 2B test_backup_2b -n 100 -p 4

A part (2A, 3B, or a whole lab: 2, 3) stands for every test whose name ends in `_2a`, ...; any
other word is the exact name of one test. Each run is a fresh process, `python -m pytest
<test> -q` in the repository root, so no run inherits threads or state from another. While the
runs go, a live display shows for each test the runs done, the failures and the mean ± standard
deviation of its duration; at the end a table says the same and names the kept logs.

A failed run's output (stdout and stderr, so LOG_LEVEL lines too) is kept in the output
directory as `<test>-<run>-seed<seed>.log`; passing runs leave nothing behind. Run r gets the
network seed `seed + r` (through LABRPC_SEED, read by `labrpc.Network()`), so

    labs test test_backup_2b --seed 1017 -n 1

repeats run 17 of a `--seed 1000` session with the same drops, delays and reorderings. Thread
scheduling and Raft's own timers are not seeded: a seed makes a failure likelier to recur, not
certain.

A run still going after `--timeout` seconds has hung. It gets SIGUSR1, on which faulthandler
writes every thread's stack into its log, and SIGUSR2 for the threads' names (labs/run_one.py);
then SIGINT, so that pytest stops and reports; `KILL_GRACE` seconds later its whole process group
is killed. It counts as failed.
"""

from __future__ import annotations

import difflib
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from labrpc.network import SEED_ENV
from labs.console import make_console

__all__ = [
    "TestId", "Run", "Outcome", "SelectionError", "collect_tests", "select_tests", "run_once",
    "run_tests", "DEFAULT_TIMEOUT",
]

REPO_ROOT = Path(__file__).resolve().parent.parent

# A lab test must finish in 120 s and its pytest-timeout watchdog fires at 130 s (with a stack
# dump of its own); a run still alive at 150 s is stuck beyond what pytest can report.
DEFAULT_TIMEOUT = 150.0
KILL_GRACE = 5.0          # after SIGINT, a hung run has this long to exit before SIGKILL
DUMP_PAUSE = 0.2          # after each dump signal, so that each dump is written whole
LOGS_LISTED = 5           # the final table names at most this many kept logs per test

# `-p no:cacheprovider`: runs in parallel must not race on .pytest_cache.
_PYTEST_ARGS = ("-q", "-p", "no:cacheprovider")

_PART = re.compile(r"^(?P<lab>\d)(?P<part>[a-zA-Z])?$")


class SelectionError(ValueError):
    """A word on the command line names no test, or the tests cannot be collected."""


class _Stopped(Exception):
    """The session is being interrupted: this run does not start."""


@dataclass(frozen=True)
class TestId:
    __test__ = False   # not a pytest test class, despite its name

    name: str      # the test function's name: test_backup_2b
    nodeid: str    # what pytest runs: tests/raft/test_raft_2b.py::test_backup_2b


@dataclass(frozen=True)
class Run:
    test: TestId
    number: int    # 0 .. n-1
    seed: int


@dataclass
class Outcome:
    run: Run
    passed: bool
    seconds: float
    returncode: int | None
    timed_out: bool = False
    log: Path | None = None   # the kept log of a failed run


# --- Choosing the tests -------------------------------------------------------------------------

def collect_tests(root: Path, tests_dir: Path) -> list[TestId]:
    """Every test under `tests_dir`, in pytest's order, one entry per test function."""
    command = [sys.executable, "-m", "pytest", "--collect-only", *_PYTEST_ARGS,
               "--rootdir", str(root), str(tests_dir)]
    result = subprocess.run(command, cwd=root, capture_output=True, text=True)
    tests: dict[str, TestId] = {}
    for line in result.stdout.splitlines():
        if "::" not in line or line.startswith(" "):
            continue
        nodeid = line.strip().split("[", 1)[0]      # parametrized: run every parameter set
        name = nodeid.rsplit("::", 1)[1]
        tests.setdefault(nodeid, TestId(name, nodeid))
    if result.returncode != 0 or not tests:
        raise SelectionError(f"cannot collect the tests in {tests_dir} "
                             f"(pytest exit status {result.returncode}):\n"
                             + (result.stdout + result.stderr).strip())
    return list(tests.values())


def select_tests(tests: list[TestId], words: list[str]) -> list[TestId]:
    """The tests `words` name, in collection order: `2A` (a part), `2` (a lab), `test_x`."""
    chosen: set[TestId] = set()
    for word in words:
        part = _PART.match(word)
        if part:
            suffix = re.compile(rf"_{part['lab']}{(part['part'] or '[a-z]').lower()}$")
            matches = [t for t in tests if suffix.search(t.name.lower()) and not _framework(t)]
        else:
            matches = [t for t in tests if t.name == word or t.nodeid == word]
        if not matches:
            raise SelectionError(_no_match(tests, word, part))
        chosen.update(matches)
    return [t for t in tests if t in chosen]


def _framework(test: TestId) -> bool:
    """A test of the framework (tests/framework/): it belongs to no lab and no part, even one
    named `test_2a_only_student_passes_2a` or `..._up_to_7s`."""
    return "framework" in Path(test.nodeid.split("::")[0]).parts


def _no_match(tests: list[TestId], word: str, part: re.Match[str] | None) -> str:
    """Why `word` selects nothing: the parts or labs there are, or the test names closest to it."""
    if part:
        parts = sorted({m[1].upper() for t in tests
                        if (m := re.search(r"_(\d[a-z])$", t.name.lower())) and not _framework(t)})
        if part["part"]:
            return f"no part {word.upper()} (parts: {', '.join(parts)})"
        return f"no lab {word} (labs: {', '.join(sorted({p[0] for p in parts}))})"
    close = difflib.get_close_matches(word, sorted({t.name for t in tests}), n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return f"no test is named {word!r}{hint}"


# --- One run ------------------------------------------------------------------------------------

class _Running:
    """The child processes alive now, so that Ctrl-C can end them all."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.processes: set[subprocess.Popen[bytes]] = set()
        self.stopping = threading.Event()

    def kill_all(self) -> None:
        self.stopping.set()
        with self.lock:
            for process in self.processes:
                _signal_group(process, signal.SIGKILL)


def _signal_group(process: subprocess.Popen[bytes], sig: int) -> None:
    # Each run leads a process group of its own (start_new_session), so this reaches anything
    # the test started too, and nothing else.
    try:
        os.killpg(process.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def run_once(run: Run, root: Path, scratch: Path, output: Path, timeout: float,
             running: _Running | None = None, options: str = "", *,
             pytest_args: Sequence[str] = (), env: Mapping[str, str] | None = None,
             tool: str = "labs test", reproduce: str | None = None) -> Outcome:
    """Run one test once in a fresh process; keep its log in `output` if it fails.
    `options` are `labs test` options the log's "reproduce" line needs (`--tests-dir`).

    Other tools reuse this: `pytest_args` go before `run.test.nodeid` (which may then be a
    directory, e.g. `-x --name _2a` and `tests/raft`), `env` adds to the environment, and
    `tool` and `reproduce` replace the log header's name and its "reproduce" line."""
    running = running or _Running()
    log_path = scratch / f"{run.test.name}-{run.number}.log"
    extra_env = dict(env or {})
    # PYTHONDONTWRITEBYTECODE cleared: each run is a fresh process, which would otherwise compile
    # the framework and rewrite the test module again (as the Makefile's test targets do).
    env = {**os.environ, **extra_env, SEED_ENV: str(run.seed), "PYTHONUNBUFFERED": "1",
           "PYTHONDONTWRITEBYTECODE": ""}
    # labs.run_one is `python -m pytest` that answers SIGUSR1/SIGUSR2 with thread dumps.
    command = [sys.executable, "-m", "labs.run_one", *_PYTEST_ARGS,
               "--rootdir", str(root), *pytest_args, run.test.nodeid]
    assignments = "".join(f"{name}={value} " for name, value in extra_env.items())
    reproduce = reproduce or f"labs test {run.test.name} --seed {run.seed} -n 1{options}"
    timed_out = False
    where = _display_path(root)  # relative to where the tool runs: a log names no machine
    with open(log_path, "w") as log:
        log.write(f"# {tool}: {run.test.name}, run {run.number}, seed {run.seed}\n"
                  f"# run:       {assignments}{SEED_ENV}={run.seed} python -m pytest "
                  f"{' '.join((*_PYTEST_ARGS, *pytest_args))} {run.test.nodeid}   (in {where})\n"
                  f"# reproduce: {reproduce}\n\n")
        log.flush()
        start = time.monotonic()
        with running.lock:
            if running.stopping.is_set():
                raise _Stopped
            process = subprocess.Popen(command, cwd=root, env=env, stdin=subprocess.DEVNULL,
                                       stdout=log, stderr=subprocess.STDOUT,
                                       start_new_session=True)
            running.processes.add(process)
        try:
            try:
                returncode: int | None = process.wait(timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
                returncode = _stop_hung(process)
        finally:
            with running.lock:
                running.processes.discard(process)
        seconds = time.monotonic() - start
        passed = returncode == 0 and not timed_out
        if timed_out:
            log.write(f"\n# {tool}: still running after --timeout {timeout:g} s: the thread "
                      f"dump above was taken then; the run was stopped and counts as failed.\n")
        else:
            log.write(f"\n# {tool}: {'passed' if passed else 'FAILED'} "
                      f"(exit status {returncode}) in {seconds:.1f} s\n")
    if passed or running.stopping.is_set():
        log_path.unlink()
        return Outcome(run, passed, seconds, returncode)
    output.mkdir(parents=True, exist_ok=True)
    kept = output / f"{run.test.name}-{run.number}-seed{run.seed}.log"
    shutil.move(str(log_path), kept)
    return Outcome(run, False, seconds, returncode, timed_out, kept)


def _run_and_draw(*args: Any, **kwargs: Any) -> Outcome:
    """run_once, then, for a kept log, its timeline page beside it (`labs timeline LOG`)."""
    outcome = run_once(*args, **kwargs)
    if outcome.log is not None:
        from labs.timeline.command import render_log

        try:
            render_log(outcome.log, only_with_data=True)
        except Exception as exc:  # a page that cannot be drawn must not lose the run's verdict
            with open(outcome.log, "a") as log:
                log.write(f"# labs test: no timeline page: {type(exc).__name__}: {exc}\n")
    return outcome


def _stop_hung(process: subprocess.Popen[bytes]) -> int | None:
    """Thread stacks (SIGUSR1) and names (SIGUSR2), then SIGINT so that pytest reports, then
    SIGKILL for the whole group."""
    for dump in (signal.SIGUSR1, signal.SIGUSR2):
        try:
            process.send_signal(dump)   # the run's own process only; they would kill others
        except ProcessLookupError:
            pass
        time.sleep(DUMP_PAUSE)
    _signal_group(process, signal.SIGINT)
    try:
        return process.wait(KILL_GRACE)
    except subprocess.TimeoutExpired:
        _signal_group(process, signal.SIGKILL)
        return process.wait()


def _raise_keyboard_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


class Interruption:
    """What `stop_all_on_interrupt` saw: `interrupted` once Ctrl-C or SIGTERM ended the block."""

    interrupted = False


@contextmanager
def stop_all_on_interrupt(running: _Running, pool: ThreadPoolExecutor) -> Iterator[Interruption]:
    """Around the runs of a session: Ctrl-C, or SIGTERM (`kill` of this process; the runs lead
    sessions of their own, so they would not get it), kills every run, cancels those not
    started and ends the block quietly with `.interrupted` set. Any other exception kills every
    run too (a bug here must not leave runs behind) and goes on."""
    interruption = Interruption()
    in_main_thread = threading.current_thread() is threading.main_thread()
    if in_main_thread:
        previous_sigterm = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        yield interruption
    except KeyboardInterrupt:
        interruption.interrupted = True
        running.kill_all()
        pool.shutdown(wait=True, cancel_futures=True)
    except BaseException:
        running.kill_all()
        raise
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous_sigterm)


# --- Many runs ----------------------------------------------------------------------------------

@dataclass
class _TestStats:
    test: TestId
    total: int
    done: int = 0
    failed: list[Outcome] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)   # runs that ended on their own

    def add(self, outcome: Outcome) -> None:
        self.done += 1
        if not outcome.passed:
            self.failed.append(outcome)
        if not outcome.timed_out:
            self.seconds.append(outcome.seconds)

    def time_text(self) -> str:
        if not self.seconds:
            return "-"
        mean = statistics.fmean(self.seconds)
        spread = statistics.stdev(self.seconds) if len(self.seconds) > 1 else 0.0
        return f"{mean:.2f} ± {spread:.2f}"


def _display_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _failed_text(stats: _TestStats) -> Text:
    hung = sum(1 for o in stats.failed if o.timed_out)
    text = Text(str(len(stats.failed)), style="bold red" if stats.failed else "green")
    if hung:
        text.append(f" ({hung} hung)", style="red")
    return text


def _summary_table(all_stats: list[_TestStats], output: Path) -> Table:
    table = Table()
    table.add_column("Test")
    table.add_column("Failed", justify="right")
    table.add_column("Total", justify="right")
    table.add_column("Time (s)", justify="right")
    table.add_column(f"Failed runs: logs in {_display_path(output)}/", overflow="fold")
    for stats in all_stats:
        lines = []
        for outcome in sorted(stats.failed, key=lambda o: o.run.number)[:LOGS_LISTED]:
            hung = " (hung)" if outcome.timed_out else ""
            lines.append(f"{outcome.log.name}{hung}" if outcome.log
                         else f"run {outcome.run.number}, seed {outcome.run.seed}")
        if len(stats.failed) > LOGS_LISTED:
            lines.append(f"... and {len(stats.failed) - LOGS_LISTED} more")
        table.add_row(stats.test.name, _failed_text(stats), str(stats.done),
                      stats.time_text(), "\n".join(lines))
    return table


def run_tests(words: list[str], *, iterations: int, workers: int, output: Path,
              timeout: float, seed: int | None, tests_dir: Path | None = None,
              console: Console | None = None) -> int:
    """`labs test`: 0 if every run passed, 1 if any failed, 2 for bad arguments, 130 on Ctrl-C."""
    console = console or make_console(highlight=False)
    default_tests_dir = (REPO_ROOT / "tests").resolve()
    tests_dir = (tests_dir or default_tests_dir).resolve()
    root = tests_dir.parent
    # Relative to where `labs test` runs, as the logs' paths are: a log then names no machine.
    options = "" if tests_dir == default_tests_dir else f" --tests-dir {_display_path(tests_dir)}"
    if iterations < 1 or workers < 1 or timeout <= 0:
        console.print("labs test: -n, -p and --timeout must be positive", style="red")
        return 2
    try:
        tests = select_tests(collect_tests(root, tests_dir), words)
    except SelectionError as exc:
        console.print(f"labs test: {exc}", style="red", markup=False)
        return 2
    base_seed = seed if seed is not None else random.randrange(1, 1_000_000)
    # Round-robin over the tests, so that every test's numbers fill in as the session goes.
    runs = [Run(test, number, base_seed + number)
            for number in range(iterations) for test in tests]
    all_stats = {test: _TestStats(test, iterations) for test in tests}
    console.print(_title(tests, iterations, workers, base_seed), markup=False)

    running = _Running()
    progress, task_of = _progress_bars(console, tests, iterations)
    with tempfile.TemporaryDirectory(prefix="labs-test-") as scratch, progress, \
            ThreadPoolExecutor(max_workers=workers) as pool, \
            stop_all_on_interrupt(running, pool) as interruption:
        pending: set[Future[Outcome]] = {
            pool.submit(_run_and_draw, run, root, Path(scratch), output, timeout, running, options)
            for run in runs}
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                _record(future.result(), all_stats, progress, task_of, console)
    return _report(console, list(all_stats.values()), output, interruption.interrupted)


def _title(tests: list[TestId], iterations: int, workers: int, base_seed: int) -> str:
    return (f"labs test: {len(tests)} test{'s' * (len(tests) != 1)} × {iterations} "
            f"run{'s' * (iterations != 1)}, {workers} at a time, seeds {base_seed}.."
            f"{base_seed + iterations - 1}")


def _progress_bars(console: Console, tests: list[TestId],
                   iterations: int) -> tuple[Progress, dict[TestId, TaskID]]:
    """A bar per test (on a terminal only), and each test's bar."""
    progress = Progress(
        TextColumn("{task.description}"), BarColumn(bar_width=24), MofNCompleteColumn(),
        TextColumn("{task.fields[failed]}"), TextColumn("{task.fields[time]}"),
        TimeElapsedColumn(), console=console, transient=True, disable=not console.is_terminal,
    )
    width = max(len(t.name) for t in tests)
    task_of = {test: progress.add_task(test.name.ljust(width), total=iterations,
                                       failed="0 failed", time="")
               for test in tests}
    return progress, task_of


def _record(outcome: Outcome, all_stats: dict[TestId, _TestStats], progress: Progress,
            task_of: dict[TestId, TaskID], console: Console) -> None:
    """Count a finished run, advance its test's bar, and name a failed run's log at once."""
    stats = all_stats[outcome.run.test]
    stats.add(outcome)
    failed = len(stats.failed)
    progress.update(task_of[outcome.run.test], advance=1,
                    failed=f"[red]{failed} failed" if failed else "0 failed",
                    time=f"{stats.time_text()} s" if stats.seconds else "")
    if not outcome.passed:
        what = "HUNG" if outcome.timed_out else "FAILED"
        console.print(
            Text(f"{what} {outcome.run.test.name} run {outcome.run.number} "
                 f"(seed {outcome.run.seed}) -> "
                 f"{_display_path(outcome.log) if outcome.log else ''}",
                 style="red"))


def _report(console: Console, all_stats: list[_TestStats], output: Path,
            interrupted: bool) -> int:
    """The summary table and last line; the exit status of `labs test`."""
    console.print(_summary_table(all_stats, output))
    total = sum(s.done for s in all_stats)
    failed = sum(len(s.failed) for s in all_stats)
    if interrupted:
        console.print(f"interrupted after {total} runs; {failed} failed", style="yellow")
        return 130
    if failed:
        console.print(f"{failed} of {total} runs failed; their logs are in "
                      f"{_display_path(output)}/", style="bold red", markup=False)
        return 1
    console.print("the run passed" if total == 1 else f"all {total} runs passed",
                  style="bold green")
    return 0
