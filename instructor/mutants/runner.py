"""`labs mutants`: how well the lab suites catch the bugs of the mutant corpus.

    labs mutants -n 10 -p 2                 # every mutant, 10 runs each, 2 runs at a time
    labs mutants --only vote-twice-in-term -n 1

Each selected mutant is applied to its own scratch copy of the repository (the files `git
ls-files` lists, as they are on disk, so uncommitted changes to the reference count). A run of
a mutant runs the suites of the parts the mutant lists, in that order (cheapest first), each as
one `python -m pytest tests/raft -x --name _2b` in the mutant's copy, and stops at the first
part that fails: the mutant is killed, by that part's first failing test. A run that passes
every listed part is one the mutant survived. Once a run has killed the mutant, later runs try
that test first, alone, and run the rest of its part only if it passes: the same verdict, for
the cost of one test when it kills again. Runs go `-p` at a time through labs/repeat.py's
runner (a fresh process group per part, its log kept if it fails, a thread dump if it hangs);
run r has network seed S + r for every mutant.

A part's process may take `--timeout` seconds per test it selects (the tests' own 120 s limit
and their 130 s watchdog apply inside it as always). A mutant that does not apply is reported
as such, never as killed.

The kill matrix (mutant x part: killed k of the r runs that reached the part, the first failing
test, the seconds) is printed and written to DIR/matrix.json and DIR/matrix.md, rewritten after
every run so that an interrupted session leaves what it measured; the logs of the failing part
runs are in DIR/logs/, and the KV histories that failed a linearizability check in
DIR/test-failures/<mutant>/.
"""

from __future__ import annotations

import difflib
import json
import math
import random
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from instructor.handout import _tracked_files
from instructor.mutants.mutant import (
    CORPUS_DIR,
    PARTS,
    ApplyError,
    Mutant,
    MutantFormatError,
    apply_mutant,
    load_corpus,
    mutant_diff,
)
from labs.console import make_console
from labs.repeat import (
    DEFAULT_TIMEOUT,
    Run,
    SelectionError,
    TestId,
    _display_path,
    _Running,
    _Stopped,
    collect_tests,
    run_once,
    select_tests,
    stop_all_on_interrupt,
)

__all__ = ["KILL_SHARE", "PART_DIRS", "PartRun", "MutantRun", "MutantResult", "run_mutants",
           "kill_threshold", "list_mutants", "show_diffs"]

REPO_ROOT = Path(__file__).resolve().parents[2]
PART_DIRS = {"2": "tests/raft", "3": "tests/kvraft"}   # a part's lab -> its suite
KILL_SHARE = 0.9          # "killed": in at least this share of the runs (9 of 10)
SUMMARY_COLUMNS = 240     # the width pytest lays out a part's log for
TOOL = "labs mutants"

# pytest's short summary (-ra): `FAILED tests/raft/test_raft_2a.py::test_x - TesterFailure: ...`
_SUMMARY = re.compile(r"^(?P<kind>FAILED|ERROR) (?P<nodeid>[^\s:]+(?:::(?P<name>[^\s\[]+))?\S*)"
                      r"(?: - (?P<why>.*))?$", re.M)
_NO_TESTS = (4, 5)        # pytest: usage error (--name matched nothing), no tests collected


@dataclass
class PartRun:
    """One part's suite, once, against one mutant."""

    part: str
    passed: bool            # True: the mutant survived this part
    seconds: float
    test: str = ""          # the first failing test ("" if none could be named)
    why: str = ""           # what failed it: pytest's summary line, "hung", ...
    log: str = ""           # the kept log (relative to the output directory)
    could_not_run: bool = False   # pytest found nothing to run: a problem of the tool, no kill


@dataclass
class MutantRun:
    number: int
    seed: int
    parts: list[PartRun] = field(default_factory=list)

    @property
    def killer(self) -> PartRun | None:
        return next((p for p in self.parts if not p.passed and not p.could_not_run), None)

    @property
    def broken(self) -> PartRun | None:
        return next((p for p in self.parts if p.could_not_run), None)

    @property
    def seconds(self) -> float:
        return sum(p.seconds for p in self.parts)


