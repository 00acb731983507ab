"""configs/smollm2-135m.yaml and configs/gemma3-270m.yaml (issue 12): they load as `rise run`
configs, name an rg task that builds, and that task has enough disjoint problems for the sizes."""
from pathlib import Path

import pytest

from rise.config import resolve
from rise.run import RunConfig, task_options
from rise.tasks import get_task
from rise.tasks.splits import check_disjoint

pytest.importorskip("reasoning_gym")

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.mark.parametrize("name, base", [("smollm2-135m", "models/smollm2-135m"),
                                        ("gemma3-270m", "models/gemma3-270m")])
def test_config_loads_and_its_task_has_the_problems(name, base):
    cfg = resolve(RunConfig, str(CONFIGS / f"{name}.yaml"))
    assert cfg.base == base and cfg.task.startswith("rg:") and cfg.train.lora
    task = get_task(cfg.task, **task_options(cfg))
    train = task.load(cfg.collect.split, limit=cfg.collect.limit)
    test = task.load(cfg.eval.split, limit=cfg.eval.limit)
    assert (len(train), len(test)) == (cfg.collect.limit, cfg.eval.limit)
    check_disjoint(train, test)
