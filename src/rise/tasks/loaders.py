"""Reading problems from local files or the Hugging Face Hub into `Problem`s.

Rows come from a JSONL file, a parquet file, a directory saved with `datasets.save_to_disk`, or
`datasets.load_dataset` on the Hub. `datasets` and `pyarrow` are imported only inside the
functions that need them, so `import rise.tasks` stays standard-library only.

Every failure is a `TaskError` that names the culprit: the missing file, the file and line of a
malformed row or missing column, the row of an empty question, the two rows sharing an id, the
problem whose gold answer cannot be parsed.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

from .base import Problem, TaskError, problem_hash

Row = tuple[str, dict]          # (location for messages, e.g. "data.jsonl:12", row)
_SCALARS = (str, int, float, bool, type(None))
_META_MAX_CHARS = 200           # longer extra columns are not copied into meta


@dataclass(frozen=True)
class Columns:
    """Which column holds what. `answer=None`: the gold is extracted from the solution.
    `id=None`: use an `id` or `unique_id` column when the rows have one, else generate ids."""
    question: str
    solution: str | None
    answer: str | None = None
    id: str | None = None

    def __post_init__(self):
        if not self.question:
            raise TaskError("question_field must name a column")
        if not self.solution and not self.answer:
            raise TaskError("need solution_field or answer_field to find the gold answers")


@dataclass(frozen=True)
class HubSource:
    """A Hub dataset: `configs` are concatenated in order (e.g. the seven MATH subjects)."""
    dataset: str
    configs: tuple[str | None, ...] = (None,)


# -- row sources ---------------------------------------------------------------------------------
def iter_jsonl_rows(path: Path) -> Iterator[Row]:
    """Rows of a JSONL file with their line numbers; blank lines are skipped."""
    from rise.records import RecordError, iter_jsonl_numbered

    try:
        for lineno, rec in iter_jsonl_numbered(path):
            yield f"{path}:{lineno}", rec
    except RecordError as e:
        raise TaskError(str(e)) from None


def iter_parquet_rows(path: Path) -> Iterator[Row]:
    try:
        import pyarrow.parquet as pq
    except ImportError as e:
        raise TaskError(f"{path}: reading parquet needs pyarrow ({e})") from None
    try:
        table = pq.read_table(path)
    except Exception as e:  # noqa: BLE001 - pyarrow raises many types for a bad file
        raise TaskError(f"{path}: cannot read parquet ({type(e).__name__}: {e})") from None
    for i, rec in enumerate(table.to_pylist(), 1):
        yield f"{path}: row {i}", rec


def iter_saved_dataset_rows(path: Path, split: str) -> Iterator[Row]:
    """A `datasets.save_to_disk` directory: a Dataset, or a DatasetDict holding `split`."""
    try:
        import datasets
    except ImportError as e:
        raise TaskError(f"{path}: reading a saved dataset needs `datasets` ({e})") from None
    try:
        ds = datasets.load_from_disk(str(path))
    except Exception as e:  # noqa: BLE001
        raise TaskError(f"{path}: not a saved dataset ({type(e).__name__}: {e})") from None
    if isinstance(ds, datasets.DatasetDict):
        if split not in ds:
            raise TaskError(f"{path}: no split {split!r} (splits: {', '.join(ds)})")
        ds = ds[split]
    for i, rec in enumerate(ds, 1):
        yield f"{path}[{split}]: row {i}", rec


def iter_file_rows(path: str | Path, split: str) -> Iterator[Row]:
    """Dispatch on what `path` is: directory -> saved dataset, *.parquet -> parquet, else JSONL."""
    p = Path(path)
    if not p.exists():
        raise TaskError(f"{p}: no such file or directory")
    if p.is_dir():
        return iter_saved_dataset_rows(p, split)
    if p.suffix.lower() in (".parquet", ".pq"):
        return iter_parquet_rows(p)
    return iter_jsonl_rows(p)


def iter_hub_rows(source: HubSource, split: str) -> Iterator[Row]:
    try:
        import datasets
    except ImportError as e:
        raise TaskError(f"loading {source.dataset} needs `datasets` ({e}); "
                        f"or pass path= a local JSONL/parquet file") from None
    for config in source.configs:
        name = source.dataset + (f"/{config}" if config else "")
        try:
            ds = datasets.load_dataset(source.dataset, config, split=split)
        except Exception as e:  # noqa: BLE001 - offline, unknown split, unknown dataset...
            raise TaskError(f"cannot load {name} split {split!r} from the Hugging Face Hub "
                            f"({type(e).__name__}: {e}); pass path= a local file instead") from None
        for i, rec in enumerate(ds, 1):
            yield f"{name}[{split}]: row {i}", rec


# -- rows -> problems ----------------------------------------------------------------------------
def _field(row: dict, name: str, loc: str) -> Any:
    if name not in row:
        cols = ", ".join(sorted(map(str, row))) or "none"
        raise TaskError(f"{loc}: missing column {name!r} (columns: {cols})")
    return row[name]


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _meta(row: dict, used: set[str], question: str) -> dict[str, Any]:
    """Extra short scalar columns (level, type, subject...) plus the question's content hash."""
    meta: dict[str, Any] = {}
    if isinstance(row.get("meta"), dict):
        meta.update(row["meta"])
    for key, value in row.items():
        if key in used or key == "meta" or not isinstance(value, _SCALARS):
            continue
        if isinstance(value, str) and len(value) > _META_MAX_CHARS:
            continue
        meta[key] = value
    meta["hash"] = problem_hash(question)
    return meta


