"""The lab harness plugin when `make test_<part>` runs a part's tests two at a time (pytest-xdist
workers): each test's printed lines (summary lines, notes) reach the terminal exactly once, in
order, on lines of their own; and each running test has its threads on a CPU of its own."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

_CONFTEST = '''
import sys
sys.path[:0] = [{tests!r}]
pytest_plugins = ("lab_harness",)
'''

# Each test reports the CPUs its threads may use, then waits so that the two workers' tests
# overlap in time (both claim a CPU at once).
_TESTS = '''
import os, threading, time

def cpus_of_a_new_thread():
    seen = []
    thread = threading.Thread(target=lambda: seen.append(sorted(os.sched_getaffinity(0))))
    thread.start()
    thread.join()
    return seen[0]

def test_first_2a(lab_clusters):
    lab_clusters.report("Test (2A): first ... Passed")
    lab_clusters.report(f"first runs on {{cpus_of_a_new_thread()}}")
    time.sleep({pause})
    lab_clusters.report("first: a note after the summary")

def test_second_2a(lab_clusters):
    lab_clusters.report("Test (2A): second ... Passed")
    lab_clusters.report(f"second runs on {{cpus_of_a_new_thread()}}")
    time.sleep({pause})
'''


def run_pytest(tmp_path: Path, *args: str, pause: float = 1.0) -> str:
    (tmp_path / "conftest.py").write_text(_CONFTEST.format(tests=str(REPO / "tests")))
    (tmp_path / "test_two.py").write_text(_TESTS.format(pause=pause))
    # TMPDIR: the CPU claims (labrpc.affinity) of this run are its own, whatever else runs.
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    env.pop("LABRPC_ONE_CPU", None)
    result = subprocess.run(
        # --capture=sys, as setup.cfg has it for the suites
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--capture=sys", "--rootdir",
         str(tmp_path), "-c", os.devnull, "test_two.py", *args],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "2 passed" in out, out
    return result.stdout


@pytest.mark.parametrize("workers", ["2", "0"], ids=["two-workers", "serial"])
def test_each_line_once_in_order_on_its_own_line(tmp_path: Path, workers: str) -> None:
    out = run_pytest(tmp_path, "-n", workers, pause=0.1)
    for line in ("Test (2A): first ... Passed", "first: a note after the summary",
                 "Test (2A): second ... Passed"):
        assert len(re.findall(rf"^{re.escape(line)}$", out, re.M)) == 1, out
    assert out.index("Test (2A): first") < out.index("first: a note after"), out


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs sched_getaffinity and at least two CPUs")
def test_two_tests_at_a_time_run_on_two_cpus(tmp_path: Path) -> None:
    out = run_pytest(tmp_path, "-n", "2")
    found = re.findall(r"^(\w+) runs on (\[.*\])$", out, re.M)
    cpus = {name: ast.literal_eval(listed) for name, listed in found}
    assert set(cpus) == {"first", "second"}, out
    assert len(cpus["first"]) == len(cpus["second"]) == 1, out
    assert cpus["first"] != cpus["second"], out
