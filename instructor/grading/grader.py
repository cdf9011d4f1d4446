"""`labs grade`: grade one submission against the rubric.

The steps, each in its own function below:

1. the pristine framework: the student handout, built once per grader (or copied from
   `framework=`, e.g. the tree a Gradescope bundle ships, or a scratch tree in tests);
2. the submission: only the student files are taken (instructor/grading/submission.py) and laid on a
   copy of the pristine framework, the *base*; the sha256 of each of its files is kept;
3. every selected test runs up to `runs` times, each run in a fresh copy of the base whose
   framework files are read-only, in a fresh `python -m pytest <nodeid>` process under the
   limits of instructor/grading/sandbox.py, with the grader's plugin
   (instructor/grading/pytest_plugin.py) loaded from a directory outside the tree;
4. a run passes only if the process exited 0 and the plugin reported, over the signed channel,
   that exactly this test ran and passed in setup, call and teardown, with pytest's internals
   intact, the student modules imported from the graded tree, and no framework file changed;
5. a test scores its rubric points only if every run passed. By default the remaining runs of a
   test are skipped after its first failed run (they could not change the score).
"""

from __future__ import annotations

import dataclasses
import json
import os
import pwd
import secrets
import shutil
import stat
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from instructor.grading import pytest_plugin
from instructor.grading.cpus import CpuBudget, cpu_warning, usable_cpus
from instructor.grading.rubric import GradedTest, Rubric
from instructor.grading.sandbox import Limits, ProcessResult, child_subreaper, run_limited
from instructor.grading.submission import (
    ExtractionLimits,
    Submission,
    file_digest,
    laid_out,
    open_submission,
    review_flags,
)

__all__ = ["GradeOptions", "GradeReport", "Grader", "RunOutcome", "TestOutcome"]

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
# Plugins the runs load explicitly; everything else installed is kept out (no autoload), so
# what runs does not depend on the machine.
PYTEST_PLUGINS = ("pytest_timeout",)
# Directories the framework writes into while testing: proto/compiler.py puts compiled modules
# in `_generated/` beside each .proto. They stay writable in the otherwise read-only tree, as
# does the tree's top directory (the KV tests save failing histories in test-failures/ there).
WRITABLE_DIR = "_generated"
PROCESSES_PER_USER = 4096  # RLIMIT_NPROC (threads count) when runs have a user of their own
SKIP_WHEN_COPYING = shutil.ignore_patterns(".git", "__pycache__", "_generated", ".pytest_cache",
                                           "*.egg-info", ".venv", "test-failures", "grade-results")


@dataclass(frozen=True)
class GradeOptions:
    runs: int = 3                      # per test; a test scores only if all pass
    jobs: int = 1                      # tests graded at once
    limits: Limits = Limits()
    selectors: tuple[str, ...] = ()    # parts or test-name substrings; empty: the whole rubric
    all_runs: bool = False             # keep running a test after one of its runs failed
    time_budget: float | None = None   # seconds for the whole grade; then the rest is not run
    user: str | None = None            # run the tests as this user (the grader must be root)
    python: str = sys.executable
    worktree: bool = False             # a git repository: grade its files on disk, not HEAD


@dataclass
class RunOutcome:
    run: int                 # 1-based
    passed: bool
    reason: str              # why it failed; "" if it passed
    seconds: float
    log: str                 # the run's output, head and tail
    modules: dict[str, str | None] = field(default_factory=dict)
    log_file: str | None = None


@dataclass
class TestOutcome:
    test: GradedTest
    runs: list[RunOutcome] = field(default_factory=list)
    not_run: str | None = None   # why the test (or its remaining runs) did not run
    planned: int = 0

    @property
    def passed(self) -> bool:
        return (self.not_run is None and len(self.runs) == self.planned
                and all(run.passed for run in self.runs))

    @property
    def score(self) -> Fraction:
        return self.test.max_score if self.passed else Fraction(0)

    @property
    def first_failure(self) -> RunOutcome | None:
        return next((run for run in self.runs if not run.passed), None)

    @property
    def reason(self) -> str:
        failed = self.first_failure
        if failed is not None:
            return f"run {failed.run} of {self.planned}: {failed.reason}"
        if self.not_run is not None:
            return self.not_run
        return "" if self.passed else "not run yet (grading stopped before this test)"


