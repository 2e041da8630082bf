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
