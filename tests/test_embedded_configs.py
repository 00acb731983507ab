"""Issue 10.8: configs/embedded/*.yaml, which the README's stage-by-stage commands use, train and
evaluate the same model as `rise run` (its stage defaults alone would not: lr 1e-5, 256 tokens)."""
from pathlib import Path

from rise.collect import CollectConfig
from rise.config import resolve, to_dict
from rise.evaluate import EvalConfig
from rise.run import RunConfig, eval_config, stage_configs
from rise.train import TrainStageConfig

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "embedded"


def test_stage_configs_equal_what_rise_run_derives(tmp_path):
    run = RunConfig()
    col, tr = stage_configs(run, "BASE", 1, tmp_path)
    mine = resolve(CollectConfig, str(CONFIGS / "collect.yaml"), {"policy": "BASE"})
    assert to_dict(mine) == to_dict(col)
    mine_tr = resolve(TrainStageConfig, str(CONFIGS / "train.yaml"), {"model": "BASE", "rollouts": tr.rollouts})
    assert to_dict(mine_tr) == to_dict(tr)
    ev = eval_config(run, {"base": "BASE"})
    mine_ev = resolve(EvalConfig, str(CONFIGS / "eval.yaml"), {"models": {"base": "BASE"}, "self_refine": ["base"]})
    assert to_dict(mine_ev) == to_dict(ev)


def test_the_plain_stage_defaults_differ(tmp_path):
    # the reason the files exist: without them a stage command trains another model
    _, tr = stage_configs(RunConfig(), "BASE", 1, tmp_path)
    assert TrainStageConfig().train.lr != tr.train.lr
