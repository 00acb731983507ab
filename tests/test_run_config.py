"""Issue 10.3-10.5: every value is checked in the preflight, derived keys are refused, and one
episode format serves collection and evaluation."""
import pytest

from rise.cli import main
from rise.config import ConfigError, resolve
from rise.run import RunConfig, eval_config


# issue 10.3: bad values of every stage, refused before any work, nothing written
@pytest.mark.parametrize("key,value,needle", [
    ("convert.criterion", "bestest", "criterion"),
    ("convert.tau", "0", "tau"),
    ("train.dtype", "float8", "dtype"),
    ("train.mixed_precision", "fp8", "mixed_precision"),
    ("train.device", "tpu", "device"),
    ("train.lr", "-1", "lr"),
    ("collect.improve", "magic", "improve"),
    ("collect.episode.feedback", "loud", "feedback"),
    ("eval.turns", "0", "turns"),
    ("eval.sampling.top_p", "2", "top_p"),
    ("improve_schedule", "[reference, magic]", "magic"),
    ("glore_max_turn", "1", "glore_max_turn"),
    ("glore_epochs", "0", "glore_epochs"),
    ("convert.max_turn", "0", "max_turn"),
    ("convert.mode", "refine", "convert.mode"),
])
def test_bad_values_fail_in_the_preflight(key, value, needle, tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["run", "--set", f"{key}={value}", "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("rise: error:") and needle in err and "\n" not in err
    assert not out.exists()


# issue 10.5: a key rise run derives is refused, naming the run-level key
@pytest.mark.parametrize("key,value,instead", [
    ("collect.task", "gsm8k", "set task"), ("collect.seed", "42", "set seed"), ("train.seed", "7", "set seed"),
    ("eval.task", "math", "set task"), ("eval.models", "{a: b}", "set base"),
    ("collect.policy", "/some/model", "set base"), ("eval.self_refine", "[base]", "set self_refine"),
    ("eval.refiners", "{r: /m}", "set glore"),
])
def test_derived_keys_are_refused(key, value, instead):
    import yaml

    with pytest.raises(ConfigError, match=f"{key} is set by rise run; {instead}"):
        resolve(RunConfig, None, {key: yaml.safe_load(value)})


def test_a_saved_run_config_loads_again(tmp_path):
    from rise.config import save_config

    cfg = resolve(RunConfig, None, {"train.lr": 1e-4, "task": "arith"})
    save_config(tmp_path / "config.yaml", cfg)
    assert resolve(RunConfig, str(tmp_path / "config.yaml")) == cfg


# issue 10.4: evaluation uses the training episode format unless eval.episode is set
def test_eval_follows_the_collect_episode_format():
    cfg = resolve(RunConfig, None, {"collect.episode.feedback": "none", "collect.episode.history": 0})
    ev = eval_config(cfg, {"base": "b"})
    assert (ev.episode.feedback, ev.episode.history) == ("none", 0)
    cfg = resolve(RunConfig, None, {"collect.episode.feedback": "none", "eval.episode.preset": "paper"})
    ev = eval_config(cfg, {"base": "b"})
    assert (ev.episode.feedback, ev.episode.preset) == ("incorrect", "paper")


def test_oracle_feedback_at_evaluation_needs_an_opt_in():
    with pytest.raises(ConfigError, match="allow_oracle_feedback"):
        resolve(RunConfig, None, {"eval.episode.feedback": "oracle"})
    cfg = resolve(RunConfig, None, {"collect.episode.feedback": "oracle"})  # training with oracle is fine
    with pytest.raises(ValueError, match="allow_oracle_feedback"):
        eval_config(cfg, {"base": "b"})  # ...but evaluating in that format is an explicit choice
    cfg = resolve(RunConfig, None, {"eval.episode.feedback": "oracle", "eval.allow_oracle_feedback": True})
    assert eval_config(cfg, {"base": "b"}).episode.feedback == "oracle"


@pytest.mark.parametrize("feedback,phrase", [("incorrect", "no oracle leaks"), ("oracle", "ORACLE"),
                                             ("none", "no verdict")])
def test_report_states_the_episode_format(feedback, phrase):
    from rise.report import build_report, render_markdown

    results = {"m": {"m1@t1": 0.5, "turn_acc": [0.5], "K": 1, "T": 1,
                     "meta": {"episode": {"preset": "paper", "feedback": feedback, "history": 1}}}}
    md = render_markdown(results)
    assert f"feedback `{feedback}`" in md and "preset `paper`" in md and phrase in md
    assert build_report(results)["m"]["meta"]["episode"]["feedback"] == feedback


@pytest.mark.parametrize("refiners,base,needle", [
    ({"r": "/m"}, "nobody", "eval.refiner_base 'nobody'"),
    ({"base": "/m"}, "base", "row name 'base'"),
])
def test_refiner_rows_are_checked(refiners, base, needle):
    from rise.errors import InputError
    from rise.evaluate import EvalConfig, check_rows

    with pytest.raises(InputError, match=needle):
        check_rows(EvalConfig(models={"base": "/b"}, refiners=refiners, refiner_base=base))
