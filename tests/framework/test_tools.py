"""The students' debugging tools: `labs test` (labs/repeat.py), the `debug()` helper
(labdebug/__init__.py) and `labs logs` (labs/logview.py).

`labs test` runs against a scratch tree of tiny tests (one passes, one fails, one hangs, one
reports its network seed), so the runner itself is tested, not the labs."""

from __future__ import annotations

import io
import logging
import os
import random
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

import labdebug as debug_module
from labdebug import LINE, Topic, debug, enabled_for, parse_topics
from labrpc.network import SEED_ENV, Network
from labs.cli import main
from labs.console import PIPE_WIDTH, make_console
from labs.logview import parse_line, view_log
from labs.repeat import SelectionError, TestId, select_tests

REPO_ROOT = Path(__file__).resolve().parents[2]

# --- labs test ----------------------------------------------------------------------------------

SCRATCH_TESTS = textwrap.dedent('''
    import os, subprocess, sys, time
    from pathlib import Path

    def test_passes_9a():
        pass

    def test_fails_9a():
        print("the failing test's own output")
        assert 1 + 1 == 3

    def wait_forever():
        time.sleep(60)

    def test_hangs_9b():
        # A child of the run: the runner must end it with the run's process group.
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        seed = os.environ["LABRPC_SEED"]
        (Path(__file__).parent / f"child-{seed}.pid").write_text(str(child.pid))
        wait_forever()

    def test_seeded_9c():
        import labrpc
        net = labrpc.Network()
        draw = net._random.random()
        net.shutdown()
        assert False, f"seed={os.environ['LABRPC_SEED']} draw={draw!r}"
''')

TIMEOUT = 2.5   # for the hanging test: long enough for a cold pytest start on a busy machine


@pytest.fixture(scope="module")
def scratch_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("scratch")
    (root / "tests").mkdir()
    (root / "tests" / "test_scratch.py").write_text(SCRATCH_TESTS)
    return root


@pytest.fixture(scope="module")
def session(scratch_tree: Path) -> dict:
    """One `labs test` session over every scratch test: 2 runs each, 2 at a time, seeds 41, 42."""
    out = scratch_tree / "failures"
    stdout = io.StringIO()
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr(sys, "stdout", stdout)   # rich's Console writes to sys.stdout
        monkeypatch.setenv("COLUMNS", "160")         # wide enough for the table's file names
        status = main(["test", "9A", "test_hangs_9b", "test_seeded_9c", "-n", "2", "-p", "2",
                       "--timeout", str(TIMEOUT), "--seed", "41", "-o", str(out),
                       "--tests-dir", str(scratch_tree / "tests")])
    return {"status": status, "output": stdout.getvalue(), "out": out}


def test_a_failed_session_exits_1_and_keeps_only_failed_runs(session: dict) -> None:
    assert session["status"] == 1
    kept = sorted(p.name for p in session["out"].iterdir())
    assert kept == [
        "test_fails_9a-0-seed41.log", "test_fails_9a-1-seed42.log",
        "test_hangs_9b-0-seed41.log", "test_hangs_9b-1-seed42.log",
        "test_seeded_9c-0-seed41.log", "test_seeded_9c-1-seed42.log",
    ]


def test_the_table_counts_runs_and_names_the_kept_logs(session: dict) -> None:
    rows = {line.split()[1]: line for line in session["output"].splitlines()
            if re.match(r"^│ test_\w+_9[abc] ", line)}
    assert set(rows) == {"test_passes_9a", "test_fails_9a", "test_hangs_9b", "test_seeded_9c"}
    # Test | Failed | Total | Time | Failed runs
    assert re.search(r"│\s+0 │\s+2 │\s+\d+\.\d\d ± \d+\.\d\d │", rows["test_passes_9a"])
    assert re.search(r"│\s+2 │\s+2 │", rows["test_fails_9a"])
    assert re.search(r"│ 2 \(2 hung\) │\s+2 │\s+- │", rows["test_hangs_9b"])
    assert "test_fails_9a-0-seed41.log" in rows["test_fails_9a"]
    assert "6 of 8 runs failed" in session["output"]