@dataclass
class MutantResult:
    mutant: Mutant
    error: str = ""                 # why it did not apply (ApplyError's whole message)
    error_reason: str = ""          # the same in one line
    runs: list[MutantRun] = field(default_factory=list)

    @property
    def applied(self) -> bool:
        return not self.error

    @property
    def killed(self) -> int:
        return sum(1 for run in self.runs if run.killer is not None)

    def part_counts(self, part: str) -> tuple[int, int]:
        """(runs that failed this part's suite, runs that ran it)."""
        ran = [p for run in self.runs for p in run.parts if p.part == part and not p.could_not_run]
        return sum(1 for p in ran if not p.passed), len(ran)

    def last_kill(self) -> PartRun | None:
        """The part run that killed the latest finished run that was killed."""
        killers = [run.killer for run in list(self.runs) if run.killer is not None]
        return killers[-1] if killers else None

    def first_failures(self) -> Counter:
        return Counter(run.killer.test or run.killer.why for run in self.runs if run.killer)

    def mean_seconds(self) -> float | None:
        done = [run.seconds for run in self.runs if run.broken is None]
        return statistics.fmean(done) if done else None


def kill_threshold(runs: int) -> int:
    """Kills out of `runs` that make a mutant "killed": 9 of 10, 1 of 1, 3 of 3."""
    return max(1, math.ceil(KILL_SHARE * runs - 1e-9))


def _verdict(result: MutantResult, runs: int) -> str:
    """Judged on the runs that finished (fewer than `runs` if the session was interrupted)."""
    if not result.applied:
        return "not applied"
    if not result.runs:
        return "not run"
    if result.killed >= kill_threshold(len(result.runs)):
        return "killed"
    return "sometimes" if result.killed else "survived"


# --- Selection ----------------------------------------------------------------------------------

def select_mutants(corpus: list[Mutant], only: list[str]) -> list[Mutant]:
    """The mutants `only` names (ids, or comma-separated lists of them), in corpus order."""
    if not only:
        return corpus
    wanted = [word for entry in only for word in entry.split(",") if word]
    by_id = {m.id: m for m in corpus}
    unknown = [w for w in wanted if w not in by_id]
    if unknown:
        close = difflib.get_close_matches(unknown[0], sorted(by_id), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise SelectionError(f"no mutant {unknown[0]!r} in the corpus{hint}")
    return [m for m in corpus if m.id in set(wanted)]


# --- Trees --------------------------------------------------------------------------------------

def copy_repository(root: Path, target: Path) -> None:
    """The repository's files (tracked and untracked-but-not-ignored), as on disk, in `target`."""
    for relative in _tracked_files(root):
        destination = target / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / relative, destination)


def _reference_state(root: Path, mutants: list[Mutant]) -> dict:
    """Which reference the mutants were applied to: the commit, and edited files it differs in."""
    files = sorted({f for m in mutants for f in m.files})
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, check=True,
                                capture_output=True, text=True).stdout.strip()
        changed = subprocess.run(["git", "status", "--porcelain", "--", *files], cwd=root,
                                 check=True, capture_output=True, text=True).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "modified": []}
    return {"commit": commit, "modified": sorted(line[3:] for line in changed)}


# --- One run of one mutant ----------------------------------------------------------------------

def _part_run(outcome, part: str, output: Path) -> PartRun:
    if outcome.passed:
        return PartRun(part, True, outcome.seconds)
    log = outcome.log
    text = log.read_text(errors="replace") if log else ""
    relative = str(log.relative_to(output)) if log else ""
    if outcome.timed_out:
        return PartRun(part, False, outcome.seconds, "", "hung (stopped after --timeout)",
                       relative)
    summary = list(_SUMMARY.finditer(text))   # pytest's short summary ends the log: the last
    if summary:
        match = summary[-1]
        name = match["name"] or ""
        why = (match["why"] or ("collection error" if not name else match["kind"].lower()))
        return PartRun(part, False, outcome.seconds, name, why[:300], relative)
    if outcome.returncode in _NO_TESTS:
        return PartRun(part, False, outcome.seconds, "", f"pytest ran no test (exit status "
                       f"{outcome.returncode})", relative, could_not_run=True)
    return PartRun(part, False, outcome.seconds, "", f"exit status {outcome.returncode}", relative)


