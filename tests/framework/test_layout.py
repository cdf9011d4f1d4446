"""The layout's import rules, read from the source with `ast` (every `import` statement, at the
top of a module or inside a function):

* the lab core (labrpc, labcodec, proto, raft, kvraft) imports only the lab core and labdebug,
  never the tools above it, so the solution runs wherever the core does;
* labdebug, the debug helper the solution imports, imports nothing of the project;
* nothing the student handout ships imports the instructor-only packages (instructor/,
  benchmarks/), which the handout leaves out.

The rules hold in the student handout too (it lacks the instructor-only folders). So does the
README's Layout, one row per top-level folder of the repository.
"""

from __future__ import annotations

import ast
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

CORE = frozenset({"labrpc", "labcodec", "proto", "raft", "kvraft"})
# package -> the project's packages it may import (itself included)
ALLOWED = {"labdebug": frozenset({"labdebug"}),
           **{package: CORE | {"labdebug"} for package in CORE}}
INSTRUCTOR_ONLY = frozenset({"instructor", "benchmarks"})
# Never read: virtual environments, caches, protoc's output (no project import there).
SKIPPED_DIRS = {"_generated", "__pycache__", "node_modules"}


def project_packages(root: Path) -> set[str]:
    """The project's top-level packages: the folders of `root` with an __init__.py, and the
    instructor-only ones even where they are absent (a handout)."""
    return {p.name for p in root.iterdir() if (p / "__init__.py").is_file()} | INSTRUCTOR_ONLY


def python_files(root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).parts
        if not any(part.startswith(".") or part in SKIPPED_DIRS for part in parts):
            yield path


def imported_packages(path: Path, package: str) -> Iterator[tuple[int, str]]:
    """(line, top-level name) of each module a file imports; a relative import is of `package`."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom):
            yield node.lineno, package if node.level else (node.module or "").split(".")[0]


def layout_violations(root: Path) -> list[str]:
    """Every import that breaks the rules, as `file:line: rule`."""
    ours = project_packages(root)
    problems = []
    for path in python_files(root):
        relative = path.relative_to(root)
        top = relative.parts[0] if len(relative.parts) > 1 else ""
        for line, name in imported_packages(path, top):
            if name not in ours or name == top:
                continue
            where = f"{relative.as_posix()}:{line}"
            if top in ALLOWED and name not in ALLOWED[top]:
                allowed = ", ".join(sorted(ALLOWED[top] - {top})) or "nothing of the project"
                problems.append(f"{where}: {top} imports {name} (it may import {allowed})")
            elif top not in INSTRUCTOR_ONLY and name in INSTRUCTOR_ONLY:
                problems.append(f"{where}: {top or 'the top level'} imports {name}, which the "
                                f"student handout leaves out")
    return problems


def test_the_repository_keeps_the_import_rules():
    assert layout_violations(REPO_ROOT) == []


def test_the_rules_see_what_they_guard():
    # the check reads the real tree: the packages whose imports it judges are there
    files = {path.relative_to(REPO_ROOT).parts[0] for path in python_files(REPO_ROOT)}
    assert {"labdebug", "labrpc", "raft", "kvraft", "labs", "tests"} <= files
    raft_imports = {name for _, name in imported_packages(REPO_ROOT / "raft/raft.py", "raft")}
    assert {"labdebug", "labrpc", "proto"} <= raft_imports


@pytest.mark.parametrize("relative, source, problem", [
    ("raft/raft.py", "from labs.console import make_console\n",
     "raft/raft.py:2: raft imports labs (it may import kvraft, labcodec, labdebug, labrpc, proto)"),
    ("kvraft/server.py", "def f():\n    import instructor.handout\n",
     "kvraft/server.py:3: kvraft imports instructor (it may import labcodec, labdebug, labrpc, "
     "proto, raft)"),
    ("labrpc/network.py", "from cluster import node\n",
     "labrpc/network.py:2: labrpc imports cluster (it may import kvraft, labcodec, labdebug, "
     "proto, raft)"),
    ("labdebug/__init__.py", "from labrpc import Network\n",
     "labdebug/__init__.py:2: labdebug imports labrpc (it may import nothing of the project)"),
    ("labs/cli.py", "from benchmarks.bench import run_benchmarks\n",
     "labs/cli.py:2: labs imports benchmarks, which the student handout leaves out"),
    ("tests/framework/test_x.py", "import instructor\n",
     "tests/framework/test_x.py:2: tests imports instructor, which the student handout leaves "
     "out"),
])
def test_a_forbidden_import_is_reported_with_file_and_line(tmp_path: Path, relative: str,
                                                           source: str, problem: str):
    for package in ("labdebug", "labrpc", "labcodec", "proto", "raft", "kvraft", "labs",
                    "cluster"):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("import logging\n")
    path = tmp_path / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("from __future__ import annotations\n" + source)
    assert layout_violations(tmp_path) == [problem]


def test_imports_inside_the_rules_are_fine(tmp_path: Path):
    for package, source in (("labdebug", "import logging\nfrom . import logsetup\n"),
                            ("raft", "from labdebug import debug\nfrom labrpc import Network\n"),
                            ("labrpc", "import labcodec\n"), ("labcodec", ""),
                            ("labs", "from raft import raft\nimport labdebug\n"),
                            ("instructor", "from labs import cli\nimport benchmarks\n")):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text(source)
    assert layout_violations(tmp_path) == []


def top_level_folders(root: Path) -> set[str]:
    """The folders at the top of the repository that hold files git tracks or would track
    (untracked but not ignored): not .venv/, caches or generated output."""
    listing = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=root, capture_output=True, text=True, check=True).stdout
    return {name.split("/", 1)[0] for name in listing.split("\0")
            if "/" in name and (root / name).exists()}


def test_the_readme_layout_has_one_row_per_top_level_folder():
    if not (REPO_ROOT / ".git").exists():
        pytest.skip("not a git checkout: which folders are the repository's is git's to say")
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    layout = readme.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([^`/]+)/` \|", layout, re.M)
    assert len(rows) == len(set(rows)), rows
    assert sorted(rows) == sorted(top_level_folders(REPO_ROOT))
