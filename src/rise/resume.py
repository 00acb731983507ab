"""Resumable stages: a stage splits its problems into fixed chunks, writes each finished chunk
atomically, and on a restart skips the chunks already on disk. Standard library only.

Chunk composition and the seeds used inside a chunk depend only on the config and the chunk
index, so a resumed stage produces exactly the records of an uninterrupted one.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

from rise.errors import InputError
from rise.records import read_jsonl, remove_stale_temps, write_jsonl, write_text


def begin_stage(out: Path, cfg: Any) -> tuple[Any, list]:
    """Common start of a problem-driven stage (collect, eval): clear what a killed run left
    half-written, load the task's problems (bad data fails here, before any model loads) and save
    the resolved config beside the outputs. Returns (task, problems)."""
    from rise.config import save_config
    from rise.tasks import get_task

    remove_stale_temps(out)
    remove_stale_temps(out / "chunks")
    task = get_task(cfg.task, **cfg.task_options)
    problems = task.load(cfg.split, path=cfg.data_path, limit=cfg.limit)
    save_config(out / "config.yaml", cfg)
    return task, problems


def chunked(items: Sequence, size: int) -> list[list]:
    if size < 1:
        raise InputError(f"chunk size must be >= 1, got {size}")
    return [list(items[i:i + size]) for i in range(0, len(items), size)]


def fingerprint(obj: Any) -> str:
    blob = json.dumps(obj, sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


# config sections that say where a stage runs, not what it computes (its chunks are the same
# either way): left out of every fingerprint, so finished work is reused with or without them
PLACEMENT_KEYS = ("ray",)


def config_fingerprint(cfg: Any, leave_out: Sequence[str] = ()) -> str:
    """The fingerprint of a stage config's top-level keys, less PLACEMENT_KEYS and `leave_out`,
    and of rise's own code (`code_fingerprint`): what a stage computes depends on both, so a
    finished stage or chunk made by another version of rise is never reused."""
    from rise.config import to_dict

    kept = {k: v for k, v in to_dict(cfg).items() if k not in (*PLACEMENT_KEYS, *leave_out)}
    return fingerprint({**kept, "<rise code>": code_fingerprint()})


@lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """One hash of the source of the `rise` package (every .py file under it, by relative name
    and bytes): a new version, or a local edit, changes it."""
    root = Path(__file__).resolve().parent
    h = hashlib.sha1()
    for f in sorted(root.rglob("*.py")):
        h.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:16]


def content_fingerprint(sources: Sequence[str | Path]) -> str:
    """One hash of the content of every input of a stage: a file's bytes, a directory's files
    (relative names and bytes, in sorted order), or, for a name that is not a local path (a hub
    id), the name itself. A stage keyed on this re-runs when an upstream artifact changes, even
    when its own config is the same (a retrained checkpoint at the same path)."""
    h = hashlib.sha1()
    for src in sources:
        path = Path(src)
        files = sorted(f for f in path.rglob("*") if f.is_file()) if path.is_dir() else [path]
        h.update(f"<{src}>".encode())
        if not path.exists():
            continue
        for f in files:
            h.update(str(f.relative_to(path) if path.is_dir() else f.name).encode() + b"\0")
            with open(f, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
    return h.hexdigest()[:16]


class ChunkStore:
    """Finished chunks of one stage under `root`, valid for one config fingerprint.

    A store left by a different config is cleared (its chunks would not match this run)."""

    def __init__(self, root: str | Path, key: str):
        self.root = Path(root)
        self.key = key
        marker = self.root / "FINGERPRINT"
        if self.root.exists() and (not marker.is_file() or marker.read_text().strip() != key):
            shutil.rmtree(self.root)
        if not marker.is_file():
            self.root.mkdir(parents=True, exist_ok=True)
            write_text(marker, key + "\n")

    def path(self, name: str, index: int) -> Path:
        return self.root / f"{name}-{index:05d}.jsonl"

    def has(self, name: str, index: int) -> bool:
        return self.path(name, index).is_file()

    def load(self, name: str, index: int) -> list[dict]:
        return read_jsonl(self.path(name, index))

    def save(self, name: str, index: int, records: list[dict]) -> None:
        write_jsonl(self.path(name, index), records)

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
