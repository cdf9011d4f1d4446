"""Mutants: small student bugs written as exact search/replace edits of the reference solution.

Each mutant is one file, `instructor/mutants/corpus/<id>.mutant`; its name is its id. A header of
`key: value` lines, then one or more edits:

    # Comments (lines starting with #) and blank lines are allowed around the edits.
    description: grants a vote without the election restriction (section 5.4.1)
    parts: 2B 2C
    note: optional, for whoever reads the kill matrix

    @@ search raft/raft.py
            if (self.voted_for in (None, args.candidate_id)
                    and self._is_up_to_date(args.last_log_index, args.last_log_term)):
    @@ replace
            if self.voted_for in (None, args.candidate_id):
    @@ end

`parts` lists the lab parts whose suites should kill the mutant, cheapest first; `labs mutants`
runs them in that order. Between `@@ search FILE` and `@@ replace` are whole lines of the file,
exactly (indentation included); between `@@ replace` and `@@ end`, what they become (nothing
deletes them). The lines are matched as text, not by line number, so a mutant keeps applying
while the reference changes elsewhere; it must match exactly once, at the start of a line, or
applying fails naming the mutant, the file and the snippet. Anchor a snippet on a few
distinctive lines: enough to be unique, few enough to survive unrelated edits. Edits apply in
order, each to the text the previous ones left. Only student files may be edited.
"""

from __future__ import annotations

import difflib
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "CORPUS_DIR", "PARTS", "Edit", "Mutant", "MutantFormatError", "ApplyError", "parse_mutant",
    "load_corpus", "apply_to_text", "apply_mutant", "mutant_diff",
]

CORPUS_DIR = Path(__file__).resolve().parent / "corpus"
SUFFIX = ".mutant"
PARTS = ("2A", "2B", "2C", "2D", "3A", "3B")
# The files a student writes (instructor.handout.STUDENT_FILES, repeated here so that this module
# does not import the handout generator); a mutant is a student's bug, so it edits only these.
EDITABLE_FILES = (
    "raft/raft.py",
    "kvraft/server.py",
    "kvraft/client.py",
    "proto/raft.proto",
    "proto/kvraft.proto",
)

_ID = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_HEADER = re.compile(r"^(?P<key>[a-z]+):\s*(?P<value>.*?)\s*$")
_SEARCH = re.compile(r"^@@ search (?P<file>\S+)\s*$")
_REPLACE = "@@ replace"
_END = "@@ end"
_KEYS = {"description", "parts", "note"}


class MutantFormatError(ValueError):
    """A corpus file that does not parse; the message starts with `file:line:`."""


class ApplyError(Exception):
    """A mutant does not apply to the tree as it is: a snippet is missing or ambiguous, or the
    mutated file does not compile. The message names the mutant, the file and the snippet."""

    def __init__(self, message: str, mutant: str, file: str, snippet: str = "",
                 reason: str = "") -> None:
        super().__init__(message)
        self.mutant = mutant
        self.file = file
        self.snippet = snippet
        self.reason = reason or message.splitlines()[0]   # one line, for tables


@dataclass(frozen=True)
class Edit:
    file: str
    search: str    # whole lines, each ending in "\n"
    replace: str   # the same; "" deletes the lines
    line: int = 0  # where the edit starts in its corpus file


@dataclass(frozen=True)
class Mutant:
    id: str
    description: str
    parts: tuple[str, ...]
    edits: tuple[Edit, ...]
    note: str = ""
    source: str = ""   # the corpus file it came from

    @property
    def files(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(edit.file for edit in self.edits))


def parse_mutant(text: str, mutant_id: str, source: str = "<mutant>") -> Mutant:
    """A mutant from the text of its corpus file (format in the module docstring)."""
    def fail(line: int, message: str) -> MutantFormatError:
        return MutantFormatError(f"{source}:{line}: {message}")

    if not _ID.match(mutant_id):
        raise fail(1, f"bad mutant id {mutant_id!r}: use lower-case words joined by '-'")
    header: dict[str, str] = {}
    edits: list[Edit] = []
    lines = text.splitlines()
    number = 0
    while number < len(lines):
        line = lines[number]
        number += 1
        if not line.strip() or line.startswith("#"):
            continue
        search = _SEARCH.match(line)
        if search:
            edit, number = _parse_edit(lines, number, search["file"], fail)
            edits.append(edit)
            continue
        if line.startswith("@@"):
            raise fail(number, f"expected '@@ search FILE', found {line.strip()!r}")
        if edits:
            raise fail(number, "only blank lines and comments may follow an edit")
        entry = _HEADER.match(line)
        if not entry or entry["key"] not in _KEYS:
            raise fail(number, f"expected one of {', '.join(sorted(_KEYS))} as 'key: value', "
                               f"found {line.strip()!r}")
        if entry["key"] in header:
            raise fail(number, f"{entry['key']} given twice")
        header[entry["key"]] = entry["value"]
    for key in ("description", "parts"):
        if not header.get(key):
            raise fail(1, f"no {key}")
    if not edits:
        raise fail(1, "no edit ('@@ search FILE' ... '@@ replace' ... '@@ end')")
    parts = tuple(p.upper() for p in re.split(r"[\s,]+", header["parts"]) if p)
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        raise fail(1, f"unknown part {unknown[0]} (parts: {' '.join(PARTS)})")
    if len(set(parts)) != len(parts):
        raise fail(1, f"a part is listed twice: {header['parts']}")
    return Mutant(mutant_id, header["description"], parts, tuple(edits), header.get("note", ""),
                  source)


