"""Taking in a submission: a directory, a git repository or an archive, reduced to the student
files the rubric names, with everything else the submission touched listed and ignored.

Archives are untrusted input. Nothing is extracted with `extractall`: each member is checked
and copied by hand, and refused if its path is absolute or climbs out with `..`, if it is a
link or a device, or if it is larger than the limits below (counted on the bytes actually
decompressed, not on what the header claims). A git repository is read with `git archive
HEAD`, through the same checks, with the repository's own hooks and fsmonitor disabled.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import subprocess
import tarfile
import tempfile
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO

__all__ = [
    "ExtractionLimits", "Submission", "SubmissionError", "open_submission", "extract_archive",
    "laid_out", "review_flags", "file_digest",
]

# Directories and files a submission may carry that are nobody's work: not listed as ignored.
JUNK_DIRS = {".git", "__pycache__", ".venv", "venv", ".pytest_cache", "_generated",
             "__MACOSX", ".mypy_cache", ".idea", ".vscode", "node_modules", "build",
             "test-failures", "grade-results"}
JUNK_SUFFIXES = (".pyc", ".pyo", ".egg-info")
JUNK_FILES = {".DS_Store", "Thumbs.db"}
LISTED_AT_MOST = 200  # of the ignored files, name this many in the report


class SubmissionError(Exception):
    """The submission cannot be read at all (not a directory, repository or known archive)."""


@dataclass(frozen=True)
class ExtractionLimits:
    max_members: int = 20_000
    max_file_bytes: int = 16 << 20
    max_total_bytes: int = 256 << 20


@dataclass
class Submission:
    """What the grader takes from a submission, and what it says about the rest."""

    origin: str                                   # e.g. "zip archive hw.zip"
    root: Path | None                             # where the student files were found
    files: dict[str, bytes] = field(default_factory=dict)     # student file -> its content
    missing: list[str] = field(default_factory=list)          # handout version used instead
    refused: list[str] = field(default_factory=list)          # "path: why", not taken
    ignored: list[str] = field(default_factory=list)          # "path (changed|added)"
    ignored_total: int = 0
    notes: list[str] = field(default_factory=list)

    def summary_lines(self) -> list[str]:
        lines = [f"Submission: {self.origin}"]
        lines += self.notes
        if self.files:
            lines.append("Graded student files: " + ", ".join(sorted(self.files)))
        if self.missing:
            lines.append("Not in the submission (the handout's version was graded): "
                         + ", ".join(self.missing))
        for entry in self.refused:
            lines.append(f"Refused: {entry}")
        if self.ignored_total:
            lines.append(f"Ignored ({self.ignored_total} file(s) outside the student files; the "
                         "grader uses the original framework):")
            lines += [f"  {entry}" for entry in self.ignored]
            if self.ignored_total > len(self.ignored):
                lines.append(f"  ... and {self.ignored_total - len(self.ignored)} more")
        return lines


# --- archives -------------------------------------------------------------------------------------

def _safe_relative(name: str) -> str | None:
    """The member's path as a clean relative POSIX path, or None if it is unsafe."""
    name = name.replace("\\", "/")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return None
    parts = [p for p in PurePosixPath(name).parts if p not in ("", ".")]
    if not parts or ".." in parts:
        return None
    return "/".join(parts)


