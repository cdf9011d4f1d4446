"""The mutant corpus and `labs mutants` (instructor/mutants/): every mutant applies to the
reference as it is now and leaves modules that import; applying fails loudly; the runner builds
its kill matrix, tried on a scratch repository of tiny tests (no lab suite runs here)."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from instructor.mutants import (
    CORPUS_DIR,
    PARTS,
    ApplyError,
    MutantFormatError,
    apply_mutant,
    apply_to_text,
    load_corpus,
    parse_mutant,
)
from instructor.mutants.mutant import EDITABLE_FILES
from instructor.mutants.runner import copy_repository, kill_threshold, run_mutants, score_line
from labs.cli import build_parser
from labs.console import make_console

REPO_ROOT = Path(__file__).resolve().parents[2]
CORPUS = load_corpus()
MUTATED_MODULES = ("raft.raft", "kvraft.server", "kvraft.client")


def _reference_texts() -> dict[str, str]:
    return {f: (REPO_ROOT / f).read_text(encoding="utf-8") for f in EDITABLE_FILES}


# --- The corpus ---------------------------------------------------------------------------------

def test_the_corpus_is_large_and_covers_every_part():
    assert len(CORPUS) >= 35
    named = {part for mutant in CORPUS for part in mutant.parts}
    assert named == set(PARTS)
    for mutant in CORPUS:
        assert mutant.description and "\n" not in mutant.description
        assert mutant.parts and all(part in PARTS for part in mutant.parts)


def test_the_student_files_list_matches_the_handouts():
    from instructor.handout import STUDENT_FILES

    assert set(EDITABLE_FILES) == set(STUDENT_FILES)


@pytest.mark.parametrize("mutant", CORPUS, ids=[m.id for m in CORPUS])
def test_every_mutant_applies_to_the_reference_as_it_is(mutant):
    texts = _reference_texts()
    mutated = apply_to_text(mutant, texts)   # raises ApplyError naming the snippet
    assert set(mutated) == set(mutant.files)
    for file, text in mutated.items():
        assert text != texts[file]


# In the scratch copy: for each mutant, write its files, import the three modules afresh from
# there and list every global name a function reads that the module does not define (a
# replacement naming something the reference no longer has would only fail when run).
_IMPORT_CHECK = textwrap.dedent('''
    import builtins, dis, importlib, json, sys, types
    from pathlib import Path

    root = Path(sys.argv[1]).resolve()
    jobs = json.loads(Path(sys.argv[2]).read_text())
    modules = json.loads(sys.argv[3])
    originals = {}

    def code_objects(code):
        for const in code.co_consts:
            if isinstance(const, types.CodeType):
                yield const
                yield from code_objects(const)

    def undefined_globals(module):
        source = Path(module.__file__).read_text()
        top = compile(source, module.__file__, "exec")
        missing = set()
        for code in code_objects(top):
            for instruction in dis.get_instructions(code):
                if instruction.opname == "LOAD_GLOBAL":
                    name = instruction.argval
                    if name not in vars(module) and not hasattr(builtins, name):
                        missing.add(f"{code.co_name}: {name}")
        return sorted(missing)

    results = {}
    for job in jobs:
        for file, text in originals.items():
            (root / file).write_text(text)
        for file, text in job["files"].items():
            originals.setdefault(file, (root / file).read_text())
            (root / file).write_text(text)
        for name in modules:
            sys.modules.pop(name, None)
        importlib.invalidate_caches()
        problems = []
        try:
            for name in modules:
                module = importlib.import_module(name)
                if not Path(module.__file__).resolve().is_relative_to(root):
                    problems.append(f"{name} came from {module.__file__}, not the scratch copy")
                problems += [f"{name}: undefined global in {m}" for m in undefined_globals(module)]
        except Exception as exc:
            problems.append(f"import failed: {type(exc).__name__}: {exc}")
        results[job["id"]] = problems
    print(json.dumps(results))
''')


def test_every_mutated_tree_still_imports(tmp_path: Path):
    tree = tmp_path / "repo"
    copy_repository(REPO_ROOT, tree)
    texts = _reference_texts()
    jobs = [{"id": "(the reference)", "files": {}}]
    for mutant in CORPUS:
        try:
            jobs.append({"id": mutant.id, "files": apply_to_text(mutant, texts)})
        except ApplyError:
            pass   # test_every_mutant_applies_to_the_reference_as_it_is reports it
    (tmp_path / "jobs.json").write_text(json.dumps(jobs))
    (tmp_path / "check.py").write_text(_IMPORT_CHECK)
    env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONDONTWRITEBYTECODE": "1"}
    result = subprocess.run(
        [sys.executable, str(tmp_path / "check.py"), str(tree), str(tmp_path / "jobs.json"),
         json.dumps(MUTATED_MODULES)],
        cwd=tree, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    problems = {k: v for k, v in json.loads(result.stdout.splitlines()[-1]).items() if v}
    assert problems == {}
    assert len(json.loads(result.stdout.splitlines()[-1])) == len(jobs)


# --- Applying: loud failures ----------------------------------------------------------------------

def _mutant(edits: str, header: str = "description: a bug\nparts: 2A\n", name="m-1"):
    return parse_mutant(header + "\n" + edits, name, f"corpus/{name}.mutant")


ONE_EDIT = textwrap.dedent("""\
    @@ search raft/raft.py
        x = 1
    @@ replace
        x = 2
    @@ end