@dataclass
class GradeReport:
    rubric: Rubric
    submission: Submission
    tests: list[TestOutcome]
    options: GradeOptions
    cpus: CpuBudget
    warnings: list[str]
    flags: list[str]
    seconds: float = 0.0

    @property
    def score(self) -> Fraction:
        return sum((t.score for t in self.tests), Fraction(0))

    @property
    def max_score(self) -> Fraction:
        return sum((t.test.max_score for t in self.tests), Fraction(0))


ProgressCallback = Callable[[TestOutcome, RunOutcome | None], None]


class Grader:
    """Grades submissions against one rubric and one pristine framework (built on first use and
    kept for the grader's life, in a temporary directory removed by `close()`)."""

    def __init__(self, rubric: Rubric, options: GradeOptions = GradeOptions(),
                 framework: Path | None = None, repo_root: Path = REPO_ROOT) -> None:
        self.rubric = rubric
        self.options = options
        self._framework = Path(framework) if framework is not None else None
        self._repo_root = repo_root
        self._workdir = Path(tempfile.mkdtemp(prefix="raftlabs-grade-"))
        self._pristine: Path | None = None
        self._plugin_source = Path(pytest_plugin.__file__).read_bytes()
        self._run_counter = 0
        self._counter_lock = threading.Lock()
        if options.user is not None:
            if os.geteuid() != 0:
                raise PermissionError("--user needs the grader to run as root")
            os.chmod(self._workdir, 0o711)  # the test user may pass through, not list

    def close(self) -> None:
        _remove_tree(self._workdir)

    def __enter__(self) -> Grader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- 1. the pristine framework ----------------------------------------------------------------

    def pristine(self) -> Path:
        if self._pristine is None:
            target = self._workdir / "pristine"
            if self._framework is not None:
                shutil.copytree(self._framework, target, ignore=SKIP_WHEN_COPYING)
            else:
                from instructor.handout import build_handout

                build_handout(target, root=self._repo_root, init_git=False)
            self._pristine = target
        return self._pristine

    # --- 2..5 -------------------------------------------------------------------------------------

    def grade(self, submission_path: Path, progress: ProgressCallback | None = None,
              on_test_done: Callable[[GradeReport], None] | None = None) -> GradeReport:
        started = time.monotonic()
        options = self.options
        tests = self.rubric.select(list(options.selectors))
        pristine = self.pristine()
        slot = self._workdir / f"submission-{self._next_id()}"
        slot.mkdir()
        submission = open_submission(Path(submission_path), pristine, self.rubric.student_files,
                                     slot / "unpacked", ExtractionLimits(), options.worktree)
        base = slot / "base"
        manifest = laid_out(submission, pristine, base)
        framework_files = {f: h for f, h in manifest.items() if f not in self.rubric.student_files}
        cpus = usable_cpus()
        warnings = [w for w in [cpu_warning(cpus, options.jobs)] if w]
        outcomes = [TestOutcome(t, planned=options.runs) for t in tests]
        report = GradeReport(self.rubric, submission, outcomes, options, cpus, warnings,
                             review_flags(submission))
        deadline = started + options.time_budget if options.time_budget else None
        report_lock = threading.Lock()

        def grade_test(outcome: TestOutcome) -> None:
            for run in range(1, options.runs + 1):
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 1.0:
                    outcome.not_run = (f"not run: the grading time budget "
                                       f"({options.time_budget:g} s) ran out")
                    break
                result = self._run_once(outcome.test, run, base, manifest, framework_files, slot,
                                        remaining)
                outcome.runs.append(result)
                if progress is not None:
                    progress(outcome, result)
                if not result.passed and not options.all_runs:
                    break
            with report_lock:
                report.seconds = time.monotonic() - started
                if on_test_done is not None:
                    on_test_done(report)

        with child_subreaper():
            if options.jobs <= 1:
                for outcome in report.tests:
                    grade_test(outcome)
            else:
                with ThreadPoolExecutor(max_workers=options.jobs) as pool:
                    for future in [pool.submit(grade_test, o) for o in report.tests]:
                        future.result()
        report.seconds = time.monotonic() - started
        _remove_tree(slot)
        return report

    def _next_id(self) -> int:
        with self._counter_lock:
            self._run_counter += 1
            return self._run_counter

    # --- one run ----------------------------------------------------------------------------------

    def _run_once(self, test: GradedTest, run: int, base: Path, manifest: dict[str, str],
                  framework_files: dict[str, str], slot: Path,
                  remaining: float | None) -> RunOutcome:
        options = self.options
        run_dir = slot / f"run-{self._next_id()}"
        tree, plugin_dir = run_dir / "tree", run_dir / "plugin"
        try:
            self._prepare_run_dir(run_dir, tree, plugin_dir, base)
            altered = _changed_files(tree, manifest)
            if altered:
                return RunOutcome(run, False, "grader error: the graded tree differs from the "
                                  f"submission before the run ({', '.join(altered[:5])})", 0.0, "")
            key, run_id = secrets.token_bytes(32), secrets.token_hex(8)
            student_modules = _module_names(self.rubric.student_files)
            brief = json.dumps({"key": key.hex(), "run": run_id, "test": test.nodeid,
                                "student_modules": student_modules}).encode()
            brief_read, brief_write = os.pipe()
            os.write(brief_write, brief)  # far below the pipe's buffer: never blocks
            os.close(brief_write)
            result_read, result_write = os.pipe()
            timeout = options.limits.timeout
            cut_by_budget = remaining is not None and remaining < timeout
            limits = dataclasses.replace(
                options.limits, timeout=timeout if remaining is None else min(timeout, remaining),
                processes=PROCESSES_PER_USER if options.user else None)
            env = self._environment(run_dir, tree, plugin_dir, f"{brief_read},{result_write}")
            argv = [options.python, "-s", "-m", "pytest", test.nodeid, f"--rootdir={tree}",
                    *[a for p in PYTEST_PLUGINS for a in ("-p", p)],
                    "-p", pytest_plugin.PLUGIN_MODULE, "-p", "no:cacheprovider", "--color=no"]
            try:
                process = run_limited(argv, cwd=tree, env=env, limits=limits,
                                      pass_fds=(brief_read, result_write), channel_fd=result_read,
                                      user=options.user)
            except OSError as exc:  # could not start at all: the grader's problem, not the run's
                for fd in (brief_read, result_write):
                    try:
                        os.close(fd)
                    except OSError:
                        pass
                return RunOutcome(run, False, f"grader error: cannot start {argv[0]}: {exc}",
                                  0.0, "")
            finally:
                os.close(result_read)
            events, bad_lines = _decode_channel(process.channel, key, run_id)
            tampered = _changed_files(tree, framework_files)
            reason, modules = _verdict(process, events, bad_lines, test, tree, tampered, limits,
                                       cut_by_budget, options.time_budget)
            log = (f"$ {' '.join(argv)}\n# cwd {tree}\n# exit status {process.returncode}, "
                   f"{process.seconds:.1f} s\n\n" + process.output.text())
            return RunOutcome(run, not reason, reason, process.seconds, log, modules)
        finally:
            _remove_tree(run_dir)

    def _prepare_run_dir(self, run_dir: Path, tree: Path, plugin_dir: Path, base: Path) -> None:
        run_dir.mkdir()
        shutil.copytree(base, tree)
        for directory in {p.parent for p in tree.rglob("*.proto")}:
            (directory / WRITABLE_DIR).mkdir(exist_ok=True)
        plugin_dir.mkdir()
        (plugin_dir / f"{pytest_plugin.PLUGIN_MODULE}.py").write_bytes(self._plugin_source)
        for private in ("tmp", "home"):
            (run_dir / private).mkdir()
        _read_only(tree, writable=lambda d: d == tree or d.name == WRITABLE_DIR)
        if self.options.user is not None:
            # The test user owns only its scratch directories. The tree's top directory is
            # world-writable but sticky, like /tmp: it may add files there, and not rename or
            # delete the framework's (which a same-user run could, by chmod, at will).
            entry = pwd.getpwnam(self.options.user)
            for path in [run_dir / "tmp", run_dir / "home", *tree.rglob(WRITABLE_DIR)]:
                os.chown(path, entry.pw_uid, entry.pw_gid)
            os.chmod(tree, 0o1777)
            for path in (run_dir, plugin_dir):
                os.chmod(path, 0o755)
            os.chmod(plugin_dir / f"{pytest_plugin.PLUGIN_MODULE}.py", 0o644)

    def _environment(self, run_dir: Path, tree: Path, plugin_dir: Path,
                     channel: str) -> dict[str, str]:
        """A small, fixed environment: nothing of the grader's (LOG_LEVEL, PYTEST_ADDOPTS,
        PYTHONSAFEPATH...) leaks into the runs."""
        return {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "HOME": str(run_dir / "home"),
            "TMPDIR": str(run_dir / "tmp"),
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "PYTHONPATH": os.pathsep.join([str(tree), str(plugin_dir)]),
            "PYTHONUNBUFFERED": "1",
            "COLUMNS": "160",  # pytest cuts its summary lines to the terminal's width
            "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
            "MALLOC_ARENA_MAX": "2",  # see sandbox.Limits.memory_bytes
            pytest_plugin.CHANNEL_ENV: channel,
        }


