"""Train/test splits that never overlap, checked by problem hash. Standard library only.

A problem's hash is `problem_hash(question)` (whitespace-insensitive SHA-1 of the question, kept in
`Problem.meta["hash"]` by the loaders), so the same question under two ids, or in two files, is
still caught.

    check_disjoint(train_problems, test_problems)   # TaskError naming an overlapping problem
    in_test(question, test_fraction=0.5)           # deterministic hash split of one question

Splitting a single file into two disjoint halves (rows are copied unchanged):

    python -m rise.tasks.splits gsm8k_test.jsonl --train /tmp/train.jsonl --test /tmp/test.jsonl
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .base import Problem, TaskError, problem_hash

_SHOW = 80      # characters of an overlapping question shown in the error


def _hash_and_name(item: Any) -> tuple[str, str, str]:
    """(hash, name for messages, question) of a Problem, a row dict or a question string."""
    if isinstance(item, Problem):
        question = item.question
        return str(item.meta.get("hash") or problem_hash(question)), item.id, question
    if isinstance(item, dict):
        question = str(item.get("question", ""))
        name = str(item.get("id", "")) or problem_hash(question)
        meta = item.get("meta") if isinstance(item.get("meta"), dict) else {}
        return str(meta.get("hash") or problem_hash(question)), name, question
    question = str(item)
    return problem_hash(question), problem_hash(question), question


def overlap(train: Iterable[Any], test: Iterable[Any]) -> list[tuple[str, str, str]]:
    """(train name, test name, question) of every test problem whose question hash is also in
    train, in test order."""
    seen: dict[str, str] = {}
    for item in train:
        h, name, _ = _hash_and_name(item)
        seen.setdefault(h, name)
    out = []
    for item in test:
        h, name, question = _hash_and_name(item)
        if h in seen:
            out.append((seen[h], name, question))
    return out


def check_disjoint(train_problems: Iterable[Any], test_problems: Iterable[Any],
                   what: str = "train and test") -> None:
    """Raise TaskError when any test problem's question (by hash) is also a training problem.

    Items are `Problem`s, row dicts with a "question", or question strings. The message names the
    first overlapping problem in both sets and counts the rest."""
    found = overlap(train_problems, test_problems)
    if not found:
        return
    train_name, test_name, question = found[0]
    q = " ".join(question.split())
    q = q if len(q) <= _SHOW else q[: _SHOW - 3] + "..."
    more = f" ({len(found)} overlapping problems in all)" if len(found) > 1 else ""
    raise TaskError(f"{what} overlap: test problem {test_name} is training problem {train_name} "
                    f"(same question hash {problem_hash(question)}: {q!r}){more}; "
                    "use disjoint data, e.g. python -m rise.tasks.splits")


def in_test(question: str, test_fraction: float = 0.5) -> bool:
    """Whether `question` falls in the test part of a deterministic hash split."""
    if not 0.0 <= test_fraction <= 1.0:
        raise TaskError(f"test_fraction must be in [0, 1], got {test_fraction!r}")
    return int(problem_hash(question), 16) / 16 ** 12 < test_fraction


def split_jsonl(path: str | Path, train_out: str | Path, test_out: str | Path, *,
                question_field: str = "question", test_fraction: float = 0.5) -> tuple[int, int]:
    """Split a JSONL file's rows by the hash of their question into two files (rows unchanged);
    returns (train rows, test rows). A repeated question always lands on one side."""
    from rise.records import write_jsonl

    from .loaders import iter_jsonl_rows

    src = Path(path)
    if not src.is_file():
        raise TaskError(f"{src}: no such file")
    train, test = [], []
    for loc, row in iter_jsonl_rows(src):
        if question_field not in row:
            raise TaskError(f"{loc}: missing column {question_field!r}")
        (test if in_test(str(row[question_field]), test_fraction) else train).append(row)
    write_jsonl(train_out, train)
    write_jsonl(test_out, test)
    return len(train), len(test)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m rise.tasks.splits",
                                description="split a JSONL file into disjoint train/test halves "
                                            "by question hash")
    p.add_argument("path")
    p.add_argument("--train", required=True, help="output JSONL for the training rows")
    p.add_argument("--test", required=True, help="output JSONL for the test rows")
    p.add_argument("--question-field", default="question")
    p.add_argument("--test-fraction", type=float, default=0.5)
    args = p.parse_args(argv)
    try:
        n_train, n_test = split_jsonl(args.path, args.train, args.test,
                                      question_field=args.question_field,
                                      test_fraction=args.test_fraction)
    except TaskError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps({"train": n_train, "test": n_test}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
