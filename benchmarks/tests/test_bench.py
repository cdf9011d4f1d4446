"""benchmarks.bench: the group registry, the table and the JSON file, and a quick run of group
"rpc"."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from benchmarks import bench


@pytest.fixture
def fake_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench, "GROUPS", {
        "alpha": lambda: {"alpha_ms": 12.5, "alpha_count": 3},
        "beta": lambda: {"beta_ratio": 2.0},
    })
    monkeypatch.setattr(bench, "TARGETS", {"beta_ratio": bench.Target("<=", 1.5)})


@pytest.mark.usefixtures("fake_groups")
def test_run_benchmarks_runs_every_group_and_writes_merged_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "bench" / "results.json"  # the directory does not exist yet
    assert bench.run_benchmarks(only=[], output=output) == 0
    assert json.loads(output.read_text()) == {"alpha_ms": 12.5, "alpha_count": 3, "beta_ratio": 2.0}
    table = capsys.readouterr().out
    assert "alpha_ms" in table and "beta_ratio" in table and "<= 1.5" in table


@pytest.mark.usefixtures("fake_groups")
def test_run_benchmarks_only_runs_the_named_groups(tmp_path: Path) -> None:
    output = tmp_path / "results.json"
    assert bench.run_benchmarks(only=["beta"], output=output) == 0
    assert json.loads(output.read_text()) == {"beta_ratio": 2.0}


@pytest.mark.usefixtures("fake_groups")
def test_unknown_group_returns_2_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "results.json"
    assert bench.run_benchmarks(only=["gamma"], output=output) == 2
    assert "'gamma'" in capsys.readouterr().err
    assert not output.exists()


def test_failing_group_returns_1_and_keeps_the_other_metrics(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken() -> dict[str, float]:
        raise RuntimeError("no leader")

    monkeypatch.setattr(bench, "GROUPS", {"ok": lambda: {"ok_s": 1.0}, "broken": broken})
    output = tmp_path / "results.json"
    assert bench.run_benchmarks(only=[], output=output) == 1
    assert json.loads(output.read_text()) == {"ok_s": 1.0}
    assert "no leader" in capsys.readouterr().err


def test_table_is_not_cut_at_80_columns_when_the_output_is_no_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    name = "a_metric_whose_name_is_long_enough_to_be_split_in_an_80_column_table_ms"
    monkeypatch.setattr(bench, "GROUPS", {"long": lambda: {name: 1234.5}})
    monkeypatch.setattr(bench, "TARGETS", {name: bench.Target("<", 2000)})
    monkeypatch.delenv("COLUMNS", raising=False)
    assert bench.run_benchmarks(only=[], output=tmp_path / "results.json") == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if name in line]
    assert len(rows) == 1 and 80 < len(rows[0]) <= 120
    assert rows[0].split() == ["│", name, "│", "1,234", "│", "<", "2000", "│"]


def test_target_comparisons() -> None:
    assert bench.Target("<=", 1.5).met_by(1.5) and not bench.Target("<=", 1.5).met_by(1.51)
    assert bench.Target(">", 10).met_by(11) and str(bench.Target(">", 10)) == "> 10"


def test_lazy_group_imports_its_module_only_when_run() -> None:
    group = bench.lazy("json", "dumps")
    with pytest.raises(TypeError):  # json.dumps() needs an argument: proof that it was called
        group()


def test_rpc_group_reports_latencies_ratio_and_throughput() -> None:
    metrics = bench.rpc_metrics(batches=2, calls_per_batch=40, threads=2,
                                concurrent_calls_per_thread=20, concurrent_rounds=1)
    assert set(metrics) == {"rpc_seq_us", "thread_roundtrip_us", "rpc_ratio", "rpc_ratio_min",
                            "rpc_ratio_max", "rpc_floor_us", "rpc_floor_ratio", "rpc_over_floor",
                            "rpc_concurrent2_per_s", "rpc_one_cpu"}
    assert all(value > 0 for name, value in metrics.items() if name != "rpc_one_cpu")
    # The ratio is the median of the pairs' ratios: between their min and max.
    assert metrics["rpc_ratio_min"] <= metrics["rpc_ratio"] <= metrics["rpc_ratio_max"]
    assert metrics["rpc_one_cpu"] in (0.0, 1.0)


def test_rpc_group_restores_the_cpu_affinity_it_pinned() -> None:
    """The group pins itself to one CPU (labrpc.affinity, tested in tests/framework) and gives
    the thread its mask back."""
    if not hasattr(os, "sched_getaffinity"):
        pytest.skip("no CPU affinity on this system")
    before = os.sched_getaffinity(0)
    bench.rpc_metrics(batches=1, calls_per_batch=10, threads=1, concurrent_calls_per_thread=5,
                      concurrent_rounds=1)
    assert os.sched_getaffinity(0) == before
    assert "rpc" in bench.GROUPS