# --- deciding a run -------------------------------------------------------------------------------

def _decode_channel(data: bytes, key: bytes, run_id: str) -> tuple[list[dict], int]:
    """The run's signed events, in order; and how many lines were not (forged, replayed,
    reordered or truncated)."""
    events: list[dict] = []
    bad = 0
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    for line in lines:
        payload = pytest_plugin.decode_event(key, line)
        if payload is None or payload.get("run") != run_id or payload.get("seq") != len(events) + 1:
            bad += 1
            continue
        events.append(payload)
    return events, bad


def _verdict(process: ProcessResult, events: list[dict], bad_lines: int, test: GradedTest,
             tree: Path, tampered: list[str], limits: Limits, cut_by_budget: bool,
             budget: float | None) -> tuple[str, dict]:
    """Why the run failed ("" if it passed), and the student modules' files it reported."""
    finish = next((e for e in events if e.get("event") == "finish"), None)
    modules = finish.get("modules", {}) if finish else {}
    log = process.output.text()
    if process.timed_out:
        if cut_by_budget:
            return f"stopped: the grading time budget ({budget:g} s) ran out", modules
        return f"timed out after {limits.timeout:g} s (killed)", modules
    if process.flooded:
        return f"printed more than {limits.max_output_bytes >> 20} MiB of output (killed)", modules
    if bad_lines or process.channel_overflow:
        return ("the grader's result channel carried data its plugin did not sign "
                "(an attempt to fake a result?)"), modules
    if tampered:
        return ("the run modified framework files, which is not allowed: "
                + ", ".join(tampered[:5])), modules
    if process.signal_name:
        crash = f"the test process crashed ({process.signal_name})"
        return crash + _memory_hint(log, limits), modules
    if finish is None or events[-1] is not finish:
        return (f"the test process ended (exit status {process.returncode}) before pytest "
                "finished" + _memory_hint(log, limits)), modules
    if finish.get("collected") != [test.nodeid]:
        return "the test was not collected (an import or collection error: see the log)", modules
    if finish.get("anomalies"):
        return "; ".join(finish["anomalies"]), modules
    if not _is_the_test_function(finish.get("test_code"), test, tree):
        return (f"the function pytest ran is not {test.name} of {test.file} (replaced from "
                f"{(finish.get('test_code') or {}).get('file')}?)"), modules
    if finish.get("tampered"):
        return ("pytest's machinery was replaced during the run: "
                + ", ".join(finish["tampered"][:5])), modules
    outside = {m: f for m, f in modules.items() if f is None or not _inside(Path(f), tree)}
    if outside:
        return ("grader error: student modules were imported from outside the graded tree: "
                + ", ".join(f"{m} from {f}" for m, f in outside.items())), modules
    phases = finish.get("phases", {})
    for when in ("setup", "call", "teardown"):
        phase = phases.get(when)
        if phase is None:
            return f"the test did not run its {when}", modules
        if phase.get("xfail"):
            return "the test was marked as an expected failure (only a pass counts)", modules
        if phase.get("outcome") == "skipped":
            return "the test was skipped (only a pass counts)", modules
        if phase.get("outcome") != "passed":
            return ({"setup": "error while setting up the test",
                     "call": "the test failed",
                     "teardown": "error while tearing the test down"}[when]
                    + _failure_summary(log, test.nodeid) + _memory_hint(log, limits)), modules
    if finish.get("exitstatus") != 0 or process.returncode != 0:
        return (f"pytest finished with status {finish.get('exitstatus')} and the process with "
                f"{process.returncode}"), modules
    if process.stray_processes:
        return "the test left processes running after it ended (they were killed)", modules
    return "", modules


