"""Generate the student handout from this repository: the framework, tests and docs as they are,
and the student-owned files with every solution region replaced by a hint.

Solution regions use nbgrader's markers, with the lab part on the opening line:

    ### BEGIN SOLUTION 2B          (in .proto files: // ### BEGIN SOLUTION 2B)
    ...solution code...
    ### END SOLUTION

In the handout a region becomes `# Your code here (2B).` at the marker's indentation. A function
left with nothing but a docstring and hints gets `raise NotImplementedError("Node.start (2B)")`,
so a test that reaches it fails at once with the stub's name and part.

`keep` (a predicate on Region) leaves chosen regions as solution code, e.g. a tree as a student
who has done 2A would have it: `strip_file(path, relative, keep=lambda r: "2A" in r.parts)`.

Markdown files lose their instructor-only passages, the lines from `<!-- BEGIN INSTRUCTORS -->` to
`<!-- END INSTRUCTORS -->` (each marker on a line of its own), such as the README's link to
docs/instructors.md, which the handout leaves out.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

__all__ = [
    "STUDENT_FILES", "INSTRUCTOR_ONLY", "MarkerError", "Region", "find_regions",
    "strip_python", "strip_proto", "strip_file", "strip_instructor_passages", "build_handout",
    "check_handout", "solution_identifiers", "commit_to_branch",
]

REPO_ROOT = Path(__file__).resolve().parent.parent

# The files a student edits and submits; the grader takes only these from a submission.
STUDENT_FILES = (
    "raft/raft.py",
    "kvraft/server.py",
    "kvraft/client.py",
    "proto/raft.proto",
    "proto/kvraft.proto",
)
# Never part of a handout: instructor tooling that would be pointless or revealing there.
INSTRUCTOR_ONLY = (
    "docs/instructors.md",
    ".ci/",
    "labs/handout.py",
    "labs/grade",
    "labs/grading/",
    "labs/mutants/",
    "labs/rubric",
    "tests/framework/test_handout.py",
    "tests/framework/test_grade.py",
    "tests/framework/test_mutants.py",
)

_BEGIN = re.compile(r"^(?P<indent>\s*)(?://\s*)?###\s*BEGIN SOLUTION\b(?P<rest>.*)$")
_END = re.compile(r"^\s*(?://\s*)?###\s*END SOLUTION\b")
_PART = re.compile(r"\b([2-3][A-Da-d])\b")
_BEGIN_INSTRUCTORS = re.compile(r"^\s*<!--\s*BEGIN INSTRUCTORS\s*-->\s*$")
_END_INSTRUCTORS = re.compile(r"^\s*<!--\s*END INSTRUCTORS\s*-->\s*$")
_MARKERS = (_BEGIN, _END, _BEGIN_INSTRUCTORS, _END_INSTRUCTORS)
# A Markdown link's target: [text](target "title") or a reference definition, [label]: target
_LINK = re.compile(r"\]\(\s*<?([^)\s>]+)|^\s{0,3}\[[^\]]+\]:\s*<?([^\s>]+)")
_STUB_PLACEHOLDER = "__handout_stub_{n}__"


class MarkerError(ValueError):
    """Unbalanced or nested solution or instructor markers; the message starts with `file:line:`."""


@dataclass(frozen=True)
class Region:
    begin: int  # 1-based line of the BEGIN marker
    end: int    # 1-based line of the END marker
    indent: str
    parts: tuple[str, ...]
    optional: bool = False  # `### BEGIN SOLUTION 2A optional`: the stub may stay empty

    @property
    def label(self) -> str:
        return ", ".join(self.parts)


Keep = Callable[[Region], bool]  # True: the region stays as solution code (markers dropped)


def _keep_none(region: Region) -> bool:
    return False


def find_regions(text: str, path: str = "<text>") -> list[Region]:
    """The solution regions of a file, checked for balance and nesting."""
    regions, open_at = [], None
    for number, line in enumerate(text.splitlines(), start=1):
        begin = _BEGIN.match(line)
        if begin:
            if open_at is not None:
                raise MarkerError(f"{path}:{number}: BEGIN SOLUTION inside the region opened "
                                  f"at line {open_at[0]} (regions cannot nest)")
            rest = begin.group("rest")
            parts = tuple(p.upper() for p in _PART.findall(rest))
            open_at = (number, begin.group("indent"), parts, "optional" in rest.split())
        elif _END.match(line):
            if open_at is None:
                raise MarkerError(f"{path}:{number}: END SOLUTION without a BEGIN SOLUTION")
            regions.append(Region(open_at[0], number, *open_at[1:]))
            open_at = None
    if open_at is not None:
        raise MarkerError(f"{path}:{open_at[0]}: BEGIN SOLUTION is never closed")
    return regions


def _hint(region: Region, comment: str) -> str:
    parts = f" ({region.label})" if region.parts else ""
    return f"{region.indent}{comment} Your code here{parts}."


def _replace_regions(text: str, path: str, comment: str, with_placeholder: bool,
                     keep: Keep) -> tuple[str, list[Region]]:
    regions = find_regions(text, path)
    lines = text.splitlines()
    out: list[str] = []
    cursor = 0
    for n, region in enumerate(regions):
        out.extend(lines[cursor:region.begin - 1])
        cursor = region.end
        if keep(region):
            out.extend(lines[region.begin:region.end - 1])
            continue
        out.append(_hint(region, comment))
        if with_placeholder:
            out.append(f"{region.indent}{_STUB_PLACEHOLDER.format(n=n)}")
    out.extend(lines[cursor:])
    return "\n".join(out) + ("\n" if text.endswith("\n") else ""), regions


def _qualified_functions(tree: ast.AST) -> list[tuple[str, ast.FunctionDef]]:
    found = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                found.append((prefix + child.name, child))
                visit(child, prefix + child.name + ".")
            elif isinstance(child, ast.ClassDef):
                visit(child, prefix + child.name + ".")
            else:
                visit(child, prefix)

    visit(tree, "")
    return found


def _is_docstring(stmt: ast.stmt) -> bool:
    return isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and isinstance(
        stmt.value.value, str)


def _needs_pass(marked: str, placeholder_line: str) -> bool:
    """An optional region may be a block's only statement: then `pass` keeps it valid."""
    without = marked.replace(placeholder_line + "\n", "", 1)
    try:
        ast.parse(without)
    except SyntaxError:
        return True
    return False


