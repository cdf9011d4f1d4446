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

import argparse
import ast
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tokenize
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

__all__ = [
    "STUDENT_FILES", "INSTRUCTOR_ONLY", "MarkerError", "Region", "find_regions",
    "strip_python", "strip_proto", "strip_file", "strip_instructor_passages", "build_handout",
    "check_handout", "solution_identifiers", "solution_names", "solution_thread_names",
    "TAUGHT_NAMES", "commit_to_branch",
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
# Never part of a handout, each a whole folder (or a file): the instructor package (this
# generator, the grader, the rubric, the mutant corpus, and their tests), the benchmarks (they
# measure the reference solution and the handout's stubs cannot run them), this repository's
# CI and the instructors' guide.
INSTRUCTOR_ONLY = (
    "instructor/",
    "benchmarks/",
    ".ci/",
    "docs/instructors.md",
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


def _qualified_functions(
        tree: ast.AST) -> list[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    found: list[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]] = []

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


def _stub_number(stmt: ast.stmt) -> int | None:
    """n for a `__handout_stub_n__` placeholder statement; None for any other statement."""
    if (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Name)
            and stmt.value.id.startswith("__handout_stub_")):
        return int(stmt.value.id.removeprefix("__handout_stub_").rstrip("_"))
    return None


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
        placeholders = [n for n in map(_stub_number, body) if n is not None]
        if body and len(placeholders) == len(body):
            if any(regions[n].optional for n in placeholders):
                continue
            first = placeholders[0]
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
        raise MarkerError(f"{path}:{exc.lineno}: handout version does not compile: "
                          f"{exc.msg}") from None
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


# Names the student guides teach on purpose although only the solution declares them: the RPCs
# and messages of Figures 2 and 13 (the guides tell students to declare AppendEntries and
# InstallSnapshot), their fields and Figure 2's state in snake_case, and the message the
# `_persist` stub suggests. Every other name a solution region declares is a leak outside it.
TAUGHT_NAMES = frozenset({
    "AppendEntries", "AppendEntriesArgs", "AppendEntriesReply", "append_entries",
    "InstallSnapshot", "InstallSnapshotArgs", "InstallSnapshotReply", "install_snapshot",
    "term", "candidate_id", "last_log_index", "last_log_term", "vote_granted",
    "leader_id", "prev_log_index", "prev_log_term", "entries", "leader_commit", "success",
    "last_included_index", "last_included_term",
    "current_term", "voted_for", "log", "commit_index", "last_applied", "next_index",
    "match_index", "PersistentState",
})


def _python_bindings(text: str, every_scope: bool) -> list[tuple[int, str]]:
    """(line, name) for every name a Python file binds: functions, classes, assignment targets,
    attributes set on `self`; with `every_scope`, also parameters, locals, loop and `with`
    targets and attributes set on anything (the framework binds them all). Imports are not
    bindings here: importing a solution name is using it."""
    found: list[tuple[int, str]] = []
    tree = ast.parse(text)

    def target_names(target: ast.AST, in_function: bool) -> None:
        for node in ast.walk(target):
            if isinstance(node, ast.Name) and (every_scope or not in_function):
                found.append((node.lineno, node.id))
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store) and (
                    every_scope or (isinstance(node.value, ast.Name) and node.value.id == "self")):
                found.append((node.lineno, node.attr))

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                if every_scope or not in_function:
                    found.append((child.lineno, child.name))
                if every_scope and not isinstance(child, ast.ClassDef):
                    arguments = child.args
                    for arg in (*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs,
                                arguments.vararg, arguments.kwarg):
                        if arg is not None:
                            found.append((arg.lineno, arg.arg))
                visit(child, in_function or not isinstance(child, ast.ClassDef))
                continue
            if isinstance(child, ast.Assign):
                for target in child.targets:
                    target_names(target, in_function)
            elif isinstance(child, (ast.AnnAssign, ast.AugAssign, ast.For, ast.AsyncFor,
                                    ast.NamedExpr, ast.comprehension)):
                target_names(child.target, in_function)
            elif isinstance(child, ast.withitem) and child.optional_vars is not None:
                target_names(child.optional_vars, in_function)
            elif isinstance(child, ast.ExceptHandler) and child.name and every_scope:
                found.append((child.lineno, child.name))
            elif isinstance(child, ast.Lambda) and every_scope:
                found.extend((a.lineno, a.arg) for a in child.args.args)
            visit(child, in_function)

    visit(tree, False)
    return found


