"""The timeline of a lab test run (labs/timeline): recording, the page, `labs timeline LOG`, the
failure message that names the page, and the page in a real browser (Chromium)."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import pytest

import labrpc
from fixturepb import Handler2Args, Handler2Reply, JunkClient, JunkService
from labs.cli import main as labs_main
from labs.timeline import Timeline, build_model, read_events, render_html
from labs.timeline.recorder import EventsError
from labs.timeline.render import MAX_PAGE_BYTES, PARTITION_SETTLE

REPO = Path(__file__).resolve().parents[2]
PAGE_LIMIT = 5_000_000          # the target for the page of a 120 s test
BROWSER_LOAD_LIMIT_MS = 2000    # ... and for opening it


class _Echo:
    def handler2(self, args: Handler2Args) -> Handler2Reply:
        return Handler2Reply(x=f"handler2-{args.x}")


def _roundtrip(timeline: Timeline, tmp_path: Path) -> tuple[dict, list[list]]:
    return read_events(timeline.write_events(tmp_path / "run.timeline.jsonl", test="t"))


# --- recording ------------------------------------------------------------------------------------

def test_labrpc_records_calls_drops_and_lost_replies(tmp_path: Path) -> None:
    """On an unreliable network, every call has its start and end; a lost request has a drop
    and no handler run; a lost reply has a handler run and ends in Timeout."""
    timeline = Timeline()
    net = labrpc.Network(seed=7)
    net.set_trace(timeline.events)
    server = labrpc.Server("s")
    server.add_service(JunkService, _Echo())
    net.add_server(server)
    end = net.create_client("c-to-s")
    net.connect(end, "s")
    net.enable(end, True)
    timeline.end("c-to-s", "C0", 0)
    net.set_reliable(False)
    client = JunkClient(end)
    outcomes = Counter()
    for x in range(300):
        try:
            client.handler2(Handler2Args(x=x))
            outcomes["ok"] += 1
        except labrpc.Timeout:
            outcomes["Timeout"] += 1
    net.enable(end, False)
    assert net.shutdown() == []
    timeline.close()
    _, events = _roundtrip(timeline, tmp_path)
    kinds = Counter(e[0] for e in events)
    assert kinds["call"] == 300
    assert kinds["done"] == 300
    assert [e[2:] for e in events if e[0] == "net"] == [["reliable", False]]
    assert [e[2:] for e in events if e[0] == "enable"] == [["c-to-s", True], ["c-to-s", False]]
    done = Counter(e[3] for e in events if e[0] == "done")
    assert done == outcomes
    dropped = {e[2] for e in events if e[0] == "drop"}
    ran = {e[2] for e in events if e[0] == "run"}
    assert dropped and not dropped & ran, "a lost request never reaches the handler"
    assert len(dropped) + len(ran) == 300
    model = build_model({"peers": 1}, events)
    by_outcome = Counter(call[5] for call in model["rpcs"])
    # 0 delivered, 1 request lost, 2 reply lost (labs/timeline/render.py)
    assert by_outcome[1] == len(dropped)
    assert by_outcome[2] == outcomes["Timeout"] - len(dropped) > 0
    assert by_outcome[0] == outcomes["ok"]


@pytest.fixture
def scripted_config(monkeypatch: pytest.MonkeyPatch):
    """Raft testers (tests/raft/raft_harness.py) whose peers are tests/framework/scripted_raft.py:
    the tester's own behaviour, whatever state raft/raft.py is in."""
    monkeypatch.syspath_prepend(str(REPO / "tests" / "raft"))
    monkeypatch.syspath_prepend(str(REPO / "tests"))
    import raft_harness
    import scripted_raft

    monkeypatch.setattr(raft_harness, "Raft", scripted_raft.ScriptedRaft)
    monkeypatch.setattr(raft_harness, "Node", scripted_raft.ScriptedNode)
    configs = []

    def make(n: int):
        configs.append(raft_harness.Config(n, report=lambda line: None))
        return configs[-1]

    yield make
    for cfg in configs:
        assert cfg.cleanup(check_time_limit=False) == []