def strip_python(text: str, path: str = "<text>", keep: Keep = _keep_none) -> str:
    """Replace every solution region of a Python file, but those `keep` accepts, by a hint
    (and a raise where needed)."""
    marked, regions = _replace_regions(text, path, "#", with_placeholder=True, keep=keep)
    try:
        tree = ast.parse(marked)
    except SyntaxError as exc:
        raise MarkerError(f"{path}:{exc.lineno}: the file does not parse once its solution "
                          f"regions are removed: {exc.msg}") from None
    stubs: dict[int, str] = {}  # placeholder number -> the NotImplementedError line
    for name, function in _qualified_functions(tree):
        body = [s for s in function.body if not _is_docstring(s)]
        placeholders = [s for s in body if isinstance(s, ast.Expr) and isinstance(s.value, ast.Name)
                        and s.value.id.startswith("__handout_stub_")]
        if body and len(placeholders) == len(body):
            if any(regions[int(p.value.id.removeprefix("__handout_stub_").rstrip("_"))].optional
                   for p in placeholders):
                continue
            first = int(placeholders[0].value.id.removeprefix("__handout_stub_").rstrip("_"))
            parts = regions[first].label or "?"
            stubs[first] = f'raise NotImplementedError("{name} ({parts})")'
    lines = []
    for line in marked.splitlines():
        stripped = line.strip()
        if stripped.startswith("__handout_stub_"):
            n = int(stripped.removeprefix("__handout_stub_").rstrip("_"))
            indent = line[: len(line) - len(stripped)]
            if n in stubs:
                lines.append(indent + stubs[n])
            elif regions[n].optional and _needs_pass(marked, line):
                lines.append(indent + "pass")
            continue
        lines.append(line)
    result = "\n".join(lines) + ("\n" if text.endswith("\n") else "")
    try:
        compile(result, path, "exec")
    except SyntaxError as exc:
        raise MarkerError(f"{path}:{exc.lineno}: handout version does not compile: {exc.msg}") from None
    return result