# A proto declaration: message/enum/service name, rpc name, field name or enum value name.
_PROTO_BINDING = re.compile(
    r"^\s*(?:message|enum|service)\s+(\w+)|^\s*rpc\s+(\w+)"
    r"|^\s*(?:(?:repeated|optional)\s+)?(?:map\s*<[^>]*>|[\w.]+)\s+(\w+)\s*=\s*\d"
    r"|^\s*(\w+)\s*=\s*-?\d")


def _proto_bindings(text: str) -> list[tuple[int, str]]:
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        match = _PROTO_BINDING.match(line.split("//", 1)[0])
        if match:
            found.append((number, next(g for g in match.groups() if g)))
    return found


def _bindings(text: str, relative: str, every_scope: bool) -> list[tuple[int, str]]:
    if relative.endswith(".py"):
        return _python_bindings(text, every_scope)
    if relative.endswith(".proto"):
        return _proto_bindings(text)
    return []


def solution_names(root: Path = REPO_ROOT) -> dict[str, str]:
    """The names only the solution declares, each with the student file that declares it.

    A name is the solution's if a solution region binds it (a module- or class-level def, class
    or assignment, an attribute set on `self`, a proto message, enum, enum value, field or rpc),
    and nothing outside the solution regions binds it: neither the rest of the student files nor
    any framework file of the handout (where parameters and locals count too, so that a test's
    local `entry` makes `entry` the framework's word). Importing a name is not binding it: a
    benchmark that imports the solution's `LogEntry` uses a solution name. TAUGHT_NAMES are
    exempt."""
    inside: dict[str, str] = {}
    outside: set[str] = set()
    for relative in STUDENT_FILES:
        text = (root / relative).read_text(encoding="utf-8")
        in_region: set[int] = set()
        for region in find_regions(text, relative):
            in_region.update(range(region.begin, region.end + 1))
        for number, name in _bindings(text, relative, every_scope=False):
            if number in in_region:
                inside.setdefault(name, relative)
        outside.update(name for number, name in _bindings(text, relative, every_scope=True)
                       if number not in in_region)
    for relative in _tracked_files(root, untracked=False):
        if relative in STUDENT_FILES or not _in_handout(relative):
            continue
        if relative.endswith((".py", ".proto")):
            text = (root / relative).read_text(encoding="utf-8", errors="replace")
            try:
                outside.update(name for _, name in _bindings(text, relative, every_scope=True))
            except SyntaxError:
                continue  # not Python the generator can read; the handout's tests will say so
    return {name: source for name, source in inside.items()
            if name not in outside and name not in TAUGHT_NAMES and not name.startswith("__")}


def solution_identifiers(root: Path = REPO_ROOT) -> set[str]:
    """The names of `solution_names`, without where they come from."""
    return set(solution_names(root))


def solution_thread_names(root: Path = REPO_ROOT) -> list[re.Pattern[str]]:
    """Patterns of the names the solution gives its threads (`name=f"raft-S{self.me}-{role}"`
    in a solution region matches `raft-S0-ticker`): a thread dump of the reference solution
    shows its design."""
    patterns = []
    for relative in STUDENT_FILES:
        if not relative.endswith(".py"):
            continue
        text = (root / relative).read_text(encoding="utf-8")
        in_region: set[int] = set()
        for region in find_regions(text, relative):
            in_region.update(range(region.begin, region.end + 1))
        for node in ast.walk(ast.parse(text)):
            if not (isinstance(node, ast.Call) and node.lineno in in_region):
                continue
            for keyword in node.keywords:
                if keyword.arg == "name" and isinstance(keyword.value,
                                                        (ast.JoinedStr, ast.Constant)):
                    pattern = _string_pattern(keyword.value)
                    if pattern is not None:
                        patterns.append(re.compile(pattern))
    return patterns


