"""labs grade: the grader, on a scratch framework of two one-line tests instead of the lab suites.

The scratch framework has the shape that matters: a package named `raft` (as in this repository,
so a run that imported this repository's `raft` instead of the graded tree's would fail), one
student file `raft/raft.py` whose handout version raises, and a test file asking it for 42.
Each case below is a submission doing one thing a grader must survive: hang, crash at import,
fork a child that outlives it, fake a result, flood its output, edit the tests.
"""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
import tarfile
import textwrap
import time
import xml.etree.ElementTree as ET
import zipfile
from fractions import Fraction
from pathlib import Path

import pytest

from instructor.grading import pytest_plugin
from instructor.grading.cpus import CpuBudget, cpu_warning, parse_cpu_max, usable_cpus
from instructor.grading.grader import REPO_ROOT, GradeOptions, Grader, GradeReport
from instructor.grading.gradescope import write_bundle
from instructor.grading.report import gradescope_results, write_reports
from instructor.grading.rubric import RubricError, load_rubric
from instructor.grading.sandbox import HeadTail, Limits
from instructor.grading.submission import ExtractionLimits, extract_archive
from instructor.handout import build_handout
from labs.cli import main as labs_main

PASSING = "def answer():\n    return 42\n"
HANDOUT = 'def answer():\n    raise NotImplementedError("answer (1X)")\n'
TEST_FILE = textwrap.dedent("""\
    from raft.raft import answer


    def test_answer_1x():
        assert answer() == 42


    def test_double_1x():
        assert 2 * answer() == 84
""")
RUBRIC = {
    "title": "scratch labs",
    "student_files": ["raft/raft.py"],
    "parts": [{"part": "1X", "title": "the answer", "points": 10, "file": "tests/test_dummy.py",
               "tests": {"test_answer_1x": 3, "test_double_1x": 1}}],
}


@pytest.fixture
def framework(tmp_path: Path) -> Path:
    root = tmp_path / "framework"
    (root / "raft").mkdir(parents=True)
    (root / "tests").mkdir()
    # As in the real framework: sys-level capture, so what goes to fd 1 and 2 reaches the grader.
    (root / "setup.cfg").write_text("[tool:pytest]\naddopts = -p no:cacheprovider --capture=sys\n")
    (root / "raft" / "__init__.py").write_text("")
    (root / "raft" / "raft.py").write_text(HANDOUT)
    (root / "tests" / "test_dummy.py").write_text(TEST_FILE)
    (root / "rubric.json").write_text(json.dumps(RUBRIC))
    return root


def make_submission(where: Path, raft_py: str, other_files: dict[str, str] | None = None) -> Path:
    """A submission directory: raft/raft.py, and any other files (relative path -> text)."""
    for relative, text in {"raft/raft.py": raft_py, **(other_files or {})}.items():
        path = where / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return where


def grade(framework: Path, submission: Path, **options) -> GradeReport:
    options.setdefault("runs", 1)
    limits = options.pop("limits", Limits(timeout=30))
    rubric = load_rubric(framework / "rubric.json")
    with Grader(rubric, GradeOptions(limits=limits, **options), framework=framework) as grader:
        return grader.grade(submission)


def one_test(report: GradeReport, name: str = "test_answer_1x"):
    return next(t for t in report.tests if t.test.name == name)


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


# --- honest submissions ---------------------------------------------------------------------------

def test_passing_submission_gets_full_marks_from_the_graded_tree(framework: Path,
                                                                 tmp_path: Path) -> None:
    report = grade(framework, make_submission(tmp_path / "sub", PASSING), runs=3, jobs=2)
    assert [(t.test.name, t.passed, len(t.runs)) for t in report.tests] == [
        ("test_answer_1x", True, 3), ("test_double_1x", True, 3)]
    assert report.score == report.max_score == 10
    assert report.flags == []
    # Imports resolve to the graded tree, never to this repository's (editable) raft package.
    for outcome in report.tests:
        for run in outcome.runs:
            module_file = Path(run.modules["raft.raft"])
            assert module_file.parts[-3:] == ("tree", "raft", "raft.py")
            assert REPO_ROOT not in module_file.parents


def test_handout_version_scores_nothing(framework: Path, tmp_path: Path) -> None:
    report = grade(framework, make_submission(tmp_path / "sub", HANDOUT), runs=3)
    assert report.score == 0
    for outcome in report.tests:
        assert len(outcome.runs) == 1, "after a failed run the rest are skipped"
        assert outcome.reason.startswith(
            "run 1 of 3: the test failed: NotImplementedError: answer (1X)")
        assert "NotImplementedError: answer (1X)" in outcome.runs[0].log