def test_recorder_scripted_raft_scenario(scripted_config, tmp_path: Path) -> None:
    """What the tester does and sees (a leader, an apply, a partition, an unreliable period with
    long reordering, a crash and a restart) is in the events and in what the page draws."""
    cfg = scripted_config(3)
    assert cfg.start(0, 101) == (1, 1)
    cfg.wait(1, 1)
    # (a pause after each step: link changes closer than PARTITION_SETTLE are one change)
    for step in (lambda: cfg.disconnect(2), lambda: cfg.set_unreliable(True),
                 lambda: cfg.set_long_reordering(True), lambda: cfg.crash1(1),
                 lambda: cfg.start1(1), lambda: cfg.connect(1),
                 lambda: cfg.set_unreliable(False)):
        step()
        time.sleep(5 * PARTITION_SETTLE)
    time.sleep(0.3)  # the leadership monitor samples every 50 ms
    meta, events = _roundtrip(cfg.timeline, tmp_path)
    assert meta["peers"] == 3
    roles = {tuple(e[2:]) for e in events if e[0] == "role"}
    assert roles == {(0, 1, True), (1, 1, False), (2, 1, False)}
    assert [e[2] for e in events if e[0] == "crash"] == [1]
    assert sorted(e[2] for e in events if e[0] == "start") == [0, 1, 1, 2]
    assert [e[2:] for e in events if e[0] == "apply"] == [[0, 1]]
    model = build_model(meta, events)
    assert [p[3] for p in model["partitions"]] == [
        "all connected", "partition 0 1 | 2", "partition 0 | 2",  # 1 crashed
        "partition 0 | 1 | 2",  # 1 restarted, disconnected
        "partition 0 1 | 2"]
    settings = [n[1:] for n in model["net"] if n[1] != "long_delays"]
    assert settings == [["reliable", True], ["reliable", False], ["long_reordering", True],
                        ["reliable", True]]
    assert [life[1:] for life in model["life"]][-2:] == [[1, "crash"], [1, "start"]]


# --- the page's size ------------------------------------------------------------------------------