def strip_proto(text: str, path: str = "<text>", keep: Keep = _keep_none) -> str:
    """Replace every solution region of a .proto file, but those `keep` accepts, by a
    `// Your code here` hint."""
    return _replace_regions(text, path, "//", with_placeholder=False, keep=keep)[0]


def strip_file(path: Path, relative: str, keep: Keep = _keep_none) -> str:
    """The handout version of a student file (`relative` picks the marker syntax)."""
    text = path.read_text()
    if relative.endswith(".py"):
        return strip_python(text, relative, keep)
    if relative.endswith(".proto"):
        return strip_proto(text, relative, keep)
    raise ValueError(f"{relative}: no marker syntax for this kind of file")


def strip_instructor_passages(text: str, path: str = "<text>") -> str:
    """A Markdown file without its instructor-only passages (markers included)."""
    kept, open_at = [], None
    for number, line in enumerate(text.splitlines(keepends=True), start=1):
        if _BEGIN_INSTRUCTORS.match(line):
            if open_at is not None:
                raise MarkerError(f"{path}:{number}: BEGIN INSTRUCTORS inside the passage opened "
                                  f"at line {open_at} (passages cannot nest)")
            open_at = number
        elif _END_INSTRUCTORS.match(line):
            if open_at is None:
                raise MarkerError(f"{path}:{number}: END INSTRUCTORS without a BEGIN INSTRUCTORS")
            open_at = None
        elif open_at is None:
            kept.append(line)
    if open_at is not None:
        raise MarkerError(f"{path}:{open_at}: BEGIN INSTRUCTORS is never closed")
    return "".join(kept)


def solution_identifiers(root: Path = REPO_ROOT) -> set[str]:
    """Names defined (def/class/attribute/assignment) only inside solution regions: none of them
    may appear in the handout."""
    inside, outside = set(), set()
    name = re.compile(r"(?:def|class)\s+(\w+)|self\.(\w+)\s*[:=]|^\s*(\w+)\s*[:=]")
    for relative in STUDENT_FILES:
        if not relative.endswith(".py"):
            continue
        text = (root / relative).read_text()
        regions = find_regions(text, relative)
        in_region = set()
        for region in regions:
            in_region.update(range(region.begin, region.end + 1))
        for number, line in enumerate(text.splitlines(), start=1):
            for match in name.finditer(line):
                ident = next(g for g in match.groups() if g)
                (inside if number in in_region else outside).add(ident)
    # Short or common names could appear by coincidence (in comments, other files); only
    # distinctive ones are a reliable sign of leaked solution code.
    return {i for i in inside - outside if len(i) >= 8 and not i.startswith("__")}


def _tracked_files(root: Path) -> list[str]:
    listing = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=root, check=True, capture_output=True,
    ).stdout.decode().split("\0")
    return sorted(f for f in listing if f and (root / f).is_file())


def _in_handout(relative: str) -> bool:
    """False for INSTRUCTOR_ONLY entries: a file ("a/b.py"), a folder ("a/") or, with no
    suffix, every file whose path begins with it ("labs/grade" covers labs/grade_plugin.py)."""
    for entry in INSTRUCTOR_ONLY:
        if entry.endswith("/") or "." not in Path(entry).name:
            if relative.startswith(entry):
                return False
        elif relative == entry:
            return False
    return True


def build_handout(out_dir: Path, root: Path = REPO_ROOT, init_git: bool = True) -> list[str]:
    """Write the student tree into `out_dir` (which must be empty or absent); return its files."""
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir} is not empty")
    files = [f for f in _tracked_files(root) if _in_handout(f)]
    for relative in files:
        target = out_dir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if relative in STUDENT_FILES:
            target.write_text(strip_file(root / relative, relative))
        elif relative.endswith(".md"):
            text = (root / relative).read_text(encoding="utf-8")
            target.write_text(strip_instructor_passages(text, relative), encoding="utf-8")
        else:
            shutil.copy2(root / relative, target)
    problems = check_handout(out_dir, solution_identifiers(root))
    if problems:
        raise MarkerError("the handout is not fit to hand out:\n" + "\n".join(problems))
    if init_git:
        _git_commit_tree(out_dir)
    return files