def test_a_failed_run_log_has_its_output_and_how_to_reproduce_it(session: dict) -> None:
    log = (session["out"] / "test_fails_9a-1-seed42.log").read_text()
    assert "reproduce: labs test test_fails_9a --seed 42 -n 1" in log
    assert "the failing test's own output" in log
    assert "assert (1 + 1) == 3" in log
    assert "FAILED (exit status 1)" in log


def test_a_hung_run_is_stopped_with_a_thread_dump(session: dict) -> None:
    log = (session["out"] / "test_hangs_9b-0-seed41.log").read_text()
    assert re.search(r"^(Current thread|Thread) 0x[0-9a-f]+ \(most recent call first\):$", log,
                     re.M)
    assert re.search(r'File ".*test_scratch.py", line \d+ in wait_forever', log)
    main_thread = re.search(r"^  (0x[0-9a-f]+)  MainThread$", log, re.M)[1]   # the names
    assert re.search(rf"^(Current thread|Thread) {main_thread} ", log, re.M)   # match the stacks
    assert f"still running after --timeout {TIMEOUT:g} s" in log


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_hung_run_takes_its_children_with_it(session: dict, scratch_tree: Path) -> None:
    for seed in (41, 42):
        pid = int((scratch_tree / "tests" / f"child-{seed}.pid").read_text())
        stat = Path(f"/proc/{pid}/stat")
        # Gone, or a zombie waiting for a reaper: either way no longer running.
        assert not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] in "ZX"


def test_run_r_gets_network_seed_base_plus_r(session: dict) -> None:
    for run, seed in ((0, 41), (1, 42)):
        log = (session["out"] / f"test_seeded_9c-{run}-seed{seed}.log").read_text()
        draw = float(re.search(r"seed=\d+ draw=([0-9.e-]+)", log)[1])
        assert f"seed={seed} " in log
        assert draw == random.Random(seed).random()


def test_a_passing_session_exits_0(scratch_tree: Path, capsys: pytest.CaptureFixture) -> None:
    out = scratch_tree / "no-failures"
    status = main(["test", "test_passes_9a", "-n", "1", "-o", str(out),
                   "--tests-dir", str(scratch_tree / "tests")])
    assert status == 0
    assert "the run passed" in capsys.readouterr().out
    assert not out.exists()


def test_an_unknown_test_name_exits_2_with_a_suggestion(
        scratch_tree: Path, capsys: pytest.CaptureFixture) -> None:
    status = main(["test", "test_pases_9a", "--tests-dir", str(scratch_tree / "tests")])
    assert status == 2
    assert "did you mean test_passes_9a" in capsys.readouterr().out


def test_selection_expands_parts_and_labs_and_keeps_collection_order() -> None:
    tests = [TestId(name, f"tests/t.py::{name}") for name in (
        "test_a_2a", "test_b_2a", "test_c_2b", "test_backup_2b", "test_d_3a", "test_e_3b")]
    names = lambda words: [t.name for t in select_tests(tests, words)]  # noqa: E731
    assert names(["2A"]) == ["test_a_2a", "test_b_2a"]
    assert names(["2b", "test_backup_2b"]) == ["test_c_2b", "test_backup_2b"]
    assert names(["3"]) == ["test_d_3a", "test_e_3b"]
    assert names(["test_e_3b", "test_a_2a"]) == ["test_a_2a", "test_e_3b"]
    assert names(["tests/t.py::test_d_3a"]) == ["test_d_3a"]
    with pytest.raises(SelectionError, match="did you mean test_backup_2b"):
        select_tests(tests, ["test_backup"])   # names are exact, not substrings
    # A part the tests do not have: the message lists those they have, but not a framework
    # test's look-alike suffix (`_7s`: seven seconds).
    tests.append(TestId("test_fails_after_7s", "tests/framework/test_x.py::test_fails_after_7s"))
    tests.append(TestId("test_2a_only_passes_2a",
                        "tests/framework/test_x.py::test_2a_only_passes_2a"))
    assert names(["2A"]) == ["test_a_2a", "test_b_2a"]   # a framework test is in no part
    with pytest.raises(SelectionError, match=r"^no part 2C \(parts: 2A, 2B, 3A, 3B\)$"):
        select_tests(tests, ["2c"])
    with pytest.raises(SelectionError, match=r"^no lab 4 \(labs: 2, 3\)$"):
        select_tests(tests, ["4"])


