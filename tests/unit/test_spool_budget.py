"""The spool's ceiling: shared by every queue of a node, from `spool_max_bytes` or, when
that is 0, a quarter of the data dir's free space at start."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from config.loading import load_settings
from transcode.storage.spool_budget import FREE_SPACE_SHARE, SpoolBudget, default_spool_bytes


def test_a_budget_refuses_past_its_ceiling_and_counts_what_is_released() -> None:
    budget = SpoolBudget(10)
    assert budget.reserve(6) and not budget.reserve(5)
    assert budget.used == 6
    assert budget.reserve(5, force=True)  # already on disk from an earlier run
    assert budget.used == 11 and not budget.reserve(1)
    budget.release(11)
    assert budget.reserve(10)
    assert SpoolBudget(0).reserve(1 << 40)  # 0: no limit
    with pytest.raises(ValueError):
        SpoolBudget(-1)


def test_the_default_ceiling_is_a_share_of_the_free_space(tmp_path: Path) -> None:
    stats = os.statvfs(tmp_path)
    free = stats.f_bavail * stats.f_frsize
    # A folder not created yet is measured on its nearest existing parent.
    assert default_spool_bytes(tmp_path / "var" / "spool") == pytest.approx(
        free * FREE_SPACE_SHARE, rel=0.05)


def test_the_setting_is_read_from_the_environment() -> None:
    assert load_settings(environ={}).storage.spool_max_bytes == 0
    settings = load_settings(environ={"ACADEMIA_SPOOL_MAX_BYTES": "1048576"})
    assert settings.storage.spool_max_bytes == 1048576
