"""Shared fixtures: the real data folder (skip with a clear reason when absent) and repo paths."""
from __future__ import annotations

from pathlib import Path

import pytest

from sqsim.paths import REPO_ROOT, shared_data, shared_data_missing_reason

ARCHS = REPO_ROOT / "archs"
HWMODELS = REPO_ROOT / "hwmodels"


def need_shared(*parts: str) -> Path:
    """Path of a shared data file, or skip the test saying what is missing."""
    p = shared_data(*parts)
    if p is None:
        pytest.skip(shared_data_missing_reason(*parts))
    return p


@pytest.fixture
def shared():
    return need_shared


def pytest_addoption(parser):
    parser.addoption("--fuzz-long", action="store_true", default=False,
                     help="run the long fuzz budget (SQSIM_FUZZ_INPUTS, default 100,000) instead of CI's 10,000")


def pytest_terminal_summary(terminalreporter, config):
    """The fuzz harness's figures (inputs, clean errors, tracebacks, hangs, peak memory), printed in every run
    that ran it, captured output or not (CI runs ``pytest -q``)."""
    import sys
    runner = sys.modules.get("tests.fuzz_runner")  # loaded only where the fuzz test was collected
    report = runner and config.stash.get(runner.REPORT_KEY, None)
    if report:
        terminalreporter.write_line(report)
