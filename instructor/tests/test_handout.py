"""The handout generator: solution markers, stubs, and what a student's fresh copy does."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from instructor.handout import (
    STUDENT_FILES,
    MarkerError,
    Region,
    build_handout,
    check_handout,
    commit_to_branch,
    find_regions,
    solution_identifiers,
    solution_names,
    solution_thread_names,
    strip_file,
    strip_instructor_passages,
    strip_proto,
    strip_python,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
# Every lab test of the handout must fail, and fail fast: a stub raises at once.
HANDOUT_TEST_LIMIT_S = 10.0


def test_regions_are_found_with_their_parts_and_indent():
    text = "a\n    ### BEGIN SOLUTION 2A 2b\n    x = 1\n    ### END SOLUTION\n"
    [region] = find_regions(text)
    assert (region.begin, region.end, region.indent, region.parts) == (2, 4, "    ", ("2A", "2B"))


@pytest.mark.parametrize("text, line, problem", [
    ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION\n", 2, "cannot nest"),
    ("x = 1\n### END SOLUTION\n", 2, "without a BEGIN"),
    ("x = 1\n\n### BEGIN SOLUTION 2C\n", 3, "never closed"),
])
def test_unbalanced_or_nested_markers_name_file_and_line(text, line, problem):
    with pytest.raises(MarkerError, match=rf"^raft/raft\.py:{line}: .*{problem}"):
        find_regions(text, "raft/raft.py")


def test_emptied_function_raises_not_implemented_naming_stub_and_part():
    source = (
        "class Node:\n"
        "    def start(self, command):\n"
        '        """Start agreement."""\n'
        "        ### BEGIN SOLUTION 2B\n"
        "        return 1, 1\n"
        "        ### END SOLUTION\n"
    )
    handout = strip_python(source)
    assert "# Your code here (2B)." in handout
    assert 'raise NotImplementedError("Node.start (2B)")' in handout
    assert "return 1, 1" not in handout
    namespace: dict = {}
    exec(compile(handout, "handout", "exec"), namespace)
    with pytest.raises(NotImplementedError, match=r"^Node\.start \(2B\)$"):
        namespace["Node"]().start(None)


def test_region_inside_a_body_that_keeps_statements_gets_only_a_hint():
    source = (
        "def setup(self, raft):\n"
        "    self.raft = raft\n"
        "    ### BEGIN SOLUTION 2A\n"
        "    raft.start_threads()\n"
        "    ### END SOLUTION\n"
    )
    handout = strip_python(source)
    assert "NotImplementedError" not in handout
    assert handout.splitlines()[-1] == "    # Your code here (2A)."


def test_optional_region_leaves_a_valid_empty_body():
    source = ("def kill(self):\n    ### BEGIN SOLUTION 2A optional\n    stop()\n"
              "    ### END SOLUTION\n")
    handout = strip_python(source)
    assert "# Your code here (2A)." in handout
    assert "    pass" in handout and "NotImplementedError" not in handout
    compile(handout, "handout", "exec")


def test_proto_regions_use_comment_markers():
    source = ("message A {\n  // ### BEGIN SOLUTION 2A\n  uint64 term = 1;\n"
              "  // ### END SOLUTION\n}\n")
    assert strip_proto(source) == "message A {\n  // Your code here (2A).\n}\n"


def test_kept_regions_stay_as_solution_code_without_markers():
    source = (
        "class Node:\n"
        "    def get_state(self):\n"
        "        ### BEGIN SOLUTION 2A\n"
        "        return 1\n"
        "        ### END SOLUTION\n"
        "    def start(self, command):\n"
        "        ### BEGIN SOLUTION 2B\n"
        "        return 1, 1\n"
        "        ### END SOLUTION\n"
    )
    handout = strip_python(source, keep=lambda region: "2A" in region.parts)
    assert handout.splitlines()[1:3] == ["    def get_state(self):", "        return 1"]
    assert 'raise NotImplementedError("Node.start (2B)")' in handout and "SOLUTION" not in handout
    assert strip_python(source, keep=lambda region: False) == strip_python(source)
    proto = ("message A {\n  // ### BEGIN SOLUTION 2A\n  uint64 term = 1;\n"
             "  // ### END SOLUTION\n}\n")
    assert strip_proto(proto, keep=lambda region: True) == "message A {\n  uint64 term = 1;\n}\n"


def test_instructor_passages_leave_markdown_with_their_markers():
    text = (
        "- [tools](docs/tools.md)\n"
        "  <!-- BEGIN INSTRUCTORS -->\n"
        "- [instructors](docs/instructors.md)\n"
        "  <!--END INSTRUCTORS-->\n"
        "\n"
        "A marker inside a line, `<!-- BEGIN INSTRUCTORS -->`, is only text.\n"
    )
    assert strip_instructor_passages(text) == (
        "- [tools](docs/tools.md)\n"
        "\n"
        "A marker inside a line, `<!-- BEGIN INSTRUCTORS -->`, is only text.\n")
    assert strip_instructor_passages("no passage") == "no passage"


@pytest.mark.parametrize("text, line, problem", [
    ("<!-- BEGIN INSTRUCTORS -->\n<!-- BEGIN INSTRUCTORS -->\n<!-- END INSTRUCTORS -->\n", 2,
     "cannot nest"),
    ("a\n<!-- END INSTRUCTORS -->\n", 2, "without a BEGIN"),
    ("a\n\n<!-- BEGIN INSTRUCTORS -->\nb\n", 3, "never closed"),
])
def test_unbalanced_instructor_markers_name_file_and_line(text, line, problem):
    with pytest.raises(MarkerError, match=rf"^README\.md:{line}: .*{problem}"):
        strip_instructor_passages(text, "README.md")


def test_build_handout_stops_at_unbalanced_instructor_markers(tmp_path: Path):
    root = tmp_path / "repo"
    for relative in STUDENT_FILES:
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / relative, root / relative)
    (root / "README.md").write_text("# labs\n\n<!-- BEGIN INSTRUCTORS -->\nsecret\n")
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run(["git", "add", "."], cwd=root, check=True)
    with pytest.raises(MarkerError, match=r"^README\.md:3: BEGIN INSTRUCTORS is never closed"):
        build_handout(tmp_path / "out", root, init_git=False)


def test_check_handout_reports_markdown_links_to_files_the_handout_lacks(tmp_path: Path):
    tree = tmp_path / "handout"
    (tree / "docs").mkdir(parents=True)
    (tmp_path / "outside.md").write_text("exists, but outside the handout\n")
    (tree / "docs" / "tools.md").write_text("[back](../README.md), [out](../../outside.md)\n")
    (tree / "docs" / "left.md").write_text("text\n<!-- END INSTRUCTORS -->\n")
    (tree / "README.md").write_text(
        '[tools](docs/tools.md#labs-test) [guide](docs/guide.md "title") ![x](docs/x.png)\n'
        "[web](https://example.org/a.md) [mail](mailto:a@b.c) [here](#layout) [dir](docs/)\n"
        "a code span is no link: `[code](docs/code.md)`\n"
        "```\n[fenced](docs/fenced.md)\n```\n"
        "[ref]: docs/missing-ref.md\n"
    )
    assert check_handout(tree, set()) == [
        "README.md:1: link to docs/guide.md leads to no file of the handout",
        "README.md:1: link to docs/x.png leads to no file of the handout",
        "README.md:7: link to docs/missing-ref.md leads to no file of the handout",
        "docs/left.md:2: marker left in the handout: <!-- END INSTRUCTORS -->",
        "docs/tools.md:1: link to ../../outside.md leads to no file of the handout",
    ]


def test_every_student_file_has_balanced_markers_and_a_compiling_handout():
    for relative in STUDENT_FILES:
        text = (REPO_ROOT / relative).read_text()
        assert find_regions(text, relative), f"{relative} has no solution region"
        if relative.endswith(".py"):
            compile(strip_python(text, relative), relative, "exec")


@pytest.fixture(scope="module")
def handout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("handout") / "raftlabs"
    build_handout(out, REPO_ROOT)
    return out


def test_handout_holds_no_marker_and_no_solution_only_name(handout: Path):
    assert check_handout(handout, solution_identifiers(REPO_ROOT)) == []
    assert _check(handout) == []
    raft_py = (handout / "raft/raft.py").read_text()
    for solution_only in ("_advance_commit_index", "_handle_append_entries", "HEARTBEAT_INTERVAL"):
        assert solution_only not in raft_py
    assert 'raise NotImplementedError("Node.start (2B)")' in raft_py


def test_handout_is_a_git_repository_with_one_commit(handout: Path):
    log = subprocess.run(["git", "log", "--oneline"], cwd=handout, capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert len(log) == 1


def test_handout_leaves_out_instructor_tools(handout: Path):
    # the generator, grader, rubric and mutant corpus (a list of solution bugs), with their
    # tests; the benchmarks of the reference; this repository's CI and the instructors' guide
    for left_out in ("instructor", "benchmarks", ".ci", "docs/instructors.md"):
        assert not (handout / left_out).exists(), left_out
    files = subprocess.run(["git", "ls-files"], cwd=handout, capture_output=True, text=True,
                           check=True).stdout.split()
    assert not [f for f in files if re.search(r"handout|grad|mutant|rubric|bench", f)], files
    # what a student runs is there
    for kept in ("labs/cli.py", "labs/repeat.py", "labdebug/__init__.py", "tests/framework"):
        assert (handout / kept).exists(), kept


def test_branch_holds_handouts_only_and_each_change_is_a_commit_on_the_last(tmp_path: Path):
    repo = tmp_path / "repo"
    subprocess.run(["git", "clone", "-q", str(REPO_ROOT), str(repo)], check=True)

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True,
                              check=True).stdout.strip()

    first = commit_to_branch("handout", repo)
    assert git("rev-list", "handout").split() == [first]  # a root commit: no solution history
    raft_py = git("show", "handout:raft/raft.py")
    assert 'raise NotImplementedError("Node.start (2B)")' in raft_py
    assert "BEGIN SOLUTION" not in raft_py
    assert "instructor/handout.py" not in git("ls-tree", "-r", "--name-only", "handout").split()
    assert commit_to_branch("handout", repo) == first  # nothing changed: no new commit

    guide = repo / "docs/lab2-raft.md"
    guide.write_text(guide.read_text() + "\nA correction.\n")
    second = commit_to_branch("handout", repo)
    assert git("rev-list", "handout").split() == [second, first]
    assert git("show", "handout:docs/lab2-raft.md").endswith("A correction.")


def test_handout_readme_drops_its_instructor_passage(handout: Path):
    assert "(docs/instructors.md)" in (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    readme = (handout / "README.md").read_text(encoding="utf-8")
    assert "instructors.md" not in readme and "INSTRUCTORS" not in readme
    assert "- [docs/tools.md](docs/tools.md): the `labs` command line for students" in readme


def _run_pytest(tree: Path, *args: str, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", *args], cwd=tree, capture_output=True,
                          text=True, timeout=timeout)


def test_handout_framework_tests_pass(handout: Path):
    result = _run_pytest(handout, "tests/framework", "-q", "-x", timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]


def test_every_handout_lab_test_fails_fast_naming_a_stub(handout: Path, tmp_path: Path):
    report = tmp_path / "junit.xml"
    result = _run_pytest(handout, "tests/raft", "tests/kvraft", "-q",
                         f"--junitxml={report}", timeout=900)
    assert result.returncode == 1, result.stdout[-3000:]
    cases = ET.parse(report).getroot().iter("testcase")
    seen = 0
    for case in cases:
        seen += 1
        name = case.get("name")
        problems = case.findall("failure") + case.findall("error")
        assert problems, f"{name} passed in the handout"
        assert float(case.get("time")) < HANDOUT_TEST_LIMIT_S, f"{name} took {case.get('time')} s"
        text = " ".join((p.get("message") or "") + (p.text or "") for p in problems)
        assert "NotImplementedError" in text, f"{name} failed without naming a stub: {text[:300]}"
    assert seen >= 50


def _done_2a(region: Region) -> bool:
    """The solution code a student who has finished 2A wrote: every region tagged 2A."""
    return "2A" in region.parts


@pytest.fixture(scope="module")
def student_2a(handout: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The handout as a student who has done 2A, and nothing of 2B/2C/2D, would have it."""
    tree = tmp_path_factory.mktemp("student-2a") / "raftlabs"
    shutil.copytree(handout, tree, ignore=shutil.ignore_patterns(".git"))
    for relative in STUDENT_FILES:
        (tree / relative).write_text(strip_file(REPO_ROOT / relative, relative, keep=_done_2a))
    return tree


