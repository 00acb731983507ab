"""`rise <stage> --help`: every config flag shows its field's comment and default, grouped by
config section."""
from __future__ import annotations

import pytest

from rise.cli import STAGES, _config_class, main
from rise.config import field_comments, flag_specs


def help_text(stage: str, capsys, monkeypatch) -> str:
    monkeypatch.setenv("COLUMNS", "250")  # one line per flag: phrases are not wrapped apart
    with pytest.raises(SystemExit) as exit_:
        main([stage, "--help"])
    assert exit_.value.code == 0
    return capsys.readouterr().out


# (stage, flag, words of its comment, default shown, the group it sits in)
CASES = [
    ("train", "--train.lr", "official: 1e-5 for 7B models", "(default: 1e-05)", "train settings"),
    ("train", "--train.warmup_ratio", "official: 4% warm-up", "(default: 0.04)", "train settings"),
    ("train", "--convert.tau", "temperature of exp(r / tau)", "(default: 0.4)", "convert settings"),
    ("train", "--dtype", "fp32 master weights", "(default: float32)", "settings"),
    ("collect", "--turns", "k: maximum turns of a rollout", "(default: 5)", "settings"),
    ("collect", "--teacher", "model for improve=teacher", "(default: null)", "settings"),
    ("collect", "--episode.feedback", "none | incorrect | oracle", "(default: incorrect)",
     "episode settings"),
    ("eval", "--parallel", "K samples at turn 1", "(default: 5)", "settings"),
    ("eval", "--allow_oracle_feedback", "oracle feedback tells the model", "(default: false)",
     "settings"),
    # rise run shows the defaults it gives its stages (EMBEDDED_*), not the stage classes' own
    ("run", "--collect.sampling.max_new_tokens", "", "default: 96", "collect.sampling settings"),
    ("run", "--eval.limit", "test problems", "(default: 500)", "eval settings"),
    ("run", "--nll_probe", "analysis (a)", "(default: 0)", "settings"),
    ("pretrain", "--n_problems", "training problems drawn for the corpus", "(default: 100000)",
     "settings"),
]


@pytest.mark.parametrize("stage, flag, words, default, group", CASES)
def test_help_shows_comment_default_and_group(stage, flag, words, default, group, capsys,
                                              monkeypatch):
    text = help_text(stage, capsys, monkeypatch)
    lines = text.splitlines()
    at = next((i for i, ln in enumerate(lines) if ln.strip().startswith(flag + " ")), None)
    assert at is not None, f"{flag} missing from `rise {stage} --help`"
    entry = [lines[at]]  # the flag's line and its help's continuation lines
    for ln in lines[at + 1:]:
        if not ln.startswith("    ") or ln.strip().startswith("-"):
            break
        entry.append(ln)
    entry = " ".join(" ".join(entry).split())
    assert words in entry and default in entry, entry
    # the flag sits under its group's heading (the last heading above it)
    above = "\n".join(lines[:at])
    headings = [ln[:-1] for ln in above.splitlines() if ln and not ln.startswith(" ")
                and ln.endswith(":")]
    assert headings[-1] == group, (flag, headings[-1])


@pytest.mark.parametrize("stage", list(STAGES))
def test_every_config_flag_has_help(stage):
    cls = _config_class(stage)
    missing = [s.name for s in flag_specs(cls) if not s.help]
    assert not missing, f"rise {stage}: fields without a comment: {missing}"


def test_field_comments_trailing_wins_then_the_block_above():
    import dataclasses

    @dataclasses.dataclass
    class Example:
        plain: int = 1
        trailing: int = 2   # the trailing comment
        # a comment block
        # of two lines
        above: int = 3
        # a section heading
        both: int = 4       # trailing wins over the heading

    assert field_comments(Example) == {"trailing": "the trailing comment",
                                       "above": "a comment block of two lines",
                                       "both": "trailing wins over the heading"}