def _is_the_test_function(code: dict | None, test: GradedTest, tree: Path) -> bool:
    """Whether the code pytest collected comes from the test's file, at its `def` (a
    decorated function's code starts at its first decorator)."""
    if not code or not _inside(Path(code.get("file", "")), tree):
        return False
    if os.path.realpath(code["file"]) != os.path.realpath(tree / test.file):
        return False
    try:
        lines = (tree / test.file).read_text().splitlines()
    except OSError:
        return False
    first = int(code.get("line", 0)) - 1
    for line in lines[max(first, 0):first + 20]:
        stripped = line.strip()
        if stripped.startswith((f"def {test.name}(", f"async def {test.name}(")):
            return True
        if not stripped.startswith("@") and stripped:
            return False
    return False


def _failure_summary(log: str, nodeid: str, limit: int = 200) -> str:
    """": <message>" from pytest's short summary line for the test ("FAILED <nodeid> - <message>"),
    if the log has one. Output is only ever a description; it never decides anything."""
    for line in reversed(log.splitlines()):
        for word in ("FAILED", "ERROR"):
            prefix = f"{word} {nodeid} - "
            if line.startswith(prefix):
                message = line[len(prefix):].strip()
                return ": " + (message if len(message) <= limit else message[:limit - 3] + "...")
    return ""