def _collected(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q",
                           "-p", "no:cacheprovider", *args],
                          capture_output=True, text=True, cwd=REPO_ROOT, timeout=120)


def test_make_test_name_selects_by_the_tests_own_name_not_its_file() -> None:
    # `make test_<name>` runs pytest with `--name <name>`: unlike -k, a test whose file (here
    # test_raft_2a.py) or folder names <name> but whose own name does not is left out.
    files = ["tests/framework/test_proto.py", "tests/raft/test_raft_2a.py"]
    result = _collected(*files, "--name", "RAFT")
    assert result.returncode == 0, result.stdout + result.stderr
    ids = [line for line in result.stdout.splitlines() if "::" in line]
    assert ids and all("raft" in test_id.split("::")[-1] for test_id in ids), ids
    assert not any("test_raft_2a.py" in test_id for test_id in ids), ids
    missing = _collected(*files, "--name", "no_such_test_name")
    assert missing.returncode == pytest.ExitCode.USAGE_ERROR
    assert "no test name contains 'no_such_test_name'" in missing.stdout + missing.stderr


@pytest.mark.parametrize("lab, parts", [("raft", "2a 2b 2c 2d"), ("kvraft", "3a 3b")])
def test_make_test_part_runs_every_test_of_the_part(lab: str, parts: str) -> None:
    # `make test_2a` names the part's file (its workers then collect nothing else): it must still
    # run every test whose name has the part in it, wherever in the lab's folder that test is.
    collected = _collected(f"tests/{lab}")
    assert collected.returncode == 0, collected.stdout + collected.stderr
    every_test = [line for line in collected.stdout.splitlines() if "::" in line]
    for part in parts.split():
        dry_run = subprocess.run(["make", "-n", f"test_{part}"],
                                 capture_output=True, text=True, cwd=REPO_ROOT, timeout=60)
        lines = [line for line in dry_run.stdout.splitlines() if " -m pytest " in line]
        assert dry_run.returncode == 0 and len(lines) == 1, dry_run.stdout + dry_run.stderr
        command = lines[0].split()
        paths = [word for word in command if word.startswith("tests/")]
        name = command[command.index("--name") + 1].lower()
        assert paths and name == f"_{part}", command
        wanted = [t for t in every_test if name in t.split("::")[-1].lower()]
        run = [t for t in wanted if any(t == p or t.startswith(p.rstrip("/") + "/")
                                        or t.startswith(p + "::") for p in paths)]
        assert wanted and run == wanted, f"make test_{part} ({' '.join(paths)}) leaves out " \
            f"{sorted(set(wanted) - set(run))}"


def test_a_part_that_does_not_exist_exits_2_naming_the_parts(
        scratch_tree: Path, capsys: pytest.CaptureFixture) -> None:
    status = main(["test", "9D", "--tests-dir", str(scratch_tree / "tests")])
    assert status == 2
    assert "labs test: no part 9D (parts: 9A, 9B, 9C)" in capsys.readouterr().out


