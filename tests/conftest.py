"""Shared pytest set-up: LOG_LEVEL logging and `--name` selection (what `make test_<name>` uses)."""

from __future__ import annotations

import pytest

from labs.logsetup import configure_logging


def pytest_addoption(parser: pytest.Parser) -> None:
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
