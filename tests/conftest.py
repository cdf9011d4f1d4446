"""Shared pytest set-up: LOG_LEVEL logging, `--name` selection (what `make test_<name>` uses),
and the lab harness plugin (tests/lab_harness.py) that the Raft and KV suites build on."""

from __future__ import annotations

import pytest

from labdebug.logsetup import configure_logging

# The lab suites' common fixtures and hooks: the watchdog, teardown and thread-leak checks.
pytest_plugins = ("lab_harness",)


def pytest_addoption(parser: pytest.Parser) -> None:
    # Not pytest's -k: -k also matches the names of a test's folder, file and class and of its
    # markers, so `-k raft` would run every test under tests/raft/ and `-k timeout` every lab
    # test (each carries its watchdog's `timeout` marker), where `make test_<name>` promises
    # the tests whose own name contains <name>. The selection itself is pytest's: the tests
    # left out are reported through pytest_deselected, as -k's are.
    parser.addoption(
        "--name", action="append", default=[], metavar="SUBSTRING",
        help="run only the tests whose name contains SUBSTRING (case-insensitive; repeatable)",
    )


def pytest_configure(config: pytest.Config) -> None:
    try:
        configure_logging()
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    wanted = [w.lower() for w in config.getoption("name")]
    if not wanted:
        return
    selected, deselected = [], []
    for item in items:
        name = getattr(item, "originalname", item.name).lower()
        (selected if any(w in name for w in wanted) else deselected).append(item)
    if not selected:
        raise pytest.UsageError(f"no test name contains {' or '.join(map(repr, wanted))}")
    config.hook.pytest_deselected(items=deselected)
    items[:] = selected