def _run_suite(tree: Path, suite: str, report: Path,
               expected_status: int) -> list[ET.Element]:
    """Run one test file of `tree` in pytest; check its exit status; return its JUnit cases."""
    result = _run_pytest(tree, suite, "-q", f"--junitxml={report}", timeout=300)
    assert result.returncode == expected_status, result.stdout[-3000:] + result.stderr[-2000:]
    return list(ET.parse(report).getroot().iter("testcase"))


def test_2a_only_student_passes_2a(student_2a: Path, tmp_path: Path):
    suite = "tests/raft/test_raft_2a.py"
    cases = _run_suite(student_2a, suite, tmp_path / "junit.xml", 0)
    assert len(cases) == (REPO_ROOT / suite).read_text().count("\ndef test_")
    assert not any(c.findall("failure") + c.findall("error") + c.findall("skipped") for c in cases)


def test_2a_only_student_sees_every_2b_test_fail_fast_at_start(student_2a: Path, tmp_path: Path):
    cases = _run_suite(student_2a, "tests/raft/test_raft_2b.py", tmp_path / "junit.xml", 1)
    defined = (student_2a / "tests/raft/test_raft_2b.py").read_text().count("\ndef test_")
    assert len(cases) == defined >= 10
    for case in cases:
        name = case.get("name")
        problems = case.findall("failure") + case.findall("error")
        assert problems, f"{name} passed with 2A alone"
        assert float(case.get("time")) < HANDOUT_TEST_LIMIT_S, f"{name} took {case.get('time')} s"
        text = " ".join((p.get("message") or "") + (p.text or "") for p in problems)
        assert "NotImplementedError" in text and "Node.start (2B)" in text, (
            f"{name} did not fail at the Node.start stub: {text[:300]}")