def test_output_to_no_terminal_is_wide_unless_columns_says_otherwise(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    assert make_console(file=io.StringIO()).width == PIPE_WIDTH == 120
    assert make_console(file=io.StringIO(), width=70).width == 70
    monkeypatch.setenv("FORCE_COLOR", "1")   # colours in a CI log: still no terminal's width
    assert make_console(file=io.StringIO()).width == PIPE_WIDTH
    monkeypatch.setenv("COLUMNS", "100")
    assert make_console(file=io.StringIO()).width == 100


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_a_terminal_keeps_its_own_width(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    master, slave = os.openpty()
    with os.fdopen(slave, "w") as terminal:
        try:
            assert make_console(file=terminal).width == Console(file=terminal).width
        finally:
            os.close(master)


def test_the_labs_test_table_is_not_cut_at_80_columns_in_a_log(
        scratch_tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.chdir(scratch_tree)   # the table's header names the output folder from here
    stdout = io.StringIO()
    monkeypatch.setattr(sys, "stdout", stdout)
    assert main(["test", "test_passes_9a", "-n", "1", "-o", "no-failures-either",
                 "--tests-dir", str(scratch_tree / "tests")]) == 0
    table = [line for line in stdout.getvalue().splitlines() if line and line[0] in "┏┃┡│└"]
    assert len(table) == 5 and 80 < len(table[0]) <= PIPE_WIDTH   # one line a row, none cut
    assert "┃ Failed runs: logs in no-failures-either/ ┃" in table[1]
    assert table[3].startswith("│ test_passes_9a │")


def test_network_takes_its_seed_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SEED_ENV, "1234")
    seeded, explicit = Network(), Network(seed=99)
    try:
        assert seeded._random.random() == random.Random(1234).random()
        assert explicit._random.random() == random.Random(99).random()  # an argument wins
    finally:
        seeded.shutdown()
        explicit.shutdown()


# --- debug() ------------------------------------------------------------------------------------

@pytest.fixture
def debug_output() -> io.StringIO:
    stream = io.StringIO()
    yield stream
    debug_module.configure()    # back to this process's LOG_LEVEL and stderr


def _call_from(module: str, topic: Topic, fmt: str, *args) -> None:
    """Call debug() from code whose module is `module` (as if written in raft/raft.py)."""
    exec("debug(topic, fmt, *args)", {"__name__": module, "debug": debug, "topic": topic,
                                       "fmt": fmt, "args": args})


def test_debug_writes_time_code_and_message(debug_output: io.StringIO) -> None:
    debug_module.configure("debug", stream=debug_output)
    debug(Topic.VOTE, "S%d granted vote to S%d", 1, 2)
    debug(Topic.LEADER, "S2 leader, no arguments: 100%")
    first, second = debug_output.getvalue().splitlines()
    assert re.fullmatch(r"\d{6} VOTE S1 granted vote to S2", first)
    assert re.fullmatch(r"\d{6} LEAD S2 leader, no arguments: 100%", second)
    assert LINE.match(first)["code"] == "VOTE"


def test_debug_follows_log_level_per_module(debug_output: io.StringIO) -> None:
    debug_module.configure("warn,raft=debug,raft.quiet=info", stream=debug_output)
    _call_from("raft.raft", Topic.COMMIT, "S%d commit index %d", 0, 5)
    _call_from("raft.quiet", Topic.COMMIT, "S0 not shown: longest prefix is info")
    _call_from("kvraft.server", Topic.CLIENT, "S0 not shown: kvraft is at warn")
    _call_from("rafting", Topic.TERM, "S0 not shown: a prefix ends at a dot")
    assert [line.split(" ", 1)[1] for line in debug_output.getvalue().splitlines()] == [
        "CMIT S0 commit index 5"]
    assert enabled_for("raft.raft") and not enabled_for("kvraft.server")


@pytest.mark.parametrize("spec", ["", "info", "raft=info", "nonsense=loud"])
def test_debug_is_off_unless_some_module_is_at_debug(spec: str, debug_output: io.StringIO) -> None:
    debug_module.configure(spec, stream=debug_output)
    _call_from("raft.raft", Topic.VOTE, "S0 never shown")
    assert debug_output.getvalue() == ""
    assert not debug_module._config.any_enabled      # the one check a disabled call makes


def test_trace_level_includes_debug(debug_output: io.StringIO) -> None:
    debug_module.configure("raft=trace", stream=debug_output)
    _call_from("raft.raft", Topic.APPEND, "S1 appended")
    assert "APND S1 appended" in debug_output.getvalue()


def test_debug_lines_are_debug_records_of_the_callers_logger(debug_output: io.StringIO) -> None:
    debug_module.configure("raft=debug", stream=debug_output)
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger("raft").addHandler(handler)
    try:
        _call_from("raft.raft", Topic.COMMIT, "S%d commit index %d", 1, 7)
    finally:
        logging.getLogger("raft").removeHandler(handler)
    (record,) = records
    assert (record.name, record.levelno, record.topic) == ("raft.raft", logging.DEBUG,
                                                           Topic.COMMIT)
    assert record.getMessage() == "S1 commit index 7"


def test_debug_looks_up_its_caller_once(debug_output: io.StringIO,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    # A frame look-up per debug() call, not a second walk of the stack by logging's
    # findCaller; the record still names the line that called debug().
    debug_module.configure("debug", stream=debug_output)
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    real_getframe = sys._getframe
    looked_up: list[int] = []

    def counting_getframe(depth: int = 0) -> Any:
        looked_up.append(depth)
        return real_getframe(depth + 1)

    logging.getLogger().addHandler(handler)
    monkeypatch.setattr(sys, "_getframe", counting_getframe)
    try:
        line = real_getframe(0).f_lineno + 1
        debug(Topic.VOTE, "S%d once", 3)
    finally:
        monkeypatch.undo()
        logging.getLogger().removeHandler(handler)
    assert looked_up == [1]
    (record,) = records
    assert (record.pathname, record.lineno, record.funcName) == (
        __file__, line, "test_debug_looks_up_its_caller_once")
    assert record.getMessage() == "S3 once" and record.name == __name__


def test_a_debug_line_written_through_logging_is_read_by_labs_logs(
        tmp_path: Path, debug_output: io.StringIO, capsys: pytest.CaptureFixture[str]) -> None:
    debug_module.configure("warn,raft=debug", stream=debug_output)
    _call_from("raft.raft", Topic.VOTE, "S%d granted vote to S%d in term %d", 2, 0, 3)
    logging.getLogger("tester").warning("a logging line between them")
    _call_from("raft.raft", Topic.LEADER, "S%d leader of term %d", 0, 3)
    path = tmp_path / "test.log"
    path.write_text(debug_output.getvalue())
    assert main(["logs", str(path), "-c", "3", "--width", "200"]) == 0
    header, *rows = capsys.readouterr().out.splitlines()
    vote, logged, lead = rows
    assert vote.index("VOTE S2 granted vote to S0 in term 3") == header.index("S2")
    assert re.fullmatch(r"\d{6} ", vote[:7])
    assert logged.split()[1:] == ["WARNING", "tester:", "a", "logging", "line", "between", "them"]
    assert lead.index("LEAD S0 leader of term 3") == header.index("S0")


def test_debug_sets_up_logging_in_a_program_that_did_not(tmp_path: Path) -> None:
    """A script of the student's, outside pytest: LOG_LEVEL alone makes the lines appear."""
    script = ("from labdebug import Topic, debug\n"
              "exec('debug(Topic.VOTE, \"S1 granted vote to S0\")',\n"
              "     {'__name__': 'raft.raft', 'debug': debug, 'Topic': Topic})\n"
              "exec('debug(Topic.VOTE, \"S1 not shown: kvraft is at warn\")',\n"
              "     {'__name__': 'kvraft.server', 'debug': debug, 'Topic': Topic})\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env={**os.environ, "LOG_LEVEL": "raft=debug"}, cwd=tmp_path,
                            timeout=60, check=True)
    (line,) = result.stderr.splitlines()
    assert LINE.match(line)["message"] == "S1 granted vote to S0"


def test_topics_are_named_by_code_or_name() -> None:
    assert parse_topics("vote, LEAD,Leader,apnd") == {Topic.VOTE, Topic.LEADER, Topic.APPEND}
    assert all(len(topic.value) == 4 for topic in Topic)
    with pytest.raises(ValueError, match="unknown topic 'VOTES'"):
        parse_topics("VOTES")


# --- labs logs ----------------------------------------------------------------------------------

LOG = """\
============================= test session starts ==============================
000100 TERM S2 election timeout: candidate for term 1
000101 VOTE S0 granted vote to S2 in term 1
000101 PERS S1 saved term 1, vote 2, log through 0
000102 LEAD S2 leader of term 1, log through 0
000150 TEST Test (2A): initial election, no peer named
000160 APND S1 appended 3 entries after 0 from S2 and this message is long enough to wrap twice
""" + ("E   AssertionError: a line that is not a debug line is printed in full, "
       "however long it is: 0123456789 0123456789 0123456789 end\n")


def _render(lines: list[str], **kwargs) -> list[str]:
    console = Console(file=io.StringIO(), width=80, color_system=None, highlight=False)
    view_log(lines, width=80, console=console, **kwargs)
    return console.file.getvalue().splitlines()


def _column_of(header: str, peer: int) -> int:
    return header.index(f"S{peer}")


def test_each_line_goes_to_its_peers_column() -> None:
    header, *rows = _render(LOG.splitlines(), columns=3)
    assert header.split() == ["S0", "S1", "S2"]
    vote = next(r for r in rows if "VOTE" in r)
    lead = next(r for r in rows if "LEAD" in r)
    assert vote.startswith("000101 ") and vote.index("VOTE") == _column_of(header, 0)
    assert lead.index("LEAD") == _column_of(header, 2)


def test_long_messages_wrap_inside_their_column() -> None:
    header, *rows = _render(LOG.splitlines(), columns=3)
    start = next(i for i, r in enumerate(rows) if "APND" in r)
    column = _column_of(header, 1)
    assert rows[start].index("APND") == column
    continuation = rows[start + 1]
    assert continuation[:column].strip() == "" and continuation[column] != " "
    assert all(len(r) <= 80 for r in rows[start:start + 3])


def test_unmatched_and_peerless_lines_are_printed_in_full() -> None:
    header, *rows = _render(LOG.splitlines(), columns=3)
    assert rows[0].startswith("=====")
    assert any(r.startswith("000150 TEST Test (2A)") for r in rows)
    text = "".join(rows)
    assert "0123456789 0123456789 0123456789 end" in text.replace("\n", "")


def test_a_peer_beyond_the_columns_is_printed_in_full_not_lost() -> None:
    header, *rows = _render(["000001 VOTE S7 granted vote to S1"], columns=3)
    assert rows == ["000001 VOTE S7 granted vote to S1"]


def test_columns_default_to_the_peers_in_the_log() -> None:
    header, *_ = _render(LOG.splitlines())
    assert header.split() == ["S0", "S1", "S2"]


def test_topic_filters_keep_other_lines(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "test.log"
    path.write_text(LOG)
    assert main(["logs", str(path), "-c", "3", "-i", "PERS,lead", "--width", "100"]) == 0
    dropped = capsys.readouterr().out
    assert "PERS" not in dropped and "LEAD" not in dropped and "VOTE S0" in dropped
    assert main(["logs", str(path), "-c", "3", "-j", "VOTE", "--width", "100"]) == 0
    kept = capsys.readouterr().out
    assert "VOTE S0" in kept and "TERM" not in kept and "APND" not in kept
    assert "test session starts" in kept and "AssertionError" in kept


def test_logs_reads_stdin(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("000005 VOTE S1 granted vote to S0\n"))
    assert main(["logs", "-", "-c", "2", "--width", "80"]) == 0
    header, row = capsys.readouterr().out.splitlines()
    assert row.index("VOTE") == header.index("S1")


def test_topics_have_colours() -> None:
    console = Console(file=io.StringIO(), width=80, color_system="standard", force_terminal=True)
    view_log(["000001 VOTE S0 a", "000002 ERRO S0 b"], columns=1, console=console)
    output = console.file.getvalue()
    assert "\x1b[2m000001 \x1b[0m\x1b[96mVOTE S0 a" in output     # dim time, bright cyan
    assert "\x1b[1;31mERRO S0 b" in output                           # bold red


def test_logs_rejects_an_unknown_topic(capsys: pytest.CaptureFixture) -> None:
    assert main(["logs", "-", "-i", "VOTES"]) == 2
    assert "unknown topic" in capsys.readouterr().err


def test_parse_line_reads_what_debug_writes(debug_output: io.StringIO) -> None:
    debug_module.configure("debug", stream=debug_output)
    debug(Topic.SNAPSHOT, "S%d snapshot through %d", 4, 120)
    event = parse_line(debug_output.getvalue().rstrip("\n"))
    assert (event.topic, event.peer) == (Topic.SNAPSHOT, 4)
    assert event.message == "S4 snapshot through 120"
    assert parse_line("   1234 INFO  tester: a logging line") .peer is None
    assert parse_line("12 XXXX S1 not a topic") is None
