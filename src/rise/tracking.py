"""Experiment tracking of `rise train` through accelerate's trackers (`train.report_to`).

`report_to` names one tracker or several, comma-separated: tensorboard, wandb, trackio, mlflow;
"none" (the default) logs nothing. Every tracker stays on this machine unless told otherwise:
TensorBoard event files and trackio's local store need no server, wandb runs in offline mode
(`WANDB_MODE=offline`, files under the stage's `logs/`) unless WANDB_MODE is set, and MLflow
writes to its local default store unless MLFLOW_TRACKING_URI names a server. At every logging
step (`train.log_every`) `fit` logs train/loss, train/lr, train/grad_norm and
train/tokens_per_s, and eval/<set>_nll whenever it scores the eval sets.
Standard library at import; accelerate is imported by the caller.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

from rise.errors import InputError

TRACKERS = {"tensorboard": "tensorboard", "wandb": "wandb", "trackio": "trackio",
            "mlflow": "mlflow"}  # name -> the package it needs
PROJECT = "rise"


def parse_report_to(value: str) -> list[str]:
    """The trackers `value` names ([] for "none"); unknown or uninstalled ones are refused."""
    names = [n.strip().lower() for n in str(value).split(",") if n.strip()]
    if names in ([], ["none"]):
        return []
    for name in names:
        if name not in TRACKERS:
            raise InputError(f"train.report_to: unknown tracker {name!r}; known: none, "
                             f"{', '.join(TRACKERS)}")
        if importlib.util.find_spec(TRACKERS[name]) is None:
            raise InputError(f"train.report_to={name} needs the {TRACKERS[name]} package: "
                             f"pip install {TRACKERS[name]}")
    return names


def accelerator_kwargs(report_to: str, log_dir: str | os.PathLike) -> dict[str, Any]:
    """`Accelerator(**...)` arguments for the trackers `report_to` names ({} for none)."""
    names = parse_report_to(report_to)
    if not names:
        return {}
    from accelerate.utils import ProjectConfiguration

    if "wandb" in names:  # offline unless the user chose otherwise
        os.environ.setdefault("WANDB_MODE", "offline")
        os.environ.setdefault("WANDB_DIR", str(log_dir))
    Path(log_dir).mkdir(parents=True, exist_ok=True)
    return {"log_with": names,
            "project_config": ProjectConfiguration(project_dir=str(log_dir),
                                                   logging_dir=str(log_dir))}


def flat_config(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config as flat `a.b` keys of bool/int/float/str, the types every tracker's
    hyper-parameter store accepts (TensorBoard's refuses None, lists and mappings)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flat_config(value, f"{name}."))
        elif isinstance(value, (bool, int, float, str)):
            out[name] = value
        else:
            out[name] = str(value)
    return out


def start_tracking(acc, config: dict[str, Any], run_name: str) -> bool:
    """Start the trackers `acc` was built with, storing `config` as the run's hyper-parameters;
    whether any was started (then call `acc.end_training()` after training)."""
    if not acc.log_with:
        return False
    acc.init_trackers(PROJECT, config=flat_config(config),
                      init_kwargs={"wandb": {"name": run_name}, "mlflow": {"run_name": run_name}})
    return True


def log_metrics(acc, metrics: dict[str, float | None], step: int) -> None:
    """Log the metrics that have a value (a DeepSpeed step reports no gradient norm); a no-op
    when no tracker was started."""
    if acc.trackers:
        acc.log({k: float(v) for k, v in metrics.items() if v is not None}, step=step)
