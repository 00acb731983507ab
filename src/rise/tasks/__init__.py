"""Tasks: loading problems and grading responses. Standard library only at import time (datasets,
pyarrow are imported when loading from the Hub or a parquet file; math-verify only inside its
worker process).

    task = get_task("gsm8k")                 # or "math", "arith"
    problems = task.load("test", path="gsm8k_test.jsonl", limit=100)
    answer, reward = task.grade(response, problems[0])

Options of `get_task` are the keyword arguments of the task class: column mapping for files
(`question_field`, `solution_field`, `answer_field`, `id_field`), Hub source (`hub_id`,
`hub_config`), MATH grading (`verify_timeout`, `max_answer_chars`, `use_math_verify`), arith
generation (`seed`, `min_steps`, `max_steps`, `max_value`, `max_factor`, `ops`, `templates`,
`train_size`, `validation_size`, `test_size`).

`rg:<name>` is any reasoning-gym dataset (`rise.tasks.rg`; reasoning-gym is imported only then):
its options are `rise.tasks.rg.ReasoningGymTask`'s plus the dataset's config fields.
"""
from __future__ import annotations

import inspect

from .answers import canonical_number, final_number, last_boxed
from .arith import ArithTask
from .base import Problem, Task, TaskError, problem_hash
from .gsm8k import GSM8KTask
from .math_task import MathTask, normalize_math

TASKS: dict[str, type[Task]] = {"gsm8k": GSM8KTask, "math": MathTask, "arith": ArithTask}


def task_options(name: str) -> list[str]:
    """The option names `get_task(name, ...)` accepts."""
    cls = _task_class(name)
    own = [p.name for p in inspect.signature(cls.__init__).parameters.values()
           if p.kind == p.KEYWORD_ONLY]
    if _rg_dataset(name) is not None:
        from .rg import config_fields
        own += config_fields(_rg_dataset(name))
    return own


def get_task(name: str, **options) -> Task:
    """A task by name; unknown names and unknown options raise TaskError listing the valid ones."""
    cls = _task_class(name)
    allowed = task_options(name)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise TaskError(f"task {str(name).strip()!r}: unknown option(s) {', '.join(unknown)}; "
                        f"options: {', '.join(allowed)}")
    dataset = _rg_dataset(name)
    return cls(**options) if dataset is None else cls(dataset, **options)


def _rg_dataset(name: str) -> str | None:
    """The reasoning-gym dataset of an `rg:<name>` task name, else None."""
    key = str(name).strip()
    return key[len("rg:"):].strip() if key.lower().startswith("rg:") else None


def _task_class(name: str) -> type[Task]:
    dataset = _rg_dataset(name)
    if dataset is not None:
        from .rg import ReasoningGymTask, dataset_classes
        dataset_classes(dataset)          # TaskError for an unknown dataset or no reasoning-gym
        return ReasoningGymTask
    key = str(name).strip().lower()
    if key not in TASKS:
        raise TaskError(f"unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))}, "
                        "or rg:<name> for a reasoning-gym dataset")
    return TASKS[key]


__all__ = ["ArithTask", "GSM8KTask", "MathTask", "Problem", "TASKS", "Task", "TaskError",
           "canonical_number", "final_number", "get_task", "last_boxed", "normalize_math",
           "problem_hash", "task_options"]