def _size(n: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            return f"{n / (1 << shift):g} {unit}"
    return f"{n} bytes"


class _Budget:
    def __init__(self, limits: ExtractionLimits) -> None:
        self.limits = limits
        self.total = 0
        self.members = 0


def _copy_limited(source: IO[bytes], target: Path, budget: _Budget) -> str | None:
    """Copy one member; None if it fit the limits, else why not (and nothing is left behind)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    written, reason = 0, None
    with open(target, "wb") as out:
        while chunk := source.read(1 << 16):
            written += len(chunk)
            budget.total += len(chunk)
            if written > budget.limits.max_file_bytes:
                reason = f"larger than {_size(budget.limits.max_file_bytes)}"
                break
            if budget.total > budget.limits.max_total_bytes:
                reason = f"the archive holds more than {_size(budget.limits.max_total_bytes)}"
                break
            out.write(chunk)
    if reason:
        target.unlink()
    return reason


def _place(dest: Path, relative: str) -> Path:
    target = dest / relative
    # Every directory on the way was made by us (no links are ever extracted), but be certain.
    if not str(target.resolve()).startswith(str(dest.resolve()) + os.sep):
        raise SubmissionError(f"{relative}: resolves outside the extraction directory")
    return target


def extract_archive(archive: Path, dest: Path,
                    limits: ExtractionLimits = ExtractionLimits()) -> list[str]:
    """Extract a .zip or tar (.tar, .tar.gz, .tgz, .tar.bz2, .tar.xz) archive into `dest`,
    refusing what is unsafe; return the refused members as "name: why"."""
    dest.mkdir(parents=True, exist_ok=True)
    budget, refused = _Budget(limits), []

    def admit(name: str, kind_ok: bool, kind: str) -> str | None:
        budget.members += 1
        if budget.members > limits.max_members:
            refused.append(f"{name}: more than {limits.max_members} members in the archive")
            return None
        relative = _safe_relative(name)
        if relative is None:
            refused.append(f"{name}: unsafe path (absolute or with '..')")
            return None
        if not kind_ok:
            refused.append(f"{name}: {kind} refused (only regular files are taken)")
            return None
        return relative

    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                if info.is_dir():
                    continue
                file_type = stat.S_IFMT(info.external_attr >> 16)  # 0: made without a type
                is_regular = file_type in (0, stat.S_IFREG)
                kind = "symbolic link" if file_type == stat.S_IFLNK else "special file"
                relative = admit(info.filename, is_regular, kind)
                if relative is None:
                    continue
                with zf.open(info) as source:
                    why = _copy_limited(source, _place(dest, relative), budget)
                if why:
                    refused.append(f"{info.filename}: {why}")
        return refused
    try:
        tf = tarfile.open(archive, mode="r:*")
    except (tarfile.TarError, OSError) as exc:
        raise SubmissionError(f"{archive}: not a directory, git repository, zip or tar archive "
                              f"({exc})") from None
    with tf:
        for member in tf:
            if member.isdir():
                continue
            kind = ("symbolic link" if member.issym() else "hard link" if member.islnk()
                    else "special file")
            relative = admit(member.name, member.isreg(), kind)
            if relative is None:
                continue
            extracted = tf.extractfile(member)
            if extracted is None:
                refused.append(f"{member.name}: unreadable member")
                continue
            with extracted:
                why = _copy_limited(extracted, _place(dest, relative), budget)
            if why:
                refused.append(f"{member.name}: {why}")
    return refused


def _git_head(repo: Path, dest: Path, limits: ExtractionLimits) -> tuple[str, list[str]]:
    """Extract the HEAD tree of `repo` into `dest`; return (commit, refused members)."""
    # The repository is untrusted: its config must not run anything (hooks, fsmonitor, ...),
    # and ownership by another user (typical when grading as root) must not stop us.
    git = ["git", "-c", "safe.directory=*", "-c", "core.fsmonitor=false",
           "-c", f"core.hooksPath={os.devnull}", "-C", str(repo)]
    env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "GIT_TERMINAL_PROMPT": "0"}
    head = subprocess.run([*git, "rev-parse", "--verify", "HEAD^{commit}"], capture_output=True,
                          text=True, env=env, check=False)
    if head.returncode != 0:
        raise SubmissionError(f"{repo}: a git repository without a commit to grade "
                              f"({head.stderr.strip()})")
    commit = head.stdout.strip()
    with tempfile.TemporaryDirectory() as tmp:
        tar_path = Path(tmp) / "head.tar"
        with open(tar_path, "wb") as out:
            done = subprocess.run([*git, "archive", "--format=tar", commit], stdout=out,
                                  stderr=subprocess.PIPE, env=env, check=False)
        if done.returncode != 0:
            raise SubmissionError(f"{repo}: git archive failed: {done.stderr.decode().strip()}")
        return commit, extract_archive(tar_path, dest, limits)


# --- locating and reading the student files -----------------------------------------------------

def _is_junk(relative: str) -> bool:
    parts = relative.split("/")
    return (any(p in JUNK_DIRS or p.endswith(JUNK_SUFFIXES) for p in parts[:-1])
            or parts[-1] in JUNK_FILES or parts[-1].endswith(JUNK_SUFFIXES))


def _find_root(top: Path, student_files: Iterable[str]) -> Path:
    """`top`, or the one directory below it that holds the student files (an archive made of
    a folder, a clone inside a zip)."""
    files = list(student_files)

    def count(d: Path) -> int:
        return sum(1 for f in files if (d / f).is_file() and not _through_link(d, f))

    if count(top) or not top.is_dir():
        return top
    below = [d for d in sorted(top.iterdir())
             if d.is_dir() and not d.is_symlink() and d.name not in JUNK_DIRS]
    best = max(below, key=count, default=None)
    return best if best is not None and count(best) else top


def _walk_files(root: Path) -> Iterable[tuple[str, Path]]:
    """(relative path, path) of every file below root, without following links."""
    for directory, dirs, names in os.walk(root, followlinks=False):
        dirs[:] = sorted(d for d in dirs if d not in JUNK_DIRS and not d.endswith(JUNK_SUFFIXES))
        for name in sorted(names):
            path = Path(directory) / name
            yield path.relative_to(root).as_posix(), path


def file_digest(path: Path) -> str:
    """sha256 of a file's content, hex."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 16), b""):
            h.update(chunk)
    return h.hexdigest()


def _through_link(root: Path, relative: str) -> bool:
    """Whether the path, or a directory on the way to it, is a symbolic link: its content could
    be any file the grader can read."""
    path = root
    for part in relative.split("/"):
        path = path / part
        if path.is_symlink():
            return True
    return False


def _read_student_files(submission: Submission, root: Path, student_files: Iterable[str],
                        limits: ExtractionLimits) -> None:
    for relative in student_files:
        path = root / relative
        if _through_link(root, relative):
            submission.refused.append(f"{relative}: a symbolic link, or inside one (the "
                                      "handout's version was graded)")
        elif not path.exists():
            submission.missing.append(relative)
        elif not path.is_file():
            submission.refused.append(f"{relative}: not a regular file "
                                      "(the handout's version was graded)")
        elif path.stat().st_size > limits.max_file_bytes:
            submission.refused.append(f"{relative}: larger than {_size(limits.max_file_bytes)} "
                                      "(the handout's version was graded)")
        else:
            submission.files[relative] = path.read_bytes()


def _list_ignored(submission: Submission, root: Path, pristine: Path,
                  student_files: Iterable[str]) -> None:
    """Every file of the submission, other than the student files, that is not exactly the
    framework's: it is ignored, and the report says so."""
    student = set(student_files)
    ignored = []
    for relative, path in _walk_files(root):
        if relative in student or _is_junk(relative):
            continue
        original = pristine / relative
        if path.is_symlink():
            ignored.append(f"{relative} (symbolic link)")
        elif not original.is_file():
            ignored.append(f"{relative} (added)")
        elif (path.stat().st_size != original.stat().st_size
              or file_digest(path) != file_digest(original)):
            ignored.append(f"{relative} (changed)")
    submission.ignored_total = len(ignored)
    submission.ignored = ignored[:LISTED_AT_MOST]


def open_submission(path: Path, pristine: Path, student_files: tuple[str, ...], workdir: Path,
                    limits: ExtractionLimits = ExtractionLimits(),
                    worktree: bool = False) -> Submission:
    """Read the student files of the submission at `path` (directory, git repository or
    archive), compare the rest with the `pristine` framework, and say what was taken. A git
    repository is graded at its last commit, or as the files are on disk if `worktree`."""
    path = Path(path)
    if not path.exists():
        raise SubmissionError(f"{path}: no such file or directory")
    refused: list[str] = []
    notes: list[str] = []
    if path.is_dir() and (path / ".git").exists() and not worktree:
        top = workdir / "from-git"
        commit, refused = _git_head(path, top, limits)
        origin = f"git repository {path}, commit {commit[:12]}"
        notes.append("Graded the last commit (HEAD); uncommitted changes are not graded.")
    elif path.is_dir():
        top, origin = path, f"directory {path}"
    elif path.is_file():
        top = workdir / "from-archive"
        refused = extract_archive(path, top, limits)
        origin = f"{'zip' if zipfile.is_zipfile(path) else 'tar'} archive {path}"
    else:
        raise SubmissionError(f"{path}: not a directory, git repository or archive")
    root = _find_root(top, student_files)
    submission = Submission(origin=origin, root=root, refused=refused, notes=notes)
    if root != top:
        submission.notes.append(f"Student files found one level down, in {root.name}/.")
    _read_student_files(submission, root, student_files, limits)
    _list_ignored(submission, root, pristine, student_files)
    return submission


def laid_out(submission: Submission, pristine: Path, dest: Path) -> dict[str, str]:
    """Copy the pristine framework to `dest` and lay the student files on it; return the
    sha256 of every file of the result (the grader checks runs against it)."""
    shutil.copytree(pristine, dest, symlinks=False)
    for relative, content in submission.files.items():
        target = dest / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    return {relative: file_digest(path) for relative, path in _walk_files(dest)}


# --- review flags ---------------------------------------------------------------------------------

# Things a Raft or KV solution never needs, and that code faking a test result would: worth a
# look by a person, not evidence of anything. (regular expression, what to call it)
REVIEW_PATTERNS = (
    (r"\bctypes\b", "ctypes"), (r"\bgc\.get_(objects|referrers|referents)", "gc introspection"),
    (r"\bsys\._getframe|\bf_(globals|locals|back|trace)\b|\binspect\.\w", "frame introspection"),
    (r"\bsys\.(settrace|setprofile)|\bthreading\.(settrace|setprofile)", "tracing hooks"),
    (r"\bsys\.modules\b", "sys.modules"), (r"\b_?pytest\b|\bpluggy\b", "pytest"),
    (r"\bos\._exit\b|\bsys\.exit\b", "exits the process"), (r"\bos\.fork\b|\bsetsid\b", "fork"),
    (r"/proc/", "/proc/"), (r"\bmeta_path\b|\bpath_hooks\b|__import__", "import hooks"),
    (r"__code__", "__code__"),
    (r"\bos\.(kill|killpg)\b|\bsignal\.(signal|alarm|setitimer|pthread_kill)\b", "signals"),
    (r"\bsubprocess\b|\bos\.(system|exec\w*|spawn\w*)\b", "runs programs"),
    (r"raftlabs_grade|RAFTLABS_GRADE", "names the grader"),
)


def review_flags(submission: Submission) -> list[str]:
    """"file: what" for each pattern of REVIEW_PATTERNS found in a student file."""
    flags = []
    for relative, content in sorted(submission.files.items()):
        text = content.decode(errors="replace")
        found = [what for pattern, what in REVIEW_PATTERNS if re.search(pattern, text)]
        if found:
            flags.append(f"{relative}: {', '.join(found)}")
    return flags