# --- the leak check: every file of the handout, planted leaks of each kind -------------------


def _check(tree: Path) -> list[str]:
    """The generator's own check, as build_handout runs it."""
    return check_handout(tree, solution_names(REPO_ROOT), solution_thread_names(REPO_ROOT),
                         machine_paths=(str(REPO_ROOT.resolve()),))


def test_solution_names_are_what_only_the_solution_declares():
    names = solution_names(REPO_ROOT)
    # Python methods, threads' targets, module constants; proto messages, fields, enum values
    for leak in ("_run_ticker", "_handle_append_entries", "ELECTION_TIMEOUT_MIN", "_Waiter",
                 "LogEntry", "KvSnapshot", "last_seq", "conflict_term"):
        assert leak in names, leak
    assert names["LogEntry"] == "proto/raft.proto" and names["_run_ticker"] == "raft/raft.py"
    # the guides teach Figure 2's names; the stubs and the framework declare the others
    for public in ("AppendEntriesArgs", "prev_log_index", "voted_for", "term", "Node", "kill",
                   "apply_ch", "GetRequest", "key", "rf", "Clerk", "debug"):
        assert public not in names, public
    assert any(p.search("raft-S0-replicator-1") for p in solution_thread_names(REPO_ROOT))


@pytest.fixture()
def scratch(handout: Path, tmp_path: Path) -> Path:
    """A copy of the real handout to plant leaks in."""
    tree = tmp_path / "raftlabs"
    shutil.copytree(handout, tree, ignore=shutil.ignore_patterns(".git"))
    return tree


