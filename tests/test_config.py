"""Config: YAML + overrides, unknown keys and bad values rejected with the key named."""
import pytest

from rise.config import ConfigError, parse_override, resolve, set_dotted
from rise.run import RunConfig


def test_defaults_and_nested_overrides():
    cfg = resolve(RunConfig, None, {"train.lr": 1e-4, "collect.turns": 3, "eval.episode.history": None})
    assert cfg.train.lr == 1e-4 and cfg.collect.turns == 3 and cfg.eval.episode.history is None


@pytest.mark.parametrize("overrides,message", [
    ({"train.lrr": 1}, "unknown config key 'train.lrr' (did you mean 'train.lr'?)"),
    ({"nope": 1}, "unknown config key 'nope'"),
    ({"train.lr": "fast"}, "train.lr: expected a number"),
    ({"collect.turns": "many"}, "collect.turns: expected an integer"),
    ({"collect.turns": 0}, "turns must be >= 1"),
    ({"collect.improve": "magic"}, "improve must be one of"),
    ({"eval.episode.feedback": "loud"}, "feedback must be one of"),
    ({"train.train_on": "first"}, "train_on"),
    ({"convert.tau": True}, "convert.tau: expected a number"),
])
def test_bad_config_names_the_key(overrides, message):
    with pytest.raises(ConfigError) as e:
        resolve(RunConfig, None, overrides)
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_yaml_file(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("iterations: 2\ntrain:\n  lr: 0.001\n")
    cfg = resolve(RunConfig, str(f), {"train.epochs": 2})
    assert cfg.iterations == 2 and cfg.train.lr == 0.001 and cfg.train.epochs == 2.0


def test_missing_and_malformed_yaml(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        resolve(RunConfig, str(tmp_path / "none.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match="malformed YAML"):
        resolve(RunConfig, str(bad))


def test_parse_override():
    assert parse_override("a.b=3") == ("a.b", 3)
    assert parse_override("a=null") == ("a", None)
    assert parse_override("a=[1, 2]") == ("a", [1, 2])
    with pytest.raises(ConfigError):
        parse_override("novalue")


def test_set_dotted_refuses_non_section():
    d = {"a": 1}
    with pytest.raises(ConfigError):
        set_dotted(d, "a.b", 2)


def test_nested_override_keeps_the_parents_defaults():
    cfg = resolve(RunConfig, None, {"collect.sampling.max_new_tokens": 50, "collect.turns": 3})
    default = RunConfig()
    assert cfg.collect.sampling.max_new_tokens == 50 and cfg.collect.turns == 3
    assert cfg.collect.improve_first_turn == default.collect.improve_first_turn
    assert cfg.collect.sampling.temperature == default.collect.sampling.temperature
    assert cfg.collect.limit == default.collect.limit and cfg.eval.limit == default.eval.limit
