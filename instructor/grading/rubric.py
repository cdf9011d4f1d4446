"""The rubric: which tests are graded, in which parts, for how many points.

A rubric is a JSON file (the labs support Python 3.10, which has no TOML reader):

    {
      "title": "raftlabs",
      "student_files": ["raft/raft.py", ...],   optional; default instructor.handout.STUDENT_FILES
      "parts": [
        {"part": "2A", "title": "Raft: leader election", "points": 15,
         "file": "tests/raft/test_raft_2a.py",
         "tests": {"test_initial_election_2a": 1, "test_reelection_2a": 1, ...}},
        ...
      ]
    }

A part's `points` are shared among its tests in proportion to their weights (the numbers in
`tests`; a list of names means weight 1 each). A test scores its share only if every run of it
passes. The default rubric, instructor/rubric.json, covers every test of tests/raft and
tests/kvraft.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

__all__ = ["DEFAULT_RUBRIC", "GradedTest", "Part", "Rubric", "RubricError", "load_rubric"]

DEFAULT_RUBRIC = Path(__file__).resolve().parent.parent / "rubric.json"

# Names Python imports by itself at start-up, before the grader's plugin: never student files.
_STARTUP_NAMES = ("sitecustomize.py", "usercustomize.py")


class RubricError(ValueError):
    """The rubric file is malformed; the message says where."""


@dataclass(frozen=True)
class GradedTest:
    part: str
    file: str             # relative to the framework root, e.g. tests/raft/test_raft_2a.py
    name: str             # the test function, e.g. test_initial_election_2a
    max_score: Fraction
    number: str           # Gradescope's ordering key, e.g. "2A.1"

    @property
    def nodeid(self) -> str:
        return f"{self.file}::{self.name}"


@dataclass(frozen=True)
class Part:
    part: str
    title: str
    points: Fraction
    tests: tuple[GradedTest, ...]


@dataclass(frozen=True)
class Rubric:
    title: str
    parts: tuple[Part, ...]
    student_files: tuple[str, ...]
    source: str = ""
    data: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def tests(self) -> list[GradedTest]:
        return [test for part in self.parts for test in part.tests]

    def select(self, selectors: list[str]) -> list[GradedTest]:
        """The tests named by `selectors`: a part (`2A`, any case) or a substring of test names
        (`backup`, `test_backup_2b`). No selectors: every test. Unknown selector: RubricError."""
        if not selectors:
            return self.tests
        chosen: set[str] = set()
        for selector in selectors:
            wanted = selector.strip()
            if not wanted:
                continue
            by_part = [t for t in self.tests if t.part.lower() == wanted.lower()]
            matches = by_part or [t for t in self.tests if wanted.lower() in t.name.lower()]
            if not matches:
                parts = ", ".join(p.part for p in self.parts)
                raise RubricError(f"{selector!r} is neither a part ({parts}) "
                                  "nor part of a test name in the rubric")
            chosen.update(t.nodeid for t in matches)
        return [t for t in self.tests if t.nodeid in chosen]


def load_rubric(path: Path | None = None, student_files: tuple[str, ...] | None = None) -> Rubric:
    """Read and check a rubric file (default: instructor/rubric.json)."""
    path = Path(path) if path is not None else DEFAULT_RUBRIC
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise RubricError(f"{path}: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("parts"), list) or not data["parts"]:
        raise RubricError(f"{path}: expected an object with a non-empty list \"parts\"")
    files = data.get("student_files")
    if files is None:
        if student_files is None:
            from instructor.handout import STUDENT_FILES
            student_files = STUDENT_FILES
        files = list(student_files)
    if not isinstance(files, list) or not all(isinstance(f, str) and f for f in files):
        raise RubricError(f"{path}: \"student_files\" must be a list of relative paths")
    for relative in files:
        parts = relative.split("/")
        if relative.startswith("/") or ".." in parts or "\\" in relative:
            raise RubricError(f"{path}: student file {relative!r} must be a plain relative path")
        if len(parts) == 1 and (relative in _STARTUP_NAMES or relative.endswith(".pth")):
            raise RubricError(f"{path}: {relative!r} cannot be a student file: Python would run "
                              "it at start-up, before the grader's checks")
    parts, seen = [], set()
    for index, raw in enumerate(data["parts"]):
        where = f"{path}: parts[{index}]"
        if not isinstance(raw, dict):
            raise RubricError(f"{where}: expected an object")
        try:
            name, test_file = str(raw["part"]), str(raw["file"])
            points = Fraction(str(raw["points"]))
        except (KeyError, ValueError) as exc:
            raise RubricError(f"{where}: needs \"part\", \"file\" and numeric \"points\" "
                              f"({exc})") from None
        weights = raw.get("tests")
        if isinstance(weights, list):
            weights = {test: 1 for test in weights}
        if not isinstance(weights, dict) or not weights:
            raise RubricError(f"{where}: \"tests\" must be a non-empty list "
                              "or name -> weight object")
        try:
            weights = {str(test): Fraction(str(w)) for test, w in weights.items()}
        except ValueError as exc:
            raise RubricError(f"{where}: a weight is not a number ({exc})") from None
        total = sum(weights.values())
        if points < 0 or total <= 0 or any(w < 0 for w in weights.values()):
            raise RubricError(f"{where}: points and weights must be positive")
        tests = []
        for number, (test, weight) in enumerate(weights.items(), start=1):
            if test in seen:
                raise RubricError(f"{where}: test {test} appears twice in the rubric")
            seen.add(test)
            tests.append(GradedTest(name, test_file, test, points * weight / total,
                                    f"{name}.{number}"))
        parts.append(Part(name, str(raw.get("title", name)), points, tuple(tests)))
    return Rubric(str(data.get("title", "raftlabs")), tuple(parts), tuple(files), str(path), data)
