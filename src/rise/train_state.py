"""What `rise train` writes besides the checkpoint: resumable training states (weights,
optimizer, RNG and progress, through accelerate's `save_state`) and, after sharded training
(FSDP, DeepSpeed), the full weights gathered to the main process. Standard library at import;
accelerate is the caller's.
"""
from __future__ import annotations

from typing import Any


def save_train_state(acc, state_dir, progress: dict[str, Any]) -> None:
    """Model, optimizer and RNG states (accelerate's `save_state`, which knows DDP/FSDP/DeepSpeed)
    plus our progress, written to a temporary folder and renamed into place."""
    import json
    import os
    import shutil
    from pathlib import Path

    state_dir = Path(state_dir)
    tmp, old = state_dir.with_name(state_dir.name + ".tmp"), state_dir.with_name(state_dir.name + ".old")
    if acc.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
    acc.wait_for_everyone()
    acc.save_state(str(tmp))
    acc.wait_for_everyone()
    if acc.is_main_process:
        with open(tmp / "progress.json", "w") as fh:
            json.dump(progress, fh)
            fh.flush()
            os.fsync(fh.fileno())
        if state_dir.exists():
            os.replace(state_dir, old)
        os.replace(tmp, state_dir)
        shutil.rmtree(old, ignore_errors=True)
    acc.wait_for_everyone()


def load_train_state(acc, state_dir, fingerprint: str) -> dict[str, Any] | None:
    """The progress of a saved state for this fingerprint (model/optimizer/RNG restored), or None."""
    import json
    from pathlib import Path

    state_dir = Path(state_dir)
    for d in (state_dir, state_dir.with_name(state_dir.name + ".old")):  # .old: killed mid-rename
        f = d / "progress.json"
        if f.is_file():
            progress = json.loads(f.read_text())
            if progress.get("fingerprint") != fingerprint:
                return None
            acc.load_state(str(d))
            return progress
    return None


def gathered_state_dict(acc) -> dict[str, Any] | None:
    """The full weights of the model `fit` trained with `acc`, on the main process, when training
    was sharded (FSDP, DeepSpeed); None otherwise (the in-memory model already holds them) and on
    the other processes. Every process must call it. Keys are the causal LM's own."""
    from accelerate import DistributedType

    if acc.distributed_type not in (DistributedType.FSDP, DistributedType.DEEPSPEED) or not acc._models:
        return None
    state = acc.get_state_dict(acc._models[-1])  # the PerExampleNLL wrapper that fit prepared
    if not acc.is_main_process:
        return None
    return {(k[3:] if k.startswith("lm.") else k): v for k, v in state.items()}


def load_full_state_dict(model, state: dict[str, Any]) -> None:
    """Load gathered weights; only tied output embeddings may be missing."""
    missing, unexpected = model.load_state_dict(state, strict=True)
    missing = [k for k in missing if not k.endswith("lm_head.weight")]
    if missing or unexpected:
        raise ValueError(f"gathered weights do not fit the model: missing {missing[:3]}, unexpected {unexpected[:3]}")
    if hasattr(model, "tie_weights"):
        model.tie_weights()