def test_a_test_scores_only_if_every_run_passes(framework: Path, tmp_path: Path) -> None:
    counter = tmp_path / "calls"
    flaky = textwrap.dedent(f"""\
        import pathlib
        _calls = pathlib.Path({str(counter)!r})

        def answer():
            n = int(_calls.read_text()) + 1 if _calls.exists() else 1
            _calls.write_text(str(n))
            return 42 if n != 2 else 41   # the second run fails
    """)
    report = grade(framework, make_submission(tmp_path / "sub", flaky),
                   runs=3, all_runs=True, selectors=("test_answer_1x",))
    outcome = one_test(report)
    assert [run.passed for run in outcome.runs] == [True, False, True]
    assert not outcome.passed and outcome.score == 0 and outcome.test.max_score == Fraction(15, 2)
    assert outcome.reason == "run 2 of 3: the test failed: assert 41 == 42"


# --- submissions that misbehave -------------------------------------------------------------------

def test_hanging_run_is_killed_at_the_timeout(framework: Path, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    hang = f"import os, time\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\n" \
           "def answer():\n    time.sleep(600)\n"
    started = time.monotonic()
    report = grade(framework, make_submission(tmp_path / "sub", hang),
                   limits=Limits(timeout=3), selectors=("test_answer_1x",))
    assert time.monotonic() - started < 20
    assert one_test(report).reason == "run 1 of 1: timed out after 3 s (killed)"
    assert not pid_alive(int(pid_file.read_text()))


def test_exception_at_import_fails_the_run_with_the_traceback(framework: Path,
                                                              tmp_path: Path) -> None:
    submission = make_submission(tmp_path / "sub", "raise RuntimeError('boom at import')\n")
    report = grade(framework, submission)
    assert report.score == 0
    for outcome in report.tests:
        assert "not collected" in outcome.reason
        assert "RuntimeError: boom at import" in outcome.runs[0].log


def test_children_that_outlive_the_run_are_killed(framework: Path, tmp_path: Path) -> None:
    """One child stays in the run's process group; a grandchild leaves it with setsid."""
    forker = textwrap.dedent(f"""\
        import os, time
        def _linger(name):
            open({str(tmp_path)!r} + "/" + name + ".pid", "w").write(str(os.getpid()))
            time.sleep(4)
            open({str(tmp_path)!r} + "/" + name + ".survived", "w").write("yes")
            os._exit(0)
        if os.fork() == 0:
            if os.fork() == 0:
                os.setsid()
                _linger("escaped")
            _linger("child")

        def answer():
            return 42
    """)
    report = grade(framework, make_submission(tmp_path / "sub", forker),
                   selectors=("test_answer_1x",))
    assert one_test(report).reason == ("run 1 of 1: the test left processes running after it "
                                       "ended (they were killed)")
    pids = [int((tmp_path / f"{name}.pid").read_text()) for name in ("child", "escaped")]
    assert not any(pid_alive(pid) for pid in pids)
    time.sleep(4.5)
    assert not list(tmp_path.glob("*.survived"))


FORGERIES = {
    # Prints what a passing pytest prints, writes a results file, exits 0 before any test ran.
    "exit_0_at_import": """\
        import os, pathlib, sys
        print("tests/test_dummy.py::test_answer_1x PASSED\\n1 passed in 0.01s")
        for where in (pathlib.Path.cwd(), pathlib.Path(os.environ["HOME"])):
            (where / "results.json").write_text('{"score": 100}')
        sys.stdout.flush()
        os._exit(0)
    """,
    # Writes a made-up "finish" event to every open descriptor: the result pipe is among them.
    "forged_channel_line": """\
        import json, os
        event = {"event": "finish", "seq": 1, "run": "x", "exitstatus": 0, "tampered": [],
                 "collected": ["tests/test_dummy.py::test_answer_1x"], "modules": {},
                 "phases": {w: {"outcome": "passed", "xfail": False}
                            for w in ("setup", "call", "teardown")}}
        line = ("0" * 64 + " " + json.dumps(event) + "\\n").encode()
        for fd in map(int, os.listdir("/proc/self/fd")):
            if fd > 2:
                try:
                    os.write(fd, line)
                except OSError:
                    pass
        def answer():
            return 0
    """,
    # Makes pytest report every test as passed.
    "patched_pytest_reports": """\
        import _pytest.reports as reports
        _original = reports.TestReport.from_item_and_call.__func__
        def _always_passed(cls, item, call):
            report = _original(cls, item, call)
            report.outcome, report.longrepr = "passed", None
            return report
        reports.TestReport.from_item_and_call = classmethod(_always_passed)
        def answer():
            return 0
    """,
    # Runs a second pytest session, with the grader's plugin, on a passing copy of the test.
    "nested_pytest_session": """\
        import os, pathlib, pytest
        fake = pathlib.Path(os.environ["TMPDIR"]) / "fake"
        (fake / "tests").mkdir(parents=True, exist_ok=True)
        (fake / "tests" / "test_dummy.py").write_text("def test_answer_1x():\\n    pass\\n")
        pytest.main([str(fake / "tests" / "test_dummy.py"), f"--rootdir={fake}",
                     "--import-mode=importlib", "-p", "raftlabs_grade_plugin", "-q"])
        os._exit(0)
    """,
    # The same, but then answers honestly: still no pass, a second session is not allowed.
    "nested_pytest_session_then_honest": """\
        import os, pytest
        os.makedirs(os.environ["TMPDIR"] + "/fake", exist_ok=True)
        pytest.main([os.environ["TMPDIR"] + "/fake", "-p", "raftlabs_grade_plugin", "-q"])
        def answer():
            return 42
    """,
    # Swaps the test function for a no-op as the test module finishes loading.
    "replaces_the_test_function": """\
        import sys
        def _module_frame():
            frame = sys._getframe(1)
            while frame.f_globals.get("__name__", "").rpartition(".")[2] != "test_dummy":
                frame = frame.f_back
            return frame
        def _on_return(frame, event, arg):
            if event == "return":
                frame.f_globals["test_answer_1x"] = lambda: None
                sys.settrace(None)
            return _on_return
        _module_frame().f_trace = _on_return
        sys.settrace(lambda *args: None)
        def answer():
            return 0
    """,
    "sys_exit_0_at_import": """\
        import sys
        sys.exit(0)
    """,
    "sys_exit_0_in_the_test": """\
        import sys
        def answer():
            sys.exit(0)
    """,
    "skips_the_test": """\
        import pytest
        def answer():
            pytest.skip("not today")
    """,
}


@pytest.mark.parametrize("kind", FORGERIES)
def test_faked_results_do_not_pass(framework: Path, tmp_path: Path, kind: str) -> None:
    report = grade(framework, make_submission(tmp_path / "sub", textwrap.dedent(FORGERIES[kind])),
                   selectors=("test_answer_1x",))
    outcome = one_test(report)
    assert report.score == 0
    assert report.flags and report.flags[0].startswith("raft/raft.py: ")
    assert {
        "exit_0_at_import": "before pytest finished",
        "forged_channel_line": "did not sign",
        "patched_pytest_reports": "pytest's machinery was replaced during the run: "
                                  "_pytest.reports:TestReport.from_item_and_call",
        "nested_pytest_session": "before pytest finished",
        "nested_pytest_session_then_honest": "a second pytest session was started inside the run",
        "replaces_the_test_function": "the function pytest ran is not test_answer_1x",
        "sys_exit_0_at_import": "not collected",
        "sys_exit_0_in_the_test": "the test failed",
        "skips_the_test": "the test was skipped",
    }[kind] in outcome.reason


def test_flooding_output_fails_that_run_and_the_log_stays_small(framework: Path,
                                                                tmp_path: Path) -> None:
    flood = "import os\nfor _ in range(128):\n    os.write(1, b'x' * (64 << 10))\n" + PASSING
    limits = Limits(timeout=30, max_output_bytes=2 << 20, kept_bytes=64 << 10)
    report = grade(framework, make_submission(tmp_path / "sub", flood), limits=limits,
                   selectors=("test_answer_1x",))
    outcome = one_test(report)
    assert outcome.reason == "run 1 of 1: printed more than 2 MiB of output (killed)"
    assert len(outcome.runs[0].log) < 70_000 and "bytes of output not kept" in outcome.runs[0].log


def test_edited_framework_files_are_ignored_and_listed(framework: Path, tmp_path: Path) -> None:
    cheat = make_submission(tmp_path / "sub", HANDOUT, {
        "tests/test_dummy.py": "def test_answer_1x():\n    pass\n",
        "notes.txt": "my notes\n",
        "raft/persister.py": "# added\n",
        "raft/__pycache__/raft.cpython-311.pyc": "junk: not listed",
    })
    report = grade(framework, cheat)
    assert report.score == 0
    assert report.submission.ignored == ["notes.txt (added)", "raft/persister.py (added)",
                                         "tests/test_dummy.py (changed)"]
    assert "tests/test_dummy.py (changed)" in gradescope_results(report)["output"]


def test_a_run_that_rewrites_a_test_file_fails(framework: Path, tmp_path: Path) -> None:
    rewrite = textwrap.dedent("""\
        import os, pathlib
        test_file = pathlib.Path.cwd() / "tests" / "test_dummy.py"
        os.chmod(test_file.parent, 0o755)
        os.chmod(test_file, 0o644)
        test_file.write_text("def test_answer_1x():\\n    pass\\n")
        def answer():
            return 42
    """)
    report = grade(framework, make_submission(tmp_path / "sub", rewrite), runs=2, all_runs=True,
                   selectors=("test_answer_1x",))
    outcome = one_test(report)
    assert [run.reason for run in outcome.runs] == [
        "the run modified framework files, which is not allowed: tests/test_dummy.py"] * 2


# --- inputs: archives and repositories ------------------------------------------------------------

def test_zip_with_a_top_folder_and_malicious_members(framework: Path, tmp_path: Path) -> None:
    archive = tmp_path / "hw.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("hw-main/raft/raft.py", PASSING)
        zf.writestr("hw-main/tests/test_dummy.py", "def test_answer_1x():\n    pass\n")
        zf.writestr("../escaped.txt", "outside")
        zf.writestr(zipfile.ZipInfo("/tmp/absolute-escape.txt"), "outside")
        link = zipfile.ZipInfo("hw-main/link")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")
    report = grade(framework, archive)
    assert report.score == 10
    assert report.submission.ignored == ["tests/test_dummy.py (changed)"]
    refused = "\n".join(report.submission.refused)
    assert "../escaped.txt: unsafe path" in refused
    assert "/tmp/absolute-escape.txt: unsafe path" in refused
    assert "hw-main/link: symbolic link refused" in refused
    assert not (tmp_path / "escaped.txt").exists()


def test_tar_gz_with_links_and_parent_paths(framework: Path, tmp_path: Path) -> None:
    archive = tmp_path / "hw.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        def add(name: str, data: bytes = b"", **attrs) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            for attr, value in attrs.items():
                setattr(info, attr, value)
            tf.addfile(info, io.BytesIO(data))

        add("raft/raft.py", PASSING.encode())
        add("../../escaped.txt", b"outside")
        add("raft/evil", type=tarfile.SYMTYPE, linkname="/etc/passwd")
        add("raft/hard", type=tarfile.LNKTYPE, linkname="raft/raft.py")
    report = grade(framework, archive)
    assert report.score == 10
    refused = "\n".join(report.submission.refused)
    assert "../../escaped.txt: unsafe path" in refused
    assert "raft/evil: symbolic link refused" in refused
    assert "raft/hard: hard link refused" in refused
    assert not (tmp_path.parent / "escaped.txt").exists()


def test_archive_size_limits_count_real_bytes(tmp_path: Path) -> None:
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("big.txt", b"0" * 50_000)
        zf.writestr("small.txt", b"ok")
    refused = extract_archive(archive, tmp_path / "out", ExtractionLimits(max_file_bytes=10_000))
    assert refused == ["big.txt: larger than 9.76562 KiB"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["small.txt"]


def test_git_repository_is_graded_at_head(framework: Path, tmp_path: Path) -> None:
    repo = make_submission(tmp_path / "repo", PASSING)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(repo)]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "solution"], check=True)
    (repo / "raft" / "raft.py").write_text(HANDOUT)  # uncommitted: not graded
    report = grade(framework, repo, selectors=("test_answer_1x",))
    assert report.score == Fraction(15, 2)
    assert report.submission.origin.startswith(f"git repository {repo}, commit ")