def _parse_edit(lines: list[str], start: int, file: str, fail) -> tuple[Edit, int]:
    """The edit whose `@@ search` line is line `start` (1-based), and the index of the line
    after its `@@ end`."""
    if file.startswith("/") or ".." in Path(file).parts or file not in EDITABLE_FILES:
        raise fail(start, f"{file}: a mutant edits only student files "
                          f"({', '.join(EDITABLE_FILES)})")
    blocks: list[list[str]] = [[]]
    for number in range(start, len(lines)):
        line = lines[number]
        if line == _REPLACE and len(blocks) == 1:
            blocks.append([])
        elif line == _END and len(blocks) == 2:
            search, replace = ("".join(f"{x}\n" for x in block) for block in blocks)
            if not search.strip():
                raise fail(start, "the search snippet is empty")
            if search == replace:
                raise fail(start, "the replacement is the same as the search snippet")
            return Edit(file, search, replace, start), number + 1
        elif line.startswith("@@"):
            expected = _REPLACE if len(blocks) == 1 else _END
            raise fail(number + 1, f"expected {expected!r}, found {line.strip()!r}")
        else:
            blocks[-1].append(line)
    raise fail(start, f"this edit has no {_REPLACE if len(blocks) == 1 else _END!r}")


def load_corpus(directory: Path = CORPUS_DIR) -> list[Mutant]:
    """Every mutant of the corpus, sorted by id."""
    mutants = []
    for path in sorted(Path(directory).glob(f"*{SUFFIX}")):
        mutants.append(parse_mutant(path.read_text(encoding="utf-8"), path.stem,
                                    str(_display(path))))
    return mutants


def _display(path: Path) -> Path:
    try:
        return path.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        return path


def _line_starts(text: str, snippet: str) -> list[int]:
    """The offsets at which `snippet` occurs in `text` at the start of a line (overlaps too)."""
    found, start = [], text.find(snippet)
    while start != -1:
        if start == 0 or text[start - 1] == "\n":
            found.append(start)
        start = text.find(snippet, start + 1)
    return found


def _quote(snippet: str) -> str:
    return textwrap.indent(snippet.rstrip("\n"), "    | ", lambda line: True)


def apply_to_text(mutant: Mutant, texts: dict[str, str]) -> dict[str, str]:
    """The mutated texts of the files `mutant` edits, from their current `texts` (by path)."""
    result: dict[str, str] = {}
    for number, edit in enumerate(mutant.edits, start=1):
        where = f"mutant {mutant.id}, edit {number} of {len(mutant.edits)}"
        if edit.file not in result:
            if edit.file not in texts:
                raise ApplyError(f"{where}: {edit.file}: no such file", mutant.id, edit.file,
                                 reason=f"{edit.file}: no such file")
            result[edit.file] = texts[edit.file]
        text = result[edit.file]
        found = _line_starts(text, edit.search)
        if not found:
            raise ApplyError(
                f"{where}: {edit.file}: the search snippet is not in the file (did the reference "
                f"change? re-anchor the snippet in {mutant.source or mutant.id}):\n"
                f"{_quote(edit.search)}", mutant.id, edit.file, edit.search,
                f"{edit.file}: the snippet of edit {number} is not in the file")
        if len(found) > 1:
            lines = ", ".join(str(text.count("\n", 0, at) + 1) for at in found)
            raise ApplyError(
                f"{where}: {edit.file}: the search snippet occurs {len(found)} times (lines "
                f"{lines}); it must occur once: add a distinctive line to it:\n"
                f"{_quote(edit.search)}", mutant.id, edit.file, edit.search,
                f"{edit.file}: the snippet of edit {number} occurs {len(found)} times")
        at = found[0]
        result[edit.file] = text[:at] + edit.replace + text[at + len(edit.search):]
    for file, text in result.items():
        if file.endswith(".py"):
            try:
                compile(text, file, "exec")
            except SyntaxError as exc:
                raise ApplyError(f"mutant {mutant.id}: {file}: the mutated file does not compile: "
                                 f"line {exc.lineno}: {exc.msg}", mutant.id, file,
                                 reason=f"{file} does not compile once mutated") from None
    return result


def apply_mutant(mutant: Mutant, root: Path) -> list[str]:
    """Apply `mutant` to the tree at `root` (a scratch copy!); return the files it changed.
    Nothing is written unless every edit applies."""
    root = Path(root)
    texts = {}
    for file in mutant.files:
        path = root / file
        if path.is_file():
            texts[file] = path.read_text(encoding="utf-8")
    mutated = apply_to_text(mutant, texts)
    for file, text in mutated.items():
        (root / file).write_text(text, encoding="utf-8")
    return list(mutated)


def mutant_diff(mutant: Mutant, root: Path) -> str:
    """The unified diff `mutant` makes to the files at `root` (raises ApplyError)."""
    root = Path(root)
    texts = {f: (root / f).read_text(encoding="utf-8")
             for f in mutant.files if (root / f).is_file()}
    out: list[str] = []
    for file, text in apply_to_text(mutant, texts).items():
        out.extend(difflib.unified_diff(texts[file].splitlines(keepends=True),
                                        text.splitlines(keepends=True),
                                        f"a/{file}", f"b/{file}", n=2))
    return "".join(out)