def _run_mutant(mutant: Mutant, number: int, seed: int, tree: Path, scratch: Path,
                output: Path, suites: _Suites, running: _Running,
                last_kill: Callable[[], PartRun | None] = lambda: None) -> MutantRun:
    """One run: the mutant's parts in order, until one fails.

    A part whose test killed an earlier run of this mutant runs that test first, alone, and
    the rest of the part only if it passes: the verdict is the whole part's, and the cost of a
    run that kills again is one test instead of every test before it."""
    result = MutantRun(number, seed)
    env = {"PYTHONPATH": str(tree), "COLUMNS": str(SUMMARY_COLUMNS)}

    def run_part(label: str, target: str, pytest_args: tuple[str, ...], part: str) -> PartRun:
        run = Run(TestId(f"{mutant.id}.{label}", target), number, seed)
        outcome = run_once(
            run, tree, scratch, output / "logs", suites.timeouts[part], running,
            pytest_args=pytest_args,
            # COLUMNS: pytest cuts its one-line failure summary to the terminal's width.
            env=env, tool=TOOL, reproduce=f"labs mutants --only {mutant.id} --seed {seed} -n 1")
        return _part_run(outcome, part, output)

    for part in mutant.parts:
        selection = ("-x", "--name", f"_{part.lower()}")
        earlier = last_kill()
        first = (suites.nodeids.get(earlier.test)
                 if earlier is not None and earlier.part == part else None)
        if first is None:
            part_run = run_part(part.lower(), PART_DIRS[part[0]], selection, part)
        else:
            part_run = run_part(f"{part.lower()}.first", first, ("-x",), part)
            if part_run.passed:
                spent = part_run.seconds
                part_run = run_part(part.lower(), PART_DIRS[part[0]],
                                    (*selection, "--deselect", first), part)
                part_run.seconds += spent
        result.parts.append(part_run)
        if not part_run.passed:
            break
    return result


# --- Reports ------------------------------------------------------------------------------------

def _shown_parts(results: list[MutantResult]) -> list[str]:
    used = {p for r in results for p in r.mutant.parts}
    return [p for p in PARTS if p in used]


def _cell(result: MutantResult, part: str) -> str:
    if part not in result.mutant.parts or not result.applied:
        return ""
    killed, ran = result.part_counts(part)
    return f"{killed}/{ran}" if ran else "–"


def _failures_text(result: MutantResult) -> str:
    if not result.applied:
        return f"did not apply: {result.error_reason}"
    counts = result.first_failures()
    if sum(counts.values()) <= 1:
        return ", ".join(counts)
    return ", ".join(f"{name} ({n})" for name, n in counts.most_common())


def _score(results: list[MutantResult], runs: int) -> dict:
    verdicts = Counter(_verdict(r, runs) for r in results)
    incomplete = sum(1 for r in results if r.applied and 0 < len(r.runs) < runs)
    return {"mutants": len(results), "killed": verdicts["killed"],
            "sometimes": verdicts["sometimes"], "survived": verdicts["survived"],
            "not_applied": verdicts["not applied"], "not_run": verdicts["not run"],
            "incomplete": incomplete, "threshold": kill_threshold(runs), "runs": runs}


def score_line(score: dict) -> str:
    applied = score["mutants"] - score["not_applied"]
    line = (f"score: {score['killed']} of {applied} mutants killed in ≥ {score['threshold']} of "
            f"{score['runs']} run{'s' * (score['runs'] != 1)}")
    if score["threshold"] > 1:
        line += f"; {score['sometimes']} killed in fewer"
    line += f"; {score['survived']} never killed"
    if score["not_applied"]:
        line += f"; {score['not_applied']} did not apply"
    if score["incomplete"]:
        line += (f"; {score['incomplete']} finished fewer than {score['runs']} runs (judged on "
                 f"those, {KILL_SHARE:.0%} of them)")
    if score["not_run"]:
        line += f"; {score['not_run']} not run (interrupted)"
    return line


def matrix_table(results: list[MutantResult], runs: int) -> Table:
    table = Table(title="mutant kill matrix: killed/runs that reached the part")
    table.add_column("Mutant")
    parts = _shown_parts(results)
    for part in parts:
        table.add_column(part, justify="right")
    table.add_column("Killed", justify="right")
    table.add_column("First failing test", overflow="fold")
    table.add_column("Time (s)", justify="right")
    threshold = kill_threshold(runs)
    for result in results:
        if not result.applied:
            killed = Text("not applied", style="bold red")
        else:
            style = ("green" if result.killed >= threshold
                     else "yellow" if result.killed else "bold red")
            killed = Text(f"{result.killed}/{len(result.runs)}", style=style)
        seconds = result.mean_seconds()
        table.add_row(result.mutant.id, *(_cell(result, p) for p in parts), killed,
                      _failures_text(result), "" if seconds is None else f"{seconds:.1f}")
    return table