""")


def test_a_missing_snippet_names_the_mutant_the_file_and_the_snippet():
    mutant = _mutant(ONE_EDIT)
    with pytest.raises(ApplyError) as caught:
        apply_to_text(mutant, {"raft/raft.py": "def f():\n    y = 1\n"})
    message = str(caught.value)
    assert message.startswith("mutant m-1, edit 1 of 1: raft/raft.py: the search snippet is "
                              "not in the file")
    assert "corpus/m-1.mutant" in message and message.endswith("    |     x = 1")
    assert (caught.value.mutant, caught.value.file, caught.value.snippet) == (
        "m-1", "raft/raft.py", "    x = 1\n")


def test_an_ambiguous_snippet_says_where_it_occurs():
    mutant = _mutant(ONE_EDIT)
    with pytest.raises(ApplyError, match=r"^mutant m-1, edit 1 of 1: raft/raft\.py: the search "
                                         r"snippet occurs 2 times \(lines 2, 4\); it must occur "
                                         r"once"):
        apply_to_text(mutant, {"raft/raft.py": "def f():\n    x = 1\ndef g():\n    x = 1\n"})


def test_a_snippet_matches_whole_lines_only():
    mutant = _mutant(ONE_EDIT)
    # "    x = 1" inside "        x = 1" is not at a line's start: only one real match.
    text = "def f():\n    x = 1\n    if a:\n        x = 1\n"
    assert apply_to_text(mutant, {"raft/raft.py": text})["raft/raft.py"] == (
        "def f():\n    x = 2\n    if a:\n        x = 1\n")


def test_a_mutant_that_breaks_the_syntax_or_names_no_file_fails_to_apply():
    broken = _mutant(ONE_EDIT.replace("x = 2", "x = = 2"))
    with pytest.raises(ApplyError, match=r"^mutant m-1: raft/raft\.py: the mutated file does not "
                                         r"compile: line 2"):
        apply_to_text(broken, {"raft/raft.py": "def f():\n    x = 1\n"})
    with pytest.raises(ApplyError, match=r"^mutant m-1, edit 1 of 1: raft/raft\.py: no such file"):
        apply_to_text(_mutant(ONE_EDIT), {})


def test_nothing_is_written_unless_every_edit_applies(tmp_path: Path):
    (tmp_path / "raft").mkdir()
    (tmp_path / "raft/raft.py").write_text("def f():\n    x = 1\n")
    second = ONE_EDIT + ONE_EDIT.replace("x = 1", "z = 1")
    with pytest.raises(ApplyError, match="edit 2 of 2"):
        apply_mutant(_mutant(second), tmp_path)
    assert (tmp_path / "raft/raft.py").read_text() == "def f():\n    x = 1\n"
    assert apply_mutant(_mutant(ONE_EDIT), tmp_path) == ["raft/raft.py"]
    assert (tmp_path / "raft/raft.py").read_text() == "def f():\n    x = 2\n"


def test_edits_apply_in_order_and_replacements_may_delete():
    edits = ONE_EDIT + textwrap.dedent("""\
        # the second edit sees the first one's result
        @@ search raft/raft.py
            x = 2
            y = 3
        @@ replace
        @@ end
    """)
    mutant = _mutant(edits)
    assert [e.line for e in mutant.edits] == [4, 10]
    assert apply_to_text(mutant, {"raft/raft.py": "def f():\n    x = 1\n    y = 3\n    z = 4\n"}) \
        == {"raft/raft.py": "def f():\n    z = 4\n"}


@pytest.mark.parametrize("text, line, problem", [
    ("description: a\nparts: 2E\n\n" + ONE_EDIT, 1, "unknown part 2E"),
    ("description: a\nparts: 2A 2a\n\n" + ONE_EDIT, 1, "a part is listed twice"),
    ("parts: 2A\n\n" + ONE_EDIT, 1, "no description"),
    ("description: a\nparts: 2A\n", 1, "no edit"),
    ("description: a\nparts: 2A\ncolour: red\n", 3, "expected one of"),
    ("description: a\nparts: 2A\n" + ONE_EDIT.replace("raft/raft.py", "tests/raft/conftest.py"),
     3, "a mutant edits only student files"),
    ("description: a\nparts: 2A\n" + ONE_EDIT.replace("@@ end\n", ""), 3, "no '@@ end'"),
    ("description: a\nparts: 2A\n" + ONE_EDIT.replace("@@ replace\n", "").replace(
        "@@ end", "@@ nonsense"), 6, "expected '@@ replace'"),
    ("description: a\nparts: 2A\n" + ONE_EDIT + "parts: 2B\n", 8, "only blank lines and comments"),
    ("description: a\nparts: 2A\n" + ONE_EDIT.replace("x = 2", "x = 1"), 3, "the same as"),
])
def test_a_malformed_mutant_is_reported_with_file_and_line(text, line, problem):
    with pytest.raises(MutantFormatError, match=rf"^corpus/m\.mutant:{line}: .*{problem}"):
        parse_mutant(text, "m", "corpus/m.mutant")


def test_mutant_ids_are_lower_case_words():
    with pytest.raises(MutantFormatError, match="bad mutant id 'No_Such'"):
        parse_mutant("description: a\nparts: 2A\n", "No_Such")


# --- The command --------------------------------------------------------------------------------

def test_labs_mutants_is_registered_like_labs_grade():
    args = build_parser().parse_args(["mutants", "--only", "a", "--only", "b,c", "-n", "3"])
    assert args.func.__name__ == "mutants_command"
    assert (args.only, args.iterations, args.workers, args.list) == (["a", "b,c"], 3, 1, False)
    assert build_parser().parse_args(["grade", "x"]).func.__name__ == "grade_command"


def test_without_the_instructor_packages_the_cli_offers_no_instructor_command(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture):
    # As in the handout, which has neither instructor/ nor benchmarks/ (a None entry in
    # sys.modules makes the import fail as a missing module does).
    for module in ("instructor", "instructor.handout", "instructor.grading",
                   "instructor.grading.command", "instructor.mutants", "instructor.mutants.command",
                   "benchmarks", "benchmarks.bench"):
        monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    commands = set(re.findall(r"^    (\S+)", capsys.readouterr().out, re.M))
    assert {"test", "logs", "check-history", "timeline", "proto"} <= commands
    assert not commands & {"handout", "grade", "mutants", "bench"}


SCRATCH_CONFTEST = textwrap.dedent('''
    def pytest_addoption(parser):
        parser.addoption("--name", action="append", default=[])

    def pytest_collection_modifyitems(config, items):
        wanted = config.getoption("name")
        items[:] = [i for i in items if any(w in i.name for w in wanted)] if wanted else items
''')
SCRATCH_RAFT = "MODE = 'right'\nSPARE = 0\n"
SCRATCH_2A = textwrap.dedent('''
    from raft import raft

    def test_fine_2a():
        pass

    def test_mode_2a():
        assert raft.MODE != "wrong", "the wrong mode"
''')
SCRATCH_2B = textwrap.dedent('''
    from raft import raft

    def test_fine_2b():
        pass

    def test_mode_2b():
        assert raft.MODE not in ("wrong", "subtle"), "a subtle mode"
''')
SCRATCH_MUTANTS = {
    "caught-early": ("2A 2B", "MODE = 'right'", "MODE = 'wrong'"),
    "caught-late": ("2A 2B", "MODE = 'right'", "MODE = 'subtle'"),
    "survivor": ("2A", "SPARE = 0", "SPARE = 1"),
    "stale-anchor": ("2A", "GONE = 1", "GONE = 2"),
}


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """`labs mutants` over a scratch repository whose "suites" are four tiny tests."""
    root = tmp_path_factory.mktemp("mutants")
    repo, corpus, output = root / "repo", root / "corpus", root / "results"
    files = {"raft/raft.py": SCRATCH_RAFT, "raft/__init__.py": "", "tests/conftest.py":
             SCRATCH_CONFTEST, "tests/raft/test_tiny_2a.py": SCRATCH_2A,
             "tests/raft/test_tiny_2b.py": SCRATCH_2B}
    for relative, text in files.items():
        (repo / relative).parent.mkdir(parents=True, exist_ok=True)
        (repo / relative).write_text(text)
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    corpus.mkdir()
    for name, (parts, search, replace) in SCRATCH_MUTANTS.items():
        (corpus / f"{name}.mutant").write_text(
            f"description: {name}\nparts: {parts}\n\n@@ search raft/raft.py\n{search}\n"
            f"@@ replace\n{replace}\n@@ end\n")
    stdout = io.StringIO()
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("COLUMNS", "160")
        from labs.console import make_console
        console = make_console(file=stdout, highlight=False)
        status = run_mutants([], iterations=2, workers=2, output=output, timeout=60, seed=5,
                             root=repo, corpus_dir=corpus, console=console)
    report = json.loads((output / "matrix.json").read_text())
    return {"status": status, "output": stdout.getvalue(), "dir": output, "report": report,
            "mutants": {m["id"]: m for m in report["mutants"]}}


def test_the_session_exits_1_when_a_mutant_survives_or_does_not_apply(session: dict):
    assert session["status"] == 1
    assert session["report"]["runs"] == 2 and session["report"]["seed"] == 5


def test_a_mutant_is_killed_by_the_first_part_that_fails(session: dict):
    early, late = session["mutants"]["caught-early"], session["mutants"]["caught-late"]
    assert early["verdict"] == late["verdict"] == "killed"
    assert early["matrix"]["2A"]["killed"] == early["matrix"]["2A"]["ran"] == 2
    assert early["matrix"]["2B"]["ran"] == 0           # never reached: 2A killed it
    assert early["first_failures"] == {"test_mode_2a": 2}
    assert (late["matrix"]["2A"]["killed"], late["matrix"]["2A"]["ran"]) == (0, 2)
    assert (late["matrix"]["2B"]["killed"], late["matrix"]["2B"]["ran"]) == (2, 2)
    assert late["first_failures"] == {"test_mode_2b": 2}
    assert {d["seed"] for d in late["run_details"]} == {5, 6}
    detail = late["run_details"][0]
    assert detail["killed_by"] == "2B" and "a subtle mode" in detail["why"]
    log = (session["dir"] / detail["log"]).read_text()
    assert "--name _2b" in log and "labs mutants --only caught-late" in log


def test_survivors_and_stale_anchors_are_told_apart(session: dict):
    survivor, stale = session["mutants"]["survivor"], session["mutants"]["stale-anchor"]
    assert (survivor["verdict"], survivor["killed"], survivor["runs"]) == ("survived", 0, 2)
    assert (stale["verdict"], stale["applied"], stale["runs"]) == ("not applied", False, 0)
    assert "the search snippet is not in the file" in stale["error"]
    assert session["report"]["score"] == {
        "mutants": 4, "killed": 2, "sometimes": 0, "survived": 1, "not_applied": 1,
        "not_run": 0, "incomplete": 0, "threshold": 2, "runs": 2}


def test_the_matrix_is_printed_and_written_as_markdown(session: dict):
    output = session["output"]
    assert "NOT APPLIED mutant stale-anchor" in output
    assert "SURVIVED  survivor run 0" in output
    line = "score: 2 of 3 mutants killed in ≥ 2 of 2 runs; 0 killed in fewer; 1 never killed; " \
           "1 did not apply"
    assert line in output
    markdown = (session["dir"] / "matrix.md").read_text()
    assert f"**{line}**" in markdown
    assert "| `caught-late` | 0/2 | 2/2 | 2/2 | test_mode_2b (2) |" in markdown
    assert "| `caught-early` | 2/2 | – | 2/2 | test_mode_2a (2) |" in markdown
    assert ("| `stale-anchor` |  |  | **not applied** | did not apply: raft/raft.py: the snippet "
            "of edit 1 is not in the file |  |") in markdown


def test_later_runs_try_the_test_that_killed_the_last_run_first(session: dict, tmp_path: Path):
    repo = session["dir"].parent / "repo"
    corpus = session["dir"].parent / "corpus"
    output = tmp_path / "results"
    console = make_console(file=io.StringIO(), highlight=False)
    status = run_mutants(["caught-late"], iterations=3, workers=1, output=output, timeout=60,
                         seed=7, root=repo, corpus_dir=corpus, console=console)
    late = json.loads((output / "matrix.json").read_text())["mutants"][0]
    assert status == 0 and late["killed"] == 3
    assert (late["matrix"]["2B"]["killed"], late["matrix"]["2B"]["ran"]) == (3, 3)
    assert late["first_failures"] == {"test_mode_2b": 3}
    first, *later = late["run_details"]
    assert "--name _2b" in (output / first["log"]).read_text()
    for detail in later:   # the killer alone, by its node id; the rest of 2B never ran
        assert ".2b.first-" in detail["log"]
        header = (output / detail["log"]).read_text().split("\n\n", 1)[0]
        assert "tests/raft/test_tiny_2b.py::test_mode_2b" in header and "--name" not in header


def test_an_interrupted_session_judges_each_mutant_on_the_runs_that_finished():
    from instructor.mutants.runner import MutantResult, MutantRun, PartRun, _score, score_line

    def result(id_: str, outcomes: str) -> MutantResult:   # "k": killed run, "s": survived
        mutant = parse_mutant(f"description: {id_}\nparts: 2A\n\n@@ search raft/raft.py\nA\n"
                              f"@@ replace\nB\n@@ end\n", id_)
        runs = [MutantRun(n, n, [PartRun("2A", o == "s", 1.0, "test_x_2a" if o == "k" else "")])
                for n, o in enumerate(outcomes)]
        return MutantResult(mutant, runs=runs)

    results = [result("all-four", "kkkk"), result("one-miss", "kkks"), result("none", ""),
               result("full", "kkkkkkkkks")]
    score = _score(results, 10)
    assert (score["killed"], score["sometimes"], score["not_run"], score["incomplete"]) == \
        (2, 1, 1, 2)
    assert score_line(score).endswith("; 2 finished fewer than 10 runs (judged on those, 90% of "
                                      "them); 1 not run (interrupted)")


def test_the_kill_threshold_is_nine_of_ten():
    assert [kill_threshold(n) for n in (1, 2, 3, 10, 20)] == [1, 2, 3, 9, 18]
    assert score_line({"mutants": 3, "killed": 1, "sometimes": 1, "survived": 1,
                       "not_applied": 0, "not_run": 0, "incomplete": 0, "threshold": 9,
                       "runs": 10}) == (
        "score: 1 of 3 mutants killed in ≥ 9 of 10 runs; 1 killed in fewer; 1 never killed")


def test_the_corpus_directory_is_the_default():
    assert CORPUS_DIR == REPO_ROOT / "instructor" / "mutants" / "corpus"