def check_handout(out_dir: Path, identifiers: set[str]) -> list[str]:
    """What makes a handout unfit: markers left over, solution-only names present (they would
    leak the solution), relative Markdown links to files the handout lacks."""
    problems = []
    for path in sorted(p for p in Path(out_dir).rglob("*") if p.is_file() and ".git" not in p.parts):
        if path.suffix not in (".py", ".proto", ".md", ".txt", ".cfg", ".toml", ""):
            continue
        text = path.read_text(errors="replace")
        relative = path.relative_to(out_dir)
        if str(relative) == "labs/handout.py":
            continue  # the generator names its own markers
        for number, line in enumerate(text.splitlines(), start=1):
            if any(marker.match(line) for marker in _MARKERS):
                problems.append(f"{relative}:{number}: marker left in the handout: {line.strip()}")
        if path.suffix == ".md":
            problems += _broken_links(text, path, Path(out_dir))
        if str(relative) in STUDENT_FILES:
            words = set(re.findall(r"\w+", text))
            for ident in sorted(identifiers & words):
                problems.append(f"{relative}: solution-only name {ident!r} survives")
    return problems


def _broken_links(text: str, path: Path, out_dir: Path) -> list[str]:
    """The relative links of a Markdown file that lead to nothing inside `out_dir` (links in
    code blocks and `code spans` are not links)."""
    problems, in_code = [], False
    for number, line in enumerate(text.splitlines(), start=1):
        if line.lstrip().startswith(("```", "~~~")):
            in_code = not in_code
        if in_code:
            continue
        for match in _LINK.finditer(re.sub(r"`[^`]*`", "", line)):
            link = match[1] or match[2]
            target = link.split("#", 1)[0].split("?", 1)[0]
            if not target or target.startswith("/") or re.match(r"[a-zA-Z][\w+.-]*:", target):
                continue  # an anchor in this file, a site-absolute path or a URL (https:, mailto:)
            resolved = (path.parent / unquote(target)).resolve()
            if not (resolved.is_relative_to(out_dir.resolve()) and resolved.exists()):
                problems.append(f"{path.relative_to(out_dir)}:{number}: link to {link} leads to "
                                f"no file of the handout")
    return problems


def _git(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True,
                          env=env).stdout.strip()


_AUTHOR = ["-c", "user.name=raftlabs handout", "-c", "user.email=handout@raftlabs.invalid"]


def _git_commit_tree(out_dir: Path) -> None:
    _git(["init", "-q"], out_dir)
    _git(["add", "-A"], out_dir)
    _git([*_AUTHOR, "commit", "-q", "-m", "raftlabs handout"], out_dir)


def commit_to_branch(branch: str, root: Path = REPO_ROOT) -> str:
    """Commit a fresh handout to `branch` of the repo at `root`; return the branch's commit.

    The branch holds handout commits only, never solution history: the first is a root commit,
    each later one has the previous handout as its parent (students can pull the update), and
    an unchanged handout adds no commit."""
    with tempfile.TemporaryDirectory() as tmp:
        tree_dir = Path(tmp) / "handout"
        build_handout(tree_dir, root, init_git=False)
        env = {**os.environ, "GIT_DIR": str(root / ".git"),
               "GIT_INDEX_FILE": str(Path(tmp) / "index"), "GIT_WORK_TREE": str(tree_dir)}
        _git(["add", "-A", "."], tree_dir, env=env)
        tree = _git(["write-tree"], tree_dir, env=env)
        previous = _branch_tip(branch, root)
        if previous is not None and _git(["rev-parse", f"{previous}^{{tree}}"], root) == tree:
            return previous
        parent = [] if previous is None else ["-p", previous]
        commit = _git([*_AUTHOR, "commit-tree", tree, *parent, "-m", "raftlabs handout"],
                      tree_dir, env=env)
        _git(["update-ref", f"refs/heads/{branch}", commit], root)
        return commit


def _branch_tip(branch: str, root: Path) -> str | None:
    found = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}"],
                           cwd=root, capture_output=True, text=True)
    return found.stdout.strip() if found.returncode == 0 else None