def _json_report(results: list[MutantResult], meta: dict) -> dict:
    runs = meta["runs"]
    mutants = []
    for result in results:
        entry: dict[str, Any] = {
            "id": result.mutant.id, "description": result.mutant.description,
            "parts": list(result.mutant.parts), "note": result.mutant.note,
            "verdict": _verdict(result, runs), "applied": result.applied,
            "error": result.error or None, "killed": result.killed, "runs": len(result.runs),
            "first_failures": dict(result.first_failures().most_common()),
            "mean_seconds": result.mean_seconds(),
            "matrix": {},
            "run_details": [],
        }
        for part in result.mutant.parts:
            killed, ran = result.part_counts(part)
            times = [p.seconds for r in result.runs for p in r.parts if p.part == part]
            entry["matrix"][part] = {"killed": killed, "ran": ran,
                                     "mean_seconds": statistics.fmean(times) if times else None}
        for run in sorted(result.runs, key=lambda r: r.number):
            killer = run.killer
            entry["run_details"].append({
                "run": run.number, "seed": run.seed, "seconds": round(run.seconds, 2),
                "killed_by": killer.part if killer else None,
                "test": killer.test if killer else None, "why": killer.why if killer else None,
                "log": killer.log if killer else (run.broken.log if run.broken else None),
                "could_not_run": run.broken.part if run.broken else None,
                "parts": {p.part: {"passed": p.passed, "seconds": round(p.seconds, 2)}
                          for p in run.parts},
            })
        mutants.append(entry)
    return {**meta, "score": _score(results, runs), "mutants": mutants}


def _markdown_report(results: list[MutantResult], meta: dict) -> str:
    runs = meta["runs"]
    parts = _shown_parts(results)
    reference = meta["reference"]
    where = f"commit {reference['commit']}" if reference.get("commit") else "the working tree"
    if reference.get("modified"):
        where += f" with uncommitted changes to {', '.join(reference['modified'])}"
    lines = [
        "# Mutant kill matrix", "",
        f"`{meta['command']}`: {len(results)} mutants, {runs} run{'s' * (runs != 1)} each, "
        f"{meta['workers']} at a time, network seeds {meta['seed']}..{meta['seed'] + runs - 1}, "
        f"on {where}; started {meta['started']}, {meta['seconds']:.0f} s in all.", "",
        f"**{score_line(_score(results, runs))}**", "",
        "A part's cell, k/r: of the r runs that reached this part's suite, k failed it. Parts run "
        "in the order the mutant lists them (cheapest first) and a run stops at its first "
        "failing part, so a later part runs only in the runs that survived the earlier ones. "
        "Blank: a part the mutant does not list; –: listed, but no run reached it.", "",
        "| Mutant | " + " | ".join(parts) + " | Killed | First failing test | Time (s) |",
        "|---|" + "---:|" * len(parts) + "---:|---|---:|",
    ]
    for result in results:
        killed = f"{result.killed}/{len(result.runs)}" if result.applied else "**not applied**"
        seconds = result.mean_seconds()
        failures = _failures_text(result).replace("|", "\\|")
        lines.append(f"| `{result.mutant.id}` | " + " | ".join(_cell(result, p) for p in parts)
                     + f" | {killed} | {failures} | "
                     + ("" if seconds is None else f"{seconds:.1f}") + " |")
    lines += ["", "## The mutants", "", "| Mutant | Parts | The bug |", "|---|---|---|"]
    for result in results:
        m = result.mutant
        text = (m.description + (f" *({m.note})*" if m.note else "")).replace("|", "\\|")
        lines.append(f"| `{m.id}` | {' '.join(m.parts)} | {text} |")
    return "\n".join(lines) + "\n"


def _write_reports(results: list[MutantResult], meta: dict, output: Path) -> None:
    output.mkdir(parents=True, exist_ok=True)
    for name, text in (("matrix.json", json.dumps(_json_report(results, meta), indent=2) + "\n"),
                       ("matrix.md", _markdown_report(results, meta))):
        temporary = output / f".{name}.tmp"
        temporary.write_text(text, encoding="utf-8")
        temporary.replace(output / name)


# --- The command --------------------------------------------------------------------------------

def _selected_or_say_why(corpus_dir: Path, only: list[str] | None,
                         console: Console) -> list[Mutant] | None:
    """The corpus's mutants that `only` selects (all if empty); None once the console says why
    there are none (a malformed mutant file, an unknown id)."""
    try:
        return select_mutants(load_corpus(corpus_dir), only or [])
    except (MutantFormatError, SelectionError) as exc:
        console.print(f"labs mutants: {exc}", style="red", markup=False)
        return None


