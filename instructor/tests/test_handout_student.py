"""The student's first day with a generated handout: the README's first steps, every shell
command of the student guides, `labs --help`, and the repository's CI workflow."""

from __future__ import annotations

import argparse
import inspect
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from instructor.handout import INSTRUCTOR_ONLY, build_handout
from labs.cli import build_parser

REPO_ROOT = Path(__file__).resolve().parents[2]
# The student guides: the README and every Markdown file under docs/ that the handout ships
# (a guide added later is checked too).
GUIDES = ("README.md", "docs/lab2-raft.md", "docs/lab3-kvraft.md", "docs/tools.md")
# The README's promise: from a fresh handout to a lab test failing at a named stub.
MAX_FIRST_COMMANDS = 3
WORKFLOW = ".github/workflows/raftlabs.yml"


@pytest.fixture(scope="module")
def handout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh handout whose .venv is what `make` installs there (`pip install -e .`), built
    without the network: a venv that sees this interpreter's packages and the handout itself,
    with the `labs` script, and make's stamp newer than setup.cfg."""
    tree = tmp_path_factory.mktemp("student") / "raftlabs"
    build_handout(tree, REPO_ROOT)
    venv = tree / ".venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    site = venv / "lib" / version / "site-packages"
    (site / "raftlabs-handout.pth").write_text(
        f"{sysconfig.get_paths()['purelib']}\n{tree}\n")
    labs = venv / "bin" / "labs"
    labs.write_text(f"#!{venv / 'bin' / 'python'}\nimport sys\nfrom labs.cli import main\n"
                    "sys.exit(main())\n")
    labs.chmod(0o755)
    (venv / ".installed").touch()
    return tree


def _env(tree: Path) -> dict[str, str]:
    """A student's shell: the handout's .venv/bin first, none of this session's test settings.

    Nor the settings of a `make` that runs these tests: make hands its command-line variables to
    every make below it (MAKEFLAGS, and the variables themselves), so CI's `make test_others
    VENV=.venv-3.10 PYTEST_ARGS=instructor/tests` would otherwise reach the student's make."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTEST_ADDOPTS", "LOG_LEVEL", "LABRPC_SEED",
                        "COLUMNS", "FORCE_COLOR", "MAKEFLAGS", "MFLAGS", "MAKELEVEL",
                        "MAKEOVERRIDES", "PYTEST_ARGS", "VENV", "PYTHON")}
    env["PATH"] = f"{tree / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return env


def _sh(tree: Path, command: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", "-c", command], cwd=tree, env=_env(tree), capture_output=True,
                          text=True, timeout=timeout)


def _strip_comment(line: str) -> str:
    return re.sub(r"\s+#.*$", "", line.strip())


# --- the README's first steps ------------------------------------------------------------------


def test_readme_first_steps_reach_a_2a_test_failing_at_the_stub_it_names(handout: Path):
    readme = (handout / "README.md").read_text(encoding="utf-8")
    section = readme.split("## First steps", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block, "the README's First steps have no sh block"
    commands = [c for c in map(_strip_comment, block.group(1).splitlines()) if c]
    assert 1 <= len(commands) <= MAX_FIRST_COMMANDS, commands
    assert commands[0] == "make test_others"
    stub = re.search(r"`NotImplementedError: ([^`]+\(2A\))`", section.replace("\n", " "))
    assert stub, "the README names no 2A stub"

    for command in commands[:-1]:
        result = _sh(handout, command)
        assert result.returncode == 0, f"{command}:\n{result.stdout[-3000:]}{result.stderr[-2000:]}"
    last = _sh(handout, commands[-1])
    output = last.stdout + last.stderr
    assert last.returncode != 0, output[-3000:]
    assert re.search(r"FAILED tests/raft/test_raft_2a\.py::test_\w+_2a", output), output[-3000:]
    assert f"NotImplementedError: {stub.group(1)}" in output, output[-3000:]


# --- every shell command of the student guides --------------------------------------------------


def _transcripts(text: str) -> list[list[tuple[str, list[str]]]]:
    """The commands of a guide, block by block, each with the output shown under it: the lines
    of ```sh blocks, and the `$ ` lines of untagged blocks (a terminal session)."""
    blocks, current, language = [], None, None
    for line in text.splitlines():
        fence = re.match(r"\s*```\s*(\w*)", line)
        if fence:
            if current is None:
                current, language = [], fence.group(1)
            else:
                blocks.append(current)
                current = None
            continue
        if current is None:
            continue
        if language in ("sh", "shell", "bash"):
            command = _strip_comment(line.removeprefix("$ "))
            if command:
                current.append((command, []))
        elif language == "" and line.startswith("$ "):
            current.append((line[2:].strip(), []))
        elif language == "" and current:
            current[-1][1].append(line)
    return blocks