# --- reports --------------------------------------------------------------------------------------

def test_results_json_has_gradescope_shape_and_junit_xml_parses(framework: Path,
                                                                tmp_path: Path) -> None:
    noisy = "import os\nos.write(1, b'\\x1b[31mred\\x00 nul\\x07\\n')\n" + HANDOUT
    report = grade(framework, make_submission(tmp_path / "sub", noisy))
    write_reports(report, tmp_path / "out")
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert isinstance(results["score"], float) and isinstance(results["execution_time"], float)
    assert isinstance(results["output"], str)
    for test in results["tests"]:
        assert set(test) >= {"name", "score", "max_score", "status", "output"}
        assert test["status"] in ("passed", "failed")
        assert isinstance(test["score"], float) and isinstance(test["max_score"], float)
    assert [t["max_score"] for t in results["tests"]] == [7.5, 2.5]
    suites = ET.parse(tmp_path / "out" / "junit.xml").getroot()
    assert suites.tag == "testsuites" and suites.get("failures") == "2"
    cases = suites.findall("testsuite/testcase")
    assert [c.get("name") for c in cases] == ["test_answer_1x", "test_double_1x"]
    assert all(c.find("failure") is not None for c in cases)
    assert "red" in cases[0].find("failure").text
    assert "total" in (tmp_path / "out" / "report.txt").read_text()