def list_mutants(corpus_dir: Path = CORPUS_DIR, only: list[str] | None = None,
                 console: Console | None = None) -> int:
    console = console or make_console(highlight=False)
    mutants = _selected_or_say_why(corpus_dir, only, console)
    if mutants is None:
        return 2
    table = Table(title=f"{len(mutants)} mutants in {_display_path(corpus_dir)}")
    table.add_column("Mutant")
    table.add_column("Parts")
    table.add_column("The bug", overflow="fold")
    for m in mutants:
        table.add_row(m.id, " ".join(m.parts), m.description)
    console.print(table)
    return 0


def show_diffs(root: Path = REPO_ROOT, corpus_dir: Path = CORPUS_DIR,
               only: list[str] | None = None, console: Console | None = None) -> int:
    """Print what each selected mutant changes in the reference at `root`."""
    console = console or make_console(highlight=False)
    mutants = _selected_or_say_why(corpus_dir, only, console)
    if mutants is None:
        return 2
    status = 0
    for m in mutants:
        console.print(f"# {m.id} ({' '.join(m.parts)}): {m.description}", markup=False,
                      style="bold", soft_wrap=True)
        try:
            console.print(mutant_diff(m, root), markup=False, highlight=False, end="")
        except ApplyError as exc:
            console.print(str(exc), style="red", markup=False)
            status = 1
    return status


def run_mutants(only: list[str], *, iterations: int, workers: int, output: Path,
                timeout: float = DEFAULT_TIMEOUT, seed: int | None = None,
                root: Path = REPO_ROOT, corpus_dir: Path = CORPUS_DIR,
                console: Console | None = None, command: str = TOOL) -> int:
    """`labs mutants`: 0 if every selected mutant applied and was killed in every run, 1 if one
    survived a run or did not apply, 2 for bad arguments, 130 on Ctrl-C."""
    console = console or make_console(highlight=False)
    if iterations < 1 or workers < 1 or timeout <= 0:
        console.print("labs mutants: -n, -p and --timeout must be positive", style="red")
        return 2
    mutants = _selected_or_say_why(corpus_dir, only, console)
    if mutants is None:
        return 2
    if not mutants:
        console.print(f"labs mutants: no mutant in {corpus_dir}", style="red")
        return 2
    root = Path(root).resolve()
    output = Path(output)
    base_seed = seed if seed is not None else random.randrange(1, 1_000_000)
    started = time.monotonic()
    meta = {
        "command": command, "runs": iterations, "workers": workers, "seed": base_seed,
        "timeout_per_test": timeout, "started": datetime.now(timezone.utc).isoformat(
            timespec="seconds"), "seconds": 0.0, "reference": _reference_state(root, mutants),
    }

    with tempfile.TemporaryDirectory(prefix="labs-mutants-") as scratch_name:
        scratch = Path(scratch_name)
        base = scratch / "reference"
        copy_repository(root, base)
        results: list[MutantResult] = []
        trees: dict[str, Path] = {}
        for mutant in mutants:
            result = MutantResult(mutant)
            tree = scratch / "trees" / mutant.id
            shutil.copytree(base, tree, symlinks=True)
            try:
                apply_mutant(mutant, tree)
                trees[mutant.id] = tree
            except ApplyError as exc:
                result.error, result.error_reason = str(exc), exc.reason
                console.print(f"NOT APPLIED {exc}", style="red", markup=False, soft_wrap=True)
            results.append(result)

        try:
            suites = _collect_suites(base, [m for m in mutants if m.id in trees], timeout)
        except SelectionError as exc:
            console.print(f"labs mutants: {exc}", style="red", markup=False)
            return 2
        runnable = [r for r in results if r.applied]
        title = (f"labs mutants: {len(runnable)} mutant{'s' * (len(runnable) != 1)} × "
                 f"{iterations} run{'s' * (iterations != 1)}, {workers} at a time, seeds "
                 f"{base_seed}..{base_seed + iterations - 1}")
        console.print(title, markup=False)
        interrupted = _run_all(runnable, trees, iterations, workers, base_seed, scratch, output,
                               suites, console,
                               lambda: _finish(results, meta, output, started))
        _keep_histories(trees, output)

    _finish(results, meta, output, started)
    console.print(matrix_table(results, iterations))
    score = _score(results, iterations)
    console.print(score_line(score), markup=False,
                  style="bold green" if score["killed"] == len(results) else "bold")
    console.print(f"matrix: {_display_path(output / 'matrix.md')}, "
                  f"{_display_path(output / 'matrix.json')}; logs of the killing runs in "
                  f"{_display_path(output / 'logs')}/", markup=False, soft_wrap=True)
    if interrupted:
        console.print("interrupted: the matrix holds the runs that finished", style="yellow")
        return 130
    everything_killed = all(r.applied and r.killed == len(r.runs) == iterations for r in results)
    return 0 if everything_killed else 1


