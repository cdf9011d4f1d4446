"""The handout generator: solution markers, stubs, and what a student's fresh copy does."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from labs.handout import (
    STUDENT_FILES, MarkerError, build_handout, check_handout, find_regions,
    solution_identifiers, strip_proto, strip_python,
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
    source = "def kill(self):\n    ### BEGIN SOLUTION 2A optional\n    stop()\n    ### END SOLUTION\n"
    handout = strip_python(source)
    assert "# Your code here, if desired (2A)." in handout
    assert "    pass" in handout and "NotImplementedError" not in handout
    compile(handout, "handout", "exec")


def test_proto_regions_use_comment_markers():
    source = "message A {\n  // ### BEGIN SOLUTION 2A\n  uint64 term = 1;\n  // ### END SOLUTION\n}\n"
    assert strip_proto(source) == "message A {\n  // Your code here (2A).\n}\n"


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
    raft_py = (handout / "raft/raft.py").read_text()
    for solution_only in ("_advance_commit_index", "_handle_append_entries", "HEARTBEAT_INTERVAL"):
        assert solution_only not in raft_py
    assert 'raise NotImplementedError("Node.start (2B)")' in raft_py


def test_handout_is_a_git_repository_with_one_commit(handout: Path):
    log = subprocess.run(["git", "log", "--oneline"], cwd=handout, capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert len(log) == 1


def test_handout_leaves_out_instructor_tools(handout: Path):
    assert not (handout / "labs/handout.py").exists()
    assert not (handout / "tests/framework/test_handout.py").exists()
    assert not (handout / ".ci").exists()


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