def _inline_commands(text: str) -> list[str]:
    """`make ...` and `labs ...` written as code spans in the prose and tables (`labs test`
    alone names the tool; `labs test 2B -n 50` is a command)."""
    found = []
    for span in re.findall(r"`([^`\n]+)`", text):
        words = span.split()
        if "<" in span or "…" in span or "[" in span:
            continue  # a synopsis or a placeholder
        if (words[0] == "make" and len(words) >= 2) or (words[0] == "labs" and len(words) >= 3):
            found.append(span)
    return found


# Commands worth running as written, with the exit status the guides give them: cheap, and
# independent of any Raft (the handout's are stubs). The rest are checked to exist: make
# targets, labs commands and options, files, programs.
CHEAP = {
    "labs test test_initial_elektion_2a": 2, "labs test 2E": 2, "labs proto": 0, "make help": 0,
    "labs test test_deadlock_demo ": 1, "LOG_LEVEL=debug python -m pytest docs/demo/": 0,
    "head -4 demo.log": 0, "labs logs demo.log ": 0, "labs check-history ok.txt": 0,
    "labs check-history stale.txt": 1, "labs check-history broken.txt": 3,
    ". .venv/bin/activate": 0, ".venv/bin/labs --help": 0, "labs --help": 0,
}


def _expected_status(command: str) -> int | None:
    for prefix, status in CHEAP.items():
        if command == prefix.strip() or command.startswith(prefix):
            return status
    return None


def _normal(line: str) -> str:
    """A line without what changes from run to run: numbers (times, thread ids) and spacing."""
    return re.sub(r"\s+", " ", re.sub(r"[0-9a-fx]*\d[0-9a-fx.]*", "#", line)).strip()


def test_every_shell_command_of_the_student_guides_runs_or_exists(handout: Path):
    ran: list[str] = []
    checked: list[str] = []
    guides = ["README.md", *sorted(p.relative_to(handout).as_posix()
                                   for p in (handout / "docs").rglob("*.md"))]
    assert set(GUIDES) <= set(guides)
    for relative in guides:
        text = (handout / relative).read_text(encoding="utf-8")
        for block in _transcripts(text):
            status: int | None = None
            for command, output in block:
                where = f"{relative}: {command}"
                if command.startswith("cat ") and output:
                    # the guide shows the file: it is the input of the commands that follow
                    (handout / command.split()[1]).write_text("\n".join(output) + "\n")
                    ran.append(where)
                    status = 0
                elif command == "echo $?":
                    if status is not None and output:
                        assert output[0].strip() == str(status), f"{where}: the guide says " \
                            f"{output[0].strip()}, the command before it exited with {status}"
                        ran.append(where)
                elif _expected_status(command) is not None:
                    result = _sh(handout, command, timeout=60)
                    status = result.returncode
                    shown = result.stdout + result.stderr
                    assert status == _expected_status(command), (
                        f"{where}: exit status {status}\n{shown[-3000:]}")
                    if output and output[0].strip():
                        # the guide's first line of output is what the command prints
                        assert _normal(output[0]) in _normal(shown), (
                            f"{where}: prints no line like {output[0]!r}:\n{shown[-3000:]}")
                    ran.append(where)
                else:
                    status = None
                    checked.append(where)
                    _check_exists(handout, command, where)
        for command in _inline_commands(text):
            checked.append(f"{relative}: {command}")
            _check_exists(handout, command, f"{relative}: `{command}`")
    assert len(ran) >= 15 and len(checked) >= 30, (ran, checked)


def _check_exists(tree: Path, command: str, where: str) -> None:
    """What a command needs is there: each program, make target, labs command and option."""
    for segment in re.split(r"\s*(?:\||&&|;)\s*", command):
        words = shlex.split(segment)
        while words and re.match(r"\w+=", words[0]):
            words.pop(0)  # VAR=value
        words = [w for w in words if not re.match(r"\d?>", w)]  # 2>test.log, >/dev/null
        if not words:
            continue
        program, args = words[0], words[1:]
        if program == "make":
            for target in args:
                if "=" not in target:
                    _check_make_target(tree, target, where)
        elif program == "labs":
            _check_labs_arguments(tree, args, where)
        elif program in (".", "source"):
            assert (tree / args[0]).is_file(), f"{where}: no {args[0]}"
        elif program.startswith(".venv/"):
            assert (tree / program).is_file(), f"{where}: no {program}"
        elif program == "python" and args[:2] == ["-m", "pytest"]:
            for arg in args[2:]:
                if not arg.startswith("-"):
                    assert (tree / arg.split("::")[0]).exists(), f"{where}: no {arg}"
        else:
            assert shutil.which(program), f"{where}: no program {program}"