def _keep_histories(trees: dict[str, Path], output: Path) -> None:
    """The KV tests leave the histories that failed the linearizability check in their tree's
    test-failures/: keep them, under DIR/test-failures/<mutant>/."""
    for mutant_id, tree in trees.items():
        histories = tree / "test-failures"
        if histories.is_dir() and any(histories.iterdir()):
            shutil.copytree(histories, output / "test-failures" / mutant_id, dirs_exist_ok=True)


def _finish(results: list[MutantResult], meta: dict, output: Path, started: float) -> None:
    meta["seconds"] = round(time.monotonic() - started, 1)
    _write_reports(results, meta, output)


@dataclass
class _Suites:
    """What the runs need to know of the suites: each part's process limit (`--timeout` for
    every test the part selects) and each test's pytest node id, by test name."""

    timeouts: dict[str, float]
    nodeids: dict[str, str]


def _collect_suites(tree: Path, mutants: list[Mutant], timeout: float) -> _Suites:
    parts = sorted({p for m in mutants for p in m.parts})
    suites = _Suites({}, {})
    for lab in sorted({p[0] for p in parts}):
        tests = collect_tests(tree, tree / PART_DIRS[lab])
        suites.nodeids.update((t.name, t.nodeid) for t in tests)
        for part in (p for p in parts if p[0] == lab):
            suites.timeouts[part] = timeout * len(select_tests(tests, [part]))
    return suites


def _run_all(results: list[MutantResult], trees: dict[str, Path], iterations: int, workers: int,
             base_seed: int, scratch: Path, output: Path, suites: _Suites,
             console: Console, save) -> bool:
    """Every run of every mutant, `workers` at a time; True if interrupted."""
    if not results:
        return False
    running = _Running()
    progress = Progress(
        TextColumn("{task.description}"), BarColumn(bar_width=24), MofNCompleteColumn(),
        TextColumn("{task.fields[killed]}"), TimeElapsedColumn(), console=console,
        transient=True, disable=not console.is_terminal,
    )
    width = max(len(r.mutant.id) for r in results)
    task_of = {r.mutant.id: progress.add_task(r.mutant.id.ljust(width), total=iterations,
                                              killed="0 killed") for r in results}
    by_id = {r.mutant.id: r for r in results}
    logs_scratch = scratch / "part-logs"
    logs_scratch.mkdir()
    with progress, ThreadPoolExecutor(max_workers=workers) as pool, \
            stop_all_on_interrupt(running, pool) as interruption:
        pending: dict[Future, str] = {}
        for number in range(iterations):        # round-robin: every mutant's numbers fill in
            for result in results:
                future = pool.submit(_run_mutant, result.mutant, number, base_seed + number,
                                     trees[result.mutant.id], logs_scratch, output,
                                     suites, running, result.last_kill)
                pending[future] = result.mutant.id
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                mutant_id = pending.pop(future)
                try:
                    run = future.result()
                except _Stopped:
                    continue
                result = by_id[mutant_id]
                result.runs.append(run)
                progress.update(task_of[mutant_id], advance=1,
                                killed=f"{result.killed} killed")
                console.print(_run_line(result.mutant, run, output), soft_wrap=True)
                save()
    return interruption.interrupted


def _run_line(mutant: Mutant, run: MutantRun, output: Path) -> Text:
    killer, broken = run.killer, run.broken
    if killer is not None:
        test = killer.test or killer.why
        log = f" -> {_display_path(output / killer.log)}" if killer.log else ""
        return Text(f"killed    {mutant.id} run {run.number} by {killer.part} {test} "
                    f"({run.seconds:.1f} s){log}", style="green")
    if broken is not None:
        return Text(f"NOT RUN   {mutant.id} run {run.number}: {broken.part}: {broken.why}",
                    style="red")
    return Text(f"SURVIVED  {mutant.id} run {run.number}: passed {' '.join(mutant.parts)} "
                f"({run.seconds:.1f} s)", style="bold red")