def _plant(tree: Path, relative: str, text: str) -> int:
    """Append `text` (one line) to a handout file, or create it; return its line number."""
    path = tree / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    before = path.read_text(encoding="utf-8") if path.exists() else ""
    if before and not before.endswith("\n"):
        before += "\n"
    path.write_text(before + text + "\n", encoding="utf-8")
    return before.count("\n") + 1


@pytest.mark.parametrize("relative, line, problem", [
    # a guide naming a private method of the reference
    ("docs/tools.md", "  File \"raft/raft.py\", line 588 in _run_ticker",
     "solution name '_run_ticker' (declared in raft/raft.py's solution regions)"),
    # a guide naming the solution's message in a code span: a plain word, but code there
    ("docs/lab3-kvraft.md", "Every operation becomes a `Command` in the log.",
     "solution name 'Command' (declared in proto/kvraft.proto's solution regions)"),
    # a student tool building the solution's message
    ("labs/repeat.py", "from proto.raftpb import LogEntry",
     "solution name 'LogEntry' (declared in proto/raft.proto's solution regions)"),
    # a test reaching into the solution's internals
    ("tests/raft/raft_harness.py", "REPLY = cfg.rafts[0].raft._handle_append_entries",
     "solution name '_handle_append_entries' (declared in raft/raft.py's solution regions)"),
    # a framework proto declaring the solution's message; a stub proto using its field name
    ("tests/framework/protos/fixture.proto", "message KvSnapshot { uint64 x = 1; }",
     "solution name 'KvSnapshot' (declared in proto/kvraft.proto's solution regions)"),
    ("proto/kvraft.proto", "message Probe { uint64 conflict_term = 1; }",
     "solution name 'conflict_term' (declared in proto/raft.proto's solution regions)"),
    # a stub's docstring or comment giving away the design
    ("kvraft/server.py", "# duplicates are found by last_seq",
     "solution name 'last_seq' (declared in kvraft/server.py's solution regions)"),
    # a thread dump of the reference, and paths of the machine it ran on
    ("docs/tools.md", "  0x00007f42fe4116c0  raft-S0-replicator-1",
     "thread name of the solution 'raft-S0-replicator-1'"),
    ("docs/tools.md", f"  File \"{REPO_ROOT.resolve()}/labrpc/network.py\", line 5",
     f"absolute path of the instructor's checkout '{REPO_ROOT.resolve()}'"),
    ("docs/lab2-raft.md", "  File \"/home/alice/raftlabs/raft/raft.py\", line 5",
     "absolute path of a machine '/home/alice/raftlabs/raft/raft.py' (show paths relative to "
     "the checkout)"),
    # a marker the generator missed
    ("labdebug/__init__.py", "### BEGIN SOLUTION 2A",
     "marker left in the handout: ### BEGIN SOLUTION 2A"),
])
def test_each_planted_leak_fails_the_check_naming_file_and_line(scratch: Path, relative: str,
                                                                 line: str, problem: str):
    number = _plant(scratch, relative, line)
    assert _check(scratch) == [f"{relative}:{number}: {problem}"]