def test_time_budget_leaves_the_rest_not_run(framework: Path, tmp_path: Path) -> None:
    report = grade(framework, make_submission(tmp_path / "sub", PASSING), time_budget=0.5)
    assert report.score == 0
    assert all(t.reason == "not run: the grading time budget (0.5 s) ran out" for t in report.tests)


def test_command_line_grades_and_writes_a_gradescope_bundle(
        framework: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sub = make_submission(tmp_path / "sub", PASSING)
    common = ["--framework", str(framework), "--rubric", str(framework / "rubric.json")]
    out = tmp_path / "results"
    assert labs_main(["grade", str(sub), *common, "-o", str(out), "-n", "1"]) == 0
    assert json.loads((out / "results.json").read_text())["score"] == 10.0
    assert "10/10" in capsys.readouterr().out

    bundle = tmp_path / "bundle"
    assert labs_main(["grade", "--gradescope", str(bundle), *common, "--parts", "1X"]) == 0
    run_autograder = (bundle / "run_autograder").read_text()
    assert "--user student" in run_autograder and "--parts 1X" in run_autograder
    assert "/autograder/results" in run_autograder
    for script in ("run_autograder", "setup.sh"):
        assert os.access(bundle / script, os.X_OK)
    with zipfile.ZipFile(bundle / "autograder.zip") as zf:
        names = set(zf.namelist())
    assert {"setup.sh", "run_autograder", "rubric.json", "requirements.txt",
            "framework/tests/test_dummy.py", "framework/raft/raft.py",
            "grader/instructor/__init__.py", "grader/instructor/handout.py",
            "grader/instructor/rubric.json", "grader/instructor/grading/grader.py",
            "grader/instructor/grading/pytest_plugin.py", "grader/instructor/grading/__main__.py",
            "grader/labs/__init__.py", "grader/labs/console.py"} <= names
    # ... and nothing else of this repository: no benchmark, no student tool but the console
    assert not [n for n in names if n.startswith("grader/") and not n.startswith(
        ("grader/instructor/", "grader/labs/__init__.py", "grader/labs/console.py"))], names
    # The bundle's grader stands alone: run it as run_autograder does (minus --user).
    done = subprocess.run(
        [sys.executable, "-m", "instructor.grading", str(sub),
         "--framework", str(bundle / "framework"),
         "--rubric", str(bundle / "rubric.json"), "-o", str(tmp_path / "bundled"), "-n", "1"],
        cwd=bundle / "grader", capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "bundled" / "results.json").read_text())["score"] == 10.0
    assert labs_main(["grade", str(sub), *common, "--parts", "nonesuch"]) == 2


