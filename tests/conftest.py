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


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> str:
    """A randomly initialised ~0.1M-parameter Qwen2 with an arith tokenizer, saved as an ordinary
    model directory: the model the integration tests run the real pipeline on, in seconds."""
    pytest.importorskip("torch")
    from rise.embedded import build_model, build_tokenizer
    from rise.modeling import save_model
    from rise.tasks import get_task

    probs = get_task("arith").load("train", limit=200)
    tok = build_tokenizer([p.question for p in probs] + [p.solution for p in probs], vocab_size=400)
    path = tmp_path_factory.mktemp("models") / "tiny"
    save_model(build_model(tok, size="tiny", seed=0), tok, path)
    return str(path)


@pytest.fixture(autouse=True)
def _fresh_accelerate_state():
    """accelerate keeps one process-wide state: a test whose train stage chose bf16 autocast
    (`train.mixed_precision: auto` on a CPU with native bf16) would hand it to every later
    `Accelerator()` of the session. Each test starts from a clean state, as a process does."""
    yield
    import sys

    state = sys.modules.get("accelerate.state")
    if state is not None:
        state.AcceleratorState._reset_state(True)