def _string_pattern(node: ast.AST) -> str | None:
    """A regex for the strings an f-string (or a constant) can produce; None for one with too
    little constant text to be recognisable (fewer than 4 letters)."""
    parts = node.values if isinstance(node, ast.JoinedStr) else [node]
    pattern, letters = "", 0
    for part in parts:
        if isinstance(part, ast.Constant) and isinstance(part.value, str):
            pattern += re.escape(part.value)
            letters += sum(c.isalpha() for c in part.value)
        else:
            pattern += r"[\w.-]+"
    return rf"\b{pattern}" if letters >= 4 else None


def _tracked_files(root: Path, untracked: bool = True) -> list[str]:
    """The repository's files that exist on disk: those git tracks, and with `untracked` also
    the untracked ones that .gitignore does not exclude (a mutant's scratch copy wants the
    work in progress; a handout must never take a stray file of the instructor's)."""
    others = ["--others", "--exclude-standard"] if untracked else []
    listing = subprocess.run(
        ["git", "ls-files", "--cached", *others, "-z"],
        cwd=root, check=True, capture_output=True,
    ).stdout.decode().split("\0")
    return sorted(f for f in listing if f and (root / f).is_file())


def _in_handout(relative: str) -> bool:
    """False for the files INSTRUCTOR_ONLY names: a folder ("a/") and all below it, or a file."""
    return not any(relative.startswith(entry) if entry.endswith("/") else relative == entry
                   for entry in INSTRUCTOR_ONLY)


def build_handout(out_dir: Path, root: Path = REPO_ROOT, init_git: bool = True) -> list[str]:
    """Write the student tree into `out_dir` (which must be empty or absent); return its files."""
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir} is not empty")
    files = [f for f in _tracked_files(root, untracked=False) if _in_handout(f)]
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
    problems = check_handout(out_dir, solution_names(root), solution_thread_names(root),
                             machine_paths=(str(root.resolve()),))
    if problems:
        raise MarkerError("the handout is not fit to hand out:\n" + "\n".join(problems))
    if init_git:
        _git_commit_tree(out_dir)
    return files


def check_handout(out_dir: Path, identifiers: Mapping[str, str] | Iterable[str],
                  thread_names: Iterable[re.Pattern[str]] = (),
                  machine_paths: Iterable[str] = ()) -> list[str]:
    """What makes a handout unfit, as `file:line: problem` lines, for every file of it (text of
    any kind; binary files are skipped):

    * a solution or instructor marker left over;
    * a solution name (`solution_names`; a mapping also says which student file declares it).
      Names with an underscore, a digit or a capital inside (`_run_ticker`, `LogEntry`,
      `last_seq`) count wherever they appear as a word; plain words (`Command`, `seq`,
      `waiter`) only where they are code: Python and .proto code outside comments and strings,
      Markdown code blocks, and `code spans` anywhere (comments and docstrings included);
    * a thread name the solution gives its threads (`raft-S0-ticker`);
    * an absolute path of the instructor's checkout (`machine_paths`);
    * in Markdown, a relative link to a file the handout lacks.
    """
    sources = dict(identifiers) if isinstance(identifiers, Mapping) else dict.fromkeys(identifiers)
    distinctive = {name for name in sources if not _is_plain_word(name)}
    plain = set(sources) - distinctive
    patterns = list(thread_names)
    paths = [path for path in machine_paths if path and path != "/"]
    problems = []
    files = (p for p in Path(out_dir).rglob("*") if p.is_file() and ".git" not in p.parts)
    for path in sorted(files):
        raw = path.read_bytes()
        if b"\0" in raw[:8192]:
            continue  # binary
        text = raw.decode("utf-8", errors="replace")
        relative = path.relative_to(out_dir).as_posix()
        for number, line in enumerate(text.splitlines(), start=1):
            if any(marker.match(line) for marker in _MARKERS):
                problems.append(f"{relative}:{number}: marker left in the handout: {line.strip()}")
            for pattern in patterns:
                for match in pattern.finditer(line):
                    problems.append(f"{relative}:{number}: thread name of the solution "
                                    f"{match.group()!r}")
            for machine_path in paths:
                if machine_path in line:
                    problems.append(f"{relative}:{number}: absolute path of the instructor's "
                                    f"checkout {machine_path!r}")
            if path.suffix == ".md":
                for match in _MACHINE_PATH.finditer(line):
                    if any(match.group().startswith(machine_path) for machine_path in paths):
                        continue  # reported above
                    problems.append(f"{relative}:{number}: absolute path of a machine "
                                    f"{match.group()!r} (show paths relative to the checkout)")
        seen: set[tuple[int, str]] = set()
        for number, word, is_code in _words(text, relative):
            if (word in distinctive or (is_code and word in plain)) and (number, word) not in seen:
                seen.add((number, word))
                source = sources[word]
                source = f" (declared in {source}'s solution regions)" if source else ""
                problems.append(f"{relative}:{number}: solution name {word!r}{source}")
        if path.suffix == ".md":
            problems += _broken_links(text, path, Path(out_dir))
    return problems