def test_a_short_plain_solution_name_counts_where_it_is_code(scratch: Path):
    """Which plain words are the solution's alone changes as the framework grows (a framework
    local `seq` makes `seq` public), so the word is taken from today's names."""
    names = solution_names(REPO_ROOT)
    word = min((name for name in names if re.fullmatch(r"[A-Za-z][a-z]*", name)), key=len)
    source = names[word]
    number = _plant(scratch, "labs/console.py", f"probe = {word}()")
    _plant(scratch, "docs/lab3-kvraft.md", f"In prose, {word} is only a word.")
    assert _check(scratch) == [f"labs/console.py:{number}: solution name {word!r} (declared "
                               f"in {source}'s solution regions)"]


def test_words_that_are_only_english_are_no_leak(scratch: Path):
    """Plain words the solution also declares (`seq`, `command`, `has`, `role`) count only as
    code; a new package of ordinary code (as other issues add) passes."""
    _plant(scratch, "docs/lab3-kvraft.md", "Each command has a role; a seq of requests.")
    _plant(scratch, "docs/tools.md", "```\nthe prefix has 2 of 3 operations; Command line\n```")
    _plant(scratch, "cluster/node.py", "\n".join([
        '"""A node process of a cluster: the term, the log entries and the clerk requests."""',
        "def serve(entries: list, term: int, client: str) -> None:",
        "    for entry in entries:",
        "        print(term, client, entry)",
    ]))
    assert _check(scratch) == []


def test_build_handout_refuses_a_leak_and_takes_no_untracked_file(tmp_path: Path):
    root = tmp_path / "repo"
    for relative in STUDENT_FILES:
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / relative, root / relative)
    (root / "README.md").write_text("# labs\n")
    (root / ".gitignore").write_text("ignored.txt\n")
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run(["git", "add", "."], cwd=root, check=True)
    (root / "notes.md").write_text("my notes: `_run_ticker` hangs\n")  # untracked, not ignored
    (root / "ignored.txt").write_text("ignored\n")
    files = build_handout(tmp_path / "out", root, init_git=False)
    assert "notes.md" not in files and not (tmp_path / "out" / "notes.md").exists()
    assert not (tmp_path / "out" / "ignored.txt").exists()

    subprocess.run(["git", "add", "notes.md"], cwd=root, check=True)  # now it is the repo's
    with pytest.raises(MarkerError, match=r"notes\.md:1: solution name '_run_ticker'"):
        build_handout(tmp_path / "out2", root, init_git=False)
