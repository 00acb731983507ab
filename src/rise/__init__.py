"""rise: Recursive Introspection (Qu, Zhang, Garg, Kumar 2024) for Hugging Face models.

The pure core (tasks, graders, prompts, episodes, weighting, metrics) imports the standard
library only; torch and transformers load lazily in the stages that need them. So does this
package: `import rise` imports nothing else, and each name below is imported from its module on
first use (PEP 562 module `__getattr__`).

    import rise
    task = rise.get_task("arith")
    rise.run_collect(rise.CollectConfig(limit=8), "runs/collect")
"""
from __future__ import annotations

import importlib
from typing import Any


def _version() -> str:
    """The version pyproject.toml gives (the one source), from the installed distribution."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("recursive-introspection")
    except PackageNotFoundError:  # a source tree on PYTHONPATH, not installed
        return "0+unknown"


__version__ = _version()

# public name -> the module that defines it
_EXPORTS = {
    # errors
    "InputError": "rise.errors",
    "ConfigError": "rise.config",
    "RecordError": "rise.records",
    "TaskError": "rise.tasks.base",
    # tasks and episodes (standard library only)
    "get_task": "rise.tasks",
    "Task": "rise.tasks.base",
    "Problem": "rise.tasks.base",
    "Grade": "rise.tasks.base",
    "Attempt": "rise.episodes",
    "EpisodeConfig": "rise.episodes",
    "render_state": "rise.episodes",
    "get_preset": "rise.prompts",
    "episode_metrics": "rise.metrics",
    # stages: configs and entry points (torch loads when a stage runs)
    "PretrainConfig": "rise.pretrain",
    "ensure_base_model": "rise.pretrain",
    "CollectConfig": "rise.collect",
    "run_collect": "rise.collect",
    "ConvertConfig": "rise.convert",
    "convert_rollouts": ("rise.convert", "convert"),  # `rise.convert` is the module
    "TrainConfig": "rise.train",
    "TrainStageConfig": "rise.train",
    "run_train": "rise.train",
    "EvalConfig": "rise.evaluate",
    "run_eval": "rise.evaluate",
    "RunConfig": "rise.run",
    "run_pipeline": ("rise.run", "run"),  # `rise.run` is the module
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    target = _EXPORTS.get(name)
    if target is None:
        raise AttributeError(f"module 'rise' has no attribute {name!r}")
    module, attr = target if isinstance(target, tuple) else (target, name)
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