def problems_from_rows(rows: Iterator[Row], *, task: str, split: str, columns: Columns,
                       gold_from_solution: Callable[[str], str | None],
                       gold_from_answer: Callable[[Any], str | None],
                       limit: int | None = None) -> list[Problem]:
    """Validate and convert rows; the first `limit` rows only (all when None)."""
    limit = check_limit(limit)
    id_col = columns.id
    problems: list[Problem] = []
    seen_ids: dict[str, str] = {}
    for index, (loc, row) in enumerate(islice(rows, limit)):
        if index == 0 and id_col is None:
            id_col = next((c for c in ("id", "unique_id") if c in row), None)
        raw_question = _field(row, columns.question, loc)
        if raw_question is not None and not isinstance(raw_question, str):
            raise TaskError(f"{loc}: column {columns.question!r} should be text, got {type(raw_question).__name__}")
        question = _text(raw_question)
        solution = _text(_field(row, columns.solution, loc)) if columns.solution else ""
        pid = str(_field(row, id_col, loc)) if id_col else f"{task}-{split}-{index:05d}"
        if not question.strip():
            raise TaskError(f"{loc}: empty question (problem {pid})")
        if pid in seen_ids:
            raise TaskError(f"{loc}: duplicate id {pid!r} (first at {seen_ids[pid]})")
        seen_ids[pid] = loc
        if columns.answer:
            raw = _field(row, columns.answer, loc)
            gold, what = gold_from_answer(raw), f"column {columns.answer!r} = {_text(raw)[:80]!r}"
        else:
            gold, what = gold_from_solution(solution), f"solution ...{solution[-80:]!r}"
        if gold is None:
            raise TaskError(f"{loc}: problem {pid}: cannot parse the gold answer from {what}")
        used = {columns.question, columns.solution, columns.answer, id_col} - {None}
        problems.append(Problem(id=pid, question=question, solution=solution, answer=gold,
                                meta=_meta(row, used, question)))
    return problems


def check_limit(limit: int | None) -> int | None:
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise TaskError(f"limit must be a non-negative integer or None, got {limit!r}")
    return limit


def load_problems(*, task: str, split: str, path: str | Path | None, hub: HubSource | None,
                  columns: Columns, gold_from_solution: Callable[[str], str | None],
                  gold_from_answer: Callable[[Any], str | None],
                  limit: int | None = None) -> list[Problem]:
    """Problems of `split` from `path` when given, else from the Hub source."""
    if not isinstance(split, str) or not split:
        raise TaskError(f"{task}: split must be a non-empty string, got {split!r}")
    if path is not None:
        rows = iter_file_rows(path, split)
    elif hub is not None:
        rows = iter_hub_rows(hub, split)
    else:
        raise TaskError(f"{task}: no default dataset; pass path= a JSONL/parquet file")
    problems = problems_from_rows(rows, task=task, split=split, columns=columns, limit=limit,
                                  gold_from_solution=gold_from_solution,
                                  gold_from_answer=gold_from_answer)
    if not problems and limit != 0:  # an empty file would otherwise fail late, after chunks were written
        raise TaskError(f"{path if path is not None else hub.dataset}: no problems in split {split!r}")
    return problems