def synthetic_worst_case(seconds: float = 120.0, peers: int = 7, clerks: int = 40,
                         seed: int = 1) -> tuple[dict, list[list]]:
    """A 120 s run far denser than any lab test: RPCs at 600/s, a debug line every 0.5 ms,
    4000 applies per peer, thousands of clerk operations with long values."""
    rng = random.Random(seed)
    events: list[list] = [["net", 0.0, "reliable", True]]
    for i in range(peers):
        for j in range(peers):
            events.append(["end", 0.0, f"e{i}-{j}", i, j])
        events.append(["start", 0.0, i])
    for c in range(clerks):
        for j in range(peers):
            events.append(["end", 0.0, f"c{c}-{j}", f"C{c}", j])
    cid = 0
    t = 0.0
    while t < seconds:
        t += rng.expovariate(600)
        i, j = rng.randrange(peers), rng.randrange(peers)
        cid += 1
        events.append(["call", t, cid, f"e{i}-{j}", rng.choice(["AppendEntries", "RequestVote"]),
                       f"s{j}"])
        if rng.random() < 0.1:
            events.append(["drop", t, cid])
            events.append(["done", t + 0.03, cid, "Timeout"])
        else:
            events.append(["run", t + 0.005, cid])
            events.append(["done", t + 0.01, cid, "ok" if rng.random() < 0.9 else "Timeout"])
    for k in range(int(seconds * 10)):
        events.append(["role", k / 10, k % peers, k // 20, k % 3 == 0])
        events.append(["enable", k / 10, f"e{k % peers}-{(k + 1) % peers}", k % 2 == 0])
        events.append(["net", k / 10, "reliable", k % 7 != 0])
    for i in range(peers):
        for k in range(4000):
            events.append(["apply", k * seconds / 4000, i, k])
        events.append(["snapshot", 5.0, i, 100])
    for k in range(int(seconds * 2000)):
        peer = rng.randrange(peers)
        events.append(["debug", k / 2000, f"{k // 2:06d} APND S{peer} appended "
                       + "x" * rng.randrange(200)])
    for k in range(30000):
        start = rng.uniform(0, seconds)
        events.append(["op", start, k % clerks, "append", str(k % 10), "v" * 500, None,
                       start + rng.uniform(0, 2)])
    events.sort(key=lambda e: e[1])
    return {"timeline": 1, "peers": peers, "test": "synthetic_worst_case",
            "failure": "E   synthetic\n" * 5000}, events


def test_page_of_a_dense_120s_run_stays_under_5mb() -> None:
    meta, events = synthetic_worst_case()
    t0 = time.monotonic()
    html = render_html(build_model(meta, events))
    seconds = time.monotonic() - t0
    size = len(html.encode("utf-8"))
    assert size <= PAGE_LIMIT, f"{size} bytes"
    model = json.loads(re.search(r'id="data">(.*?)</script>', html, re.S)[1].replace("<\\/", "</"))
    assert model["omitted"], "the page must say what it thinned out"
    assert model["rpc_bins"] and not model["rpcs"], "RPCs this dense are counted per bin"
    assert model["peers"] == 7 and len(model["clerks"]) == 40
    assert seconds < 60


def test_budget_is_a_guarantee() -> None:
    """A smaller budget is met too: the dense parts are thinned until the data fits."""
    meta, events = synthetic_worst_case(seconds=30)
    for budget in (1_000_000, 200_000):
        model = build_model(meta, events, max_bytes=budget)
        assert len(json.dumps(model, separators=(",", ":"))) <= budget


# --- labs timeline LOG ---------------------------------------------------------------------------

def _write_events(path: Path) -> None:
    rows = [{"timeline": 1, "peers": 3, "test": "test_demo_2a", "debug_start": 0.5},
            ["end", 0.0, "a", 0, 1], ["end", 0.0, "b", 1, 0],
            ["enable", 0.01, "a", True], ["enable", 0.01, "b", True],
            ["role", 0.1, 0, 1, True], ["call", 0.2, 1, "a", "AppendEntries", "raft-1"],
            ["run", 0.21, 1], ["done", 0.22, 1, "ok"], ["enable", 1.0, "a", False]]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_labs_timeline_renders_a_kept_log(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The page holds the events the log names (looked for beside the log when the named
    path is gone) and the log's debug lines, on the events' clock."""
    _write_events(tmp_path / "test_demo_2a-20260101-000000.timeline.jsonl")
    log = tmp_path / "test_demo_2a-0-seed5.log"
    log.write_text("# labs test: test_demo_2a, run 0, seed 5\n"
                   "000600 VOTE S2 granted vote to S0 in term 1\n"
                   "E       lab_harness.TesterFailure: expected one leader, got none\n"
                   "timeline events: /elsewhere/test_demo_2a-20260101-000000.timeline.jsonl\n")
    assert labs_main(["timeline", str(log)]) == 0
    page = tmp_path / "test_demo_2a-0-seed5.timeline.html"
    assert f"timeline: {page}" in capsys.readouterr().out
    model = json.loads(re.search(r'id="data">(.*?)</script>', page.read_text(), re.S)[1])
    assert model["peers"] == 3
    assert model["debug"] == [[1.1, 2, "VOTE", "S2 granted vote to S0 in term 1"]]
    assert "expected one leader" in model["failure"]
    assert model["partitions"][-1][3] == "partition 0 | 1 | 2"
    assert model["rpcs"] == [[0.2, 0.22, 0, 1, 0, 0, 0.21]]


def test_labs_timeline_errors_name_the_problem(tmp_path: Path,
                                               capsys: pytest.CaptureFixture) -> None:
    assert labs_main(["timeline", str(tmp_path / "missing.log")]) == 2
    assert "missing.log: no such file" in capsys.readouterr().err
    events = tmp_path / "bad.timeline.jsonl"
    events.write_text('{"timeline": 1}\n["end", 0.0]\nnot json\n["x", 1]\n')
    log = tmp_path / "bad.log"
    log.write_text(f"timeline events: {events}\n")
    assert labs_main(["timeline", str(log)]) == 2
    assert "bad.timeline.jsonl: line 3: not JSON" in capsys.readouterr().err
    with pytest.raises(EventsError, match="line 1: not a timeline events file"):
        (tmp_path / "other.jsonl").write_text('{"a": 1}\n')
        read_events(tmp_path / "other.jsonl")


# --- a failing lab test names its page ----------------------------------------------------------

_FAILING_TESTS = '''
def test_fails_after_a_partition_2a(make_config):
    cfg = make_config(3)
    cfg.begin("Test (2A): two leaders, on purpose")
    cfg.disconnect(2)
    cfg.set_unreliable(True)
    cfg.sleep(5)  # the monitor finds the two leaders of term 1 within 50 ms

def test_fails_in_teardown_2a(make_config):
    cfg = make_config(3)
    cfg.record_failure("failing on purpose, found off the test thread")
'''

_CONFTEST = '''
import sys
sys.path[:0] = [{tests!r}, {raft!r}, {framework!r}]
pytest_plugins = ("lab_harness",)
import pytest
import raft_harness
import scripted_raft

scripted_raft.LEADERS = {{0, 1}}  # a broken Raft: two leaders in term 1
raft_harness.Raft = scripted_raft.ScriptedRaft
raft_harness.Node = scripted_raft.ScriptedNode

@pytest.fixture
def make_config(lab_clusters):
    def make(servers):
        return lab_clusters.track(raft_harness.Config(servers, report=lab_clusters.report))
    return make
'''


def test_failed_lab_test_names_its_timeline_page(tmp_path: Path) -> None:
    """A lab test that fails (in its body, or at teardown from a background failure) leaves a
    page and its events in test-failures/ under the rootdir, and the failure names both."""
    (tmp_path / "conftest.py").write_text(_CONFTEST.format(
        tests=str(REPO / "tests"), raft=str(REPO / "tests" / "raft"),
        framework=str(REPO / "tests" / "framework")))
    (tmp_path / "test_on_purpose.py").write_text(_FAILING_TESTS)
    env = {k: v for k, v in os.environ.items() if k != "LABS_TIMELINE"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--rootdir",
         str(tmp_path), "-c", os.devnull, "test_on_purpose.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env)
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "term 1 has 2 (>1) leaders: servers 0 and 1" in out, out
    assert re.search(r"1 failed, 1 passed, (.* )?1 error", out), out
    pages = re.findall(r"^(?:E\s+)?timeline: (\S+\.timeline\.html)$", out, re.M)
    events = re.findall(r"^(?:E\s+)?timeline events: (\S+\.timeline\.jsonl)$", out, re.M)
    # A page may be named twice: with CI set, pytest's short summary repeats whole messages.
    # pytest prints the teardown error first: take each test's files by name.
    pages, events = sorted(set(pages)), sorted(set(events))
    assert len(pages) == 2 and len(events) == 2, out
    # named relative to the working directory (the run's: tmp_path)
    pages = [tmp_path / page for page in pages]
    events = [tmp_path / name for name in events]
    for page, name in zip(pages, ("test_fails_after_a_partition_2a", "test_fails_in_teardown_2a"),
                          strict=True):
        assert page.parent == tmp_path / "test-failures"
        assert page.name.startswith(name) and page.is_file()
    assert "two leaders, on purpose" in pages[0].read_text()
    meta, evs = read_events(events[0])
    assert "term 1 has 2 (>1) leaders" in meta["failure"]
    model = build_model(meta, evs)
    assert model["partitions"][-1][3] == "partition 0 1 | 2"
    assert ["reliable", False] in [n[1:] for n in model["net"]]
    assert "failing on purpose, found off the test thread" in read_events(events[1])[0]["failure"]


def test_recording_off(scripted_config, monkeypatch: pytest.MonkeyPatch) -> None:
    """LABS_TIMELINE=off (how the cost of recording is measured): no timeline, no trace."""
    monkeypatch.setenv("LABS_TIMELINE", "off")
    cfg = scripted_config(3)
    assert cfg.timeline is None and cfg.net._trace is None
    assert cfg.write_timeline("x") == []


# --- in a real browser --------------------------------------------------------------------------

def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("CI"):
        pytest.fail("chromium is not installed; .ci/run installs it (apt-get install chromium) "
                    "before the tests, and CI must run the browser test")
    pytest.skip("chromium is not installed (apt-get install chromium): the timeline page's "
                "browser test cannot run here")


def _open_in_chromium(page: Path) -> tuple[str, str]:
    """The DOM after the page's scripts ran, and Chromium's log (console messages)."""
    with tempfile.TemporaryDirectory(prefix="timeline-chromium-") as profile:
        result = subprocess.run(
            [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
             "--window-size=1400,1000", "--dump-dom", page.as_uri()],
            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout, result.stderr


def _console_errors(log: str) -> list[str]:
    return [line for line in log.splitlines() if "CONSOLE" in line or "Uncaught" in line]


def test_page_in_a_real_browser(scripted_config, tmp_path: Path) -> None:
    """Chromium opens the page of a run without a console error; it shows a lane per peer and
    the faults the tester injected."""
    cfg = scripted_config(5)
    cfg.start(0, 7)
    for step in (lambda: cfg.disconnect(4), lambda: cfg.set_unreliable(True),
                 lambda: cfg.set_long_reordering(True), lambda: cfg.crash1(3)):
        step()
        time.sleep(5 * PARTITION_SETTLE)
    time.sleep(0.2)
    meta, events = _roundtrip(cfg.timeline, tmp_path)
    # RPCs of every outcome, between the peers' lanes
    events += [["end", 0.01, "x01", 0, 1], ["enable", 0.01, "x01", True],
               ["call", 0.02, 1, "x01", "AppendEntries", "raft-1"],
               ["run", 0.03, 1], ["done", 0.04, 1, "ok"],
               ["call", 0.05, 2, "x01", "AppendEntries", "raft-1"], ["drop", 0.05, 2],
               ["done", 0.07, 2, "Timeout"],
               ["call", 0.08, 3, "x01", "RequestVote", "raft-1"], ["run", 0.09, 3],
               ["done", 0.1, 3, "Timeout"], ["lost", 0.11, 0, 2, "RequestVote"],
               ["debug", 0.12, "000100 VOTE S2 granted vote to S0 in term 1"]]
    page = tmp_path / "run.timeline.html"
    page.write_text(render_html(build_model(meta, events)))
    dom, log = _open_in_chromium(page)
    assert 'data-rendered="ok"' in dom, dom[:2000]
    assert "data-errors" not in dom
    assert _console_errors(log) == []
    lanes = re.findall(r'class="lane peer-lane" data-peer="(\d+)"', dom)
    assert lanes == ["0", "1", "2", "3", "4"]
    faults = re.findall(r'<li class="fault fault-(\w+)">([^<]*)</li>', dom)
    partitions = [text.split(": ", 1)[1] for kind, text in faults if kind == "partition"]
    assert partitions == ["partition 0 1 2 3 | 4", "partition 0 1 2 | 4"], faults
    assert any(kind == "network" and text.startswith("unreliable") for kind, text in faults)
    assert any(kind == "network" and text.startswith("long reordering") for kind, text in faults)
    assert any(kind == "life" and text.endswith("S3 crashed") for kind, text in faults)
    assert "S2 granted vote to S0 in term 1" in dom


def test_worst_case_page_opens_within_2s_in_a_browser(tmp_path: Path) -> None:
    meta, events = synthetic_worst_case()
    page = tmp_path / "worst.timeline.html"
    page.write_text(render_html(build_model(meta, events)))
    assert page.stat().st_size <= PAGE_LIMIT
    dom, log = _open_in_chromium(page)
    assert 'data-rendered="ok"' in dom
    assert _console_errors(log) == []
    load_ms = int(re.search(r'data-load-ms="(\d+)"', dom)[1])
    assert load_ms < BROWSER_LOAD_LIMIT_MS, f"{load_ms} ms from navigation to drawn"
    assert len(re.findall(r'class="lane peer-lane"', dom)) == 7
    assert MAX_PAGE_BYTES < PAGE_LIMIT