def _memory_hint(log: str, limits: Limits) -> str:
    if "MemoryError" in log or "Cannot allocate memory" in log or "can't start new thread" in log:
        gib = limits.memory_bytes / (1 << 30)
        return f" (out of memory? the limit is {gib:g} GiB of address space)"
    return ""


def _inside(path: Path, tree: Path) -> bool:
    try:
        Path(os.path.realpath(path)).relative_to(os.path.realpath(tree))
        return True
    except ValueError:
        return False


def _module_names(student_files: tuple[str, ...]) -> list[str]:
    return [f[:-3].replace("/", ".") for f in student_files if f.endswith(".py")]


# --- trees ----------------------------------------------------------------------------------------

def _changed_files(tree: Path, expected: dict[str, str]) -> list[str]:
    """Files of `expected` (relative path -> sha256) that are missing or different in `tree`."""
    changed = []
    for relative, digest in sorted(expected.items()):
        path = tree / relative
        try:
            if path.is_symlink() or file_digest(path) != digest:
                changed.append(relative)
        except OSError:
            changed.append(relative)
    return changed


def _read_only(tree: Path, writable: Callable[[Path], bool]) -> None:
    """Make every file read-only, and every directory except the `writable` ones."""
    for directory, _dirs, files in os.walk(tree):
        for name in files:
            path = Path(directory) / name
            if not path.is_symlink():
                path.chmod(0o444)
        here = Path(directory)
        if not writable(here):
            here.chmod(0o555)


def _remove_tree(path: Path) -> None:
    """rmtree, after making the read-only directories of a run writable again."""
    if not path.exists():
        return
    for directory, _dirs, _files in os.walk(path):
        try:
            mode = os.lstat(directory).st_mode
            if not mode & stat.S_IWUSR:
                os.chmod(directory, mode | stat.S_IWUSR | stat.S_IXUSR)
        except OSError:
            pass
    shutil.rmtree(path, ignore_errors=True)