# --- the real framework ---------------------------------------------------------------------------

def tree_contents(root: Path) -> dict[str, bytes]:
    """Every file under `root` but git's own, by relative path."""
    return {path.relative_to(root).as_posix(): path.read_bytes()
            for path in root.rglob("*")
            if path.is_file() and ".git" not in path.relative_to(root).parts}


def assert_same_tree(actual: Path, expected: Path) -> None:
    got, want = tree_contents(actual), tree_contents(expected)
    assert sorted(got) == sorted(want)
    assert [f for f in sorted(want) if got[f] != want[f]] == [], "files differ in content"


def test_pristine_framework_and_bundle_match_the_handout_byte_for_byte(tmp_path: Path) -> None:
    handout = tmp_path / "handout"
    build_handout(handout, REPO_ROOT)
    rubric = load_rubric()
    with Grader(rubric) as grader:
        pristine = grader.pristine()
        assert_same_tree(pristine, handout)
        write_bundle(tmp_path / "bundle", rubric, pristine, [])
    assert_same_tree(tmp_path / "bundle" / "framework", handout)


# --- pieces ---------------------------------------------------------------------------------------

def test_plugin_watches_every_internal_it_lists() -> None:
    assert set(pytest_plugin._snapshot()) == set(pytest_plugin.WATCHED)


