"""Shared fixtures.

`shared_data`: the real GSM8K / MATH test files that sit beside the checkout at
`../shared/data/` (not part of the repository). Absent: tests that need them skip with the reason;
under CI (`CI=true`) their absence is a failure, so CI cannot silently pass without them.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        reason = f"shared data folder {SHARED_DATA} not found"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason} (required when CI=true)")
        pytest.skip(reason)
    return SHARED_DATA