def _test_names(tree: Path) -> set[str]:
    return {m for path in (tree / "tests").rglob("test_*.py")
            for m in re.findall(r"^def (test_\w+)", path.read_text(), re.M)}


def _check_make_target(tree: Path, target: str, where: str) -> None:
    result = subprocess.run(["make", "-n", target], cwd=tree, env=_env(tree), capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 0, f"{where}: make has no target {target}: {result.stderr}"
    makefile = (tree / "Makefile").read_text()
    explicit = re.search(rf"^(?:[\w ]+ )?{re.escape(target)}(?: [\w ]+)?:", makefile, re.M)
    pattern = re.fullmatch(r"(?:cargo_)?test_(\w+)", target)
    if pattern and not explicit:
        # the pattern rule takes any name: it must select some test
        assert any(pattern.group(1) in name for name in _test_names(tree)), (
            f"{where}: make {target} selects no test")


_parsers: dict[Path, list[list[str]]] = {}


def _check_labs_arguments(tree: Path, args: list[str], where: str) -> None:
    """The handout's own `labs` parses the arguments (a command or option that does not exist
    there is an error)."""
    probe = ("import json, sys\nfrom labs.cli import build_parser\n"
             "try:\n    build_parser().parse_args(json.loads(sys.argv[1]))\n"
             "except SystemExit as exc:\n    sys.exit(3 if exc.code else 0)\n")
    if args and args[0] == "--help" or "--help" in args:
        return  # --help is run as a cheap command
    result = subprocess.run([str(tree / ".venv/bin/python"), "-c", probe, json.dumps(args)],
                            cwd=tree, env=_env(tree), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"{where}: labs refuses it: {result.stderr[-1000:]}"


# --- labs --help, the CI workflow, .gitignore -----------------------------------------------------


def _listed_commands(help_text: str) -> list[str]:
    return re.findall(r"^ {4}([a-z][\w-]*)", help_text, re.M)


def _instructor_only_commands() -> set[str]:
    """The commands of this repository's `labs` that run code the handout leaves out: their
    function lives in a package INSTRUCTOR_ONLY names, or (a function of labs/cli.py) imports
    one."""
    modules = [entry.rstrip("/") for entry in INSTRUCTOR_ONLY
               if entry.endswith("/") and (REPO_ROOT / entry / "__init__.py").is_file()]
    assert {"instructor", "benchmarks"} <= set(modules), modules
    commands = next(action for action in build_parser()._actions
                    if isinstance(action, argparse._SubParsersAction))
    found = set()
    for name, parser in commands.choices.items():
        func = parser.get_default("func")
        if func is None:
            continue  # a group of subcommands (`labs cluster start`), each with its own
        source = inspect.getsource(func) if func.__module__ == "labs.cli" else ""
        if any(func.__module__ == module or func.__module__.startswith(module + ".")
               or re.search(rf"\b{re.escape(module)}\b", source) for module in modules):
            found.add(name)
    return found


def test_labs_help_in_the_handout_lists_only_commands_that_work_there(handout: Path):
    instructor_only = _instructor_only_commands()
    assert {"handout", "grade", "mutants", "bench"} <= instructor_only
    result = _sh(handout, "labs --help")
    assert result.returncode == 0, result.stderr
    listed = _listed_commands(result.stdout)
    assert {"test", "logs", "check-history", "proto"} <= set(listed), listed
    assert not instructor_only & set(listed), f"listed, but not in the handout: {listed}"
    for name in listed:
        sub = _sh(handout, f"labs {name} --help")
        assert sub.returncode == 0, f"labs {name} --help: {sub.stderr[-1000:]}"


def test_handout_ships_a_ci_workflow_with_timeouts_that_runs_make_targets(handout: Path):
    workflow = (handout / WORKFLOW).read_text()
    jobs = workflow.split("\njobs:\n", 1)[1]
    job_names = re.findall(r"^  (\w[\w-]*):\s*$", jobs, re.M)
    assert len(job_names) >= 2, job_names
    for job in re.split(r"^  \w[\w-]*:\s*$", jobs, flags=re.M)[1:]:
        assert re.search(r"^    timeout-minutes: \d+$", job, re.M), job
    runs = re.findall(r"^\s+- run: (.+)$", workflow, re.M)
    assert "make test_others" in runs
    parts = re.search(r"^\s+part: \[([\w, ]+)\]", workflow, re.M)
    assert parts and "make test_${{ matrix.part }}" in runs
    for part in parts.group(1).replace(" ", "").split(","):
        _check_make_target(handout, f"test_{part}", WORKFLOW)
    readme = (handout / "README.md").read_text(encoding="utf-8")
    assert WORKFLOW in readme  # documented where a student reads first
    ignored = (handout / ".gitignore").read_text().split()
    assert ".venv/" in ignored and "test-failures/" in ignored