_WORD = re.compile(r"[A-Za-z_]\w*")
# A path on someone's machine, in a guide: a home, scratch or checkout directory. (/dev/null and
# the like are no one's machine.)
_MACHINE_PATH = re.compile(r"(?<![\w.~/-])/(?:home|Users|root|tmp|work|private|var/folders|opt)"
                           r"/[\w.~/-]*")
_CODE_SPAN = re.compile(r"`([^`\n]+)`")
_CODE_BLOCK_LANGUAGES = ("python", "py", "proto", "protobuf")


def _is_plain_word(name: str) -> bool:
    """`seq`, `Command`: could be an English word. `last_seq`, `LogEntry`, `GET`: cannot."""
    return re.fullmatch(r"[A-Za-z][a-z]*", name) is not None


def _prose_words(text: str, first_line: int) -> Iterator[tuple[int, str, bool]]:
    """Words of prose (a comment, a docstring, Markdown text): code only inside `code spans`."""
    for offset, line in enumerate(text.split("\n")):
        spans = [span.span(1) for span in _CODE_SPAN.finditer(line)]
        for match in _WORD.finditer(line):
            in_span = any(a <= match.start() < b for a, b in spans)
            yield first_line + offset, match.group(), in_span


def _words(text: str, relative: str) -> Iterator[tuple[int, str, bool]]:
    """(line, word, is_code) for every word of a handout file."""
    if relative.endswith(".py"):
        try:
            tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
        except (tokenize.TokenError, SyntaxError):
            tokens = None
        if tokens is not None:
            prose = {tokenize.STRING, tokenize.COMMENT, getattr(tokenize, "FSTRING_MIDDLE", -1)}
            for token in tokens:
                if token.type == tokenize.NAME:
                    yield token.start[0], token.string, True
                elif token.type in prose:
                    yield from _prose_words(token.string, token.start[0])
            return
    if relative.endswith(".md"):
        # A block tagged as Python or protobuf is code; an untagged or shell block mixes
        # commands with their output, which is prose ("the prefix has 2 of 3 operations").
        block: str | None = None
        for number, line in enumerate(text.splitlines(), start=1):
            fence = re.match(r"\s*(```|~~~)\s*(\w*)", line)
            if fence:
                block = None if block is not None else fence.group(2).lower()
                continue
            if block in _CODE_BLOCK_LANGUAGES:
                yield from ((number, m.group(), True) for m in _WORD.finditer(line))
            else:
                yield from _prose_words(line, number)
        return
    if relative.endswith(".proto"):
        for number, line in enumerate(text.splitlines(), start=1):
            code, _, comment = line.partition("//")
            yield from ((number, m.group(), True) for m in _WORD.finditer(code))
            yield from _prose_words(comment, number)
        return
    yield from _prose_words(text, 1)


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


def add_handout_arguments(parser: argparse.ArgumentParser) -> None:
    """`labs handout`'s arguments."""
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("out_dir", nargs="?", help="an empty or new directory for the handout")
    target.add_argument("--branch", metavar="NAME",
                        help="commit the handout to branch NAME of this repo (a root commit, "
                        "then one commit per changed handout; never solution history)")


def handout_command(args: argparse.Namespace) -> int:
    """`labs handout`: 0 when the handout was written, 1 when it is unfit (the problems go to
    stderr)."""
    try:
        if args.branch:
            commit = commit_to_branch(args.branch)
            print(f"handout committed to branch {args.branch} ({commit[:12]}); "
                  "its history holds handouts only")
        else:
            files = build_handout(Path(args.out_dir))
            print(f"handout written to {args.out_dir}: {len(files)} files, one git commit")
    except (MarkerError, FileExistsError) as exc:
        print(f"labs handout: {exc}", file=sys.stderr)
        return 1
    return 0