@pytest.mark.parametrize("missing", ["_pytest.runner:call_and_report_v2",
                                     "_pytest.reports:BaseReport.passed_v2",
                                     "_pytest.no_such_module:runtestprotocol"])
def test_plugin_refuses_to_load_when_a_watched_internal_is_missing(missing: str) -> None:
    """As after a pytest upgrade that renamed an internal: the watch must not quietly shrink."""
    with pytest.raises(pytest_plugin.WatchError) as info:
        pytest_plugin._snapshot((*pytest_plugin.WATCHED, missing))
    assert f"watches {missing}, which pytest {pytest.__version__}" in str(info.value)
    assert "update WATCHED in instructor/grading/pytest_plugin.py" in str(info.value)


def test_plugin_names_a_watched_internal_deleted_from_pytest(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import _pytest.outcomes

    # pytest's own modules took `xfail` by name at import: deleting the module's attribute
    # leaves the running session alone.
    monkeypatch.delattr(_pytest.outcomes, "xfail")
    with pytest.raises(pytest_plugin.WatchError, match=r"watches _pytest\.outcomes:xfail, "):
        pytest_plugin._snapshot()

def test_rubric_splits_points_by_weight_and_selects(framework: Path, tmp_path: Path) -> None:
    rubric = load_rubric(framework / "rubric.json")
    assert [t.max_score for t in rubric.tests] == [Fraction(15, 2), Fraction(5, 2)]
    assert [t.name for t in rubric.select(["1x"])] == ["test_answer_1x", "test_double_1x"]
    assert [t.name for t in rubric.select(["double"])] == ["test_double_1x"]
    with pytest.raises(RubricError, match="neither a part"):
        rubric.select(["2Z"])
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**RUBRIC, "student_files": ["sitecustomize.py"]}))
    with pytest.raises(RubricError, match="start-up"):
        load_rubric(bad)


def test_default_rubric_covers_every_lab_test() -> None:
    import ast

    rubric = load_rubric()
    graded = {t.nodeid for t in rubric.tests}
    defined = set()
    # The lab suites; tests/framework and tests/cluster test the tools, not a student's labs.
    for test_file in sorted((REPO_ROOT / "tests").glob("*/test_*.py")):
        if test_file.parent.name not in ("raft", "kvraft"):
            continue
        tree = ast.parse(test_file.read_text())
        defined |= {f"{test_file.relative_to(REPO_ROOT).as_posix()}::{node.name}"
                    for node in tree.body
                    if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")}
    assert graded == defined
    assert {p.part for p in rubric.parts} == {"2A", "2B", "2C", "2D", "3A", "3B"}


def test_cpu_budget_reads_cgroup_quotas(tmp_path: Path) -> None:
    assert parse_cpu_max("max 100000\n") is None
    assert parse_cpu_max("50000 100000\n") == 0.5
    (tmp_path / "grading").mkdir()
    (tmp_path / "cpu.max").write_text("max 100000\n")
    (tmp_path / "grading" / "cpu.max").write_text("150000 100000\n")
    proc = tmp_path / "proc-cgroup"
    proc.write_text("0::/grading\n")
    budget = usable_cpus(cgroup_root=tmp_path, proc_cgroup=proc)
    assert budget.cpus == min(1.5, len(os.sched_getaffinity(0)))
    assert cpu_warning(CpuBudget(1.5, "x"), jobs=1).startswith("WARNING")
    assert cpu_warning(CpuBudget(4, "x"), jobs=2) is None
    assert "shared by 3" in cpu_warning(CpuBudget(4, "x"), jobs=3)


def test_head_tail_keeps_both_ends() -> None:
    kept = HeadTail(10)
    for chunk in (b"abc", b"defgh", b"ijklmnop", b"qrstuvwxyz"):
        kept.add(chunk)
    assert kept.text() == "abcde\n\n[... 16 bytes of output not kept ...]\n\nvwxyz"
