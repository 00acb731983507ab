"""Episode rendering: presets, feedback modes, context window."""
import pytest

from rise.episodes import Attempt, EpisodeConfig, feedback_text, render_state, with_response
from rise.prompts import get_preset

Q = "Tom has 3 apples and buys 4 more. How many apples does he have?"
WRONG = Attempt("3 + 4 = 8\n#### 8", "8", 0.0)
WRONG2 = Attempt("3 + 4 = 6\n#### 6", "6", 0.0)
RIGHT = Attempt("3 + 4 = 7\n#### 7", "7", 1.0)
DEFAULT = get_preset("default")
PAPER = get_preset("paper")


def roles(msgs):
    return [m["role"] for m in msgs]


def test_first_turn_is_question_only():
    assert render_state(Q, [], DEFAULT) == [{"role": "user", "content": Q}]


@pytest.mark.parametrize("history,kept", [(None, 2), (1, 1), (2, 2), (5, 2), (0, 0)])
def test_context_window_keeps_most_recent_attempts(history, kept):
    msgs = render_state(Q, [WRONG, WRONG2], DEFAULT, "incorrect", history)
    assert roles(msgs) == ["user"] + ["assistant", "user"] * kept
    assistant = [m["content"] for m in msgs if m["role"] == "assistant"]
    assert assistant == [WRONG.response, WRONG2.response][2 - kept:]
    assert msgs[0]["content"] == Q  # the question always stays


@pytest.mark.parametrize("mode,attempt,expected", [
    ("incorrect", WRONG, "The answer is incorrect. Please try again. Here's the question: " + Q),
    # the fixed line is shown whatever the truth: no oracle leaks at evaluation
    ("incorrect", RIGHT, "The answer is incorrect. Please try again. Here's the question: " + Q),
    ("oracle", WRONG, "Your answer 8 is incorrect. Please try again. Here's the question: " + Q),
    ("oracle", RIGHT, "That is correct."),
    ("oracle", Attempt("no idea", None, -1.0),
     "Your answer no answer is incorrect. Please try again. Here's the question: " + Q),
    ("none", WRONG, "Please answer again. Here's the question: " + Q),
])
def test_feedback_modes(mode, attempt, expected):
    assert feedback_text(DEFAULT, mode, Q, attempt) == expected


def test_unknown_feedback_mode_is_an_error():
    with pytest.raises(ValueError, match="feedback mode"):
        feedback_text(DEFAULT, "sometimes", Q, WRONG)


def test_paper_preset_matches_official_prompts():
    msgs = render_state(Q, [WRONG], PAPER, "incorrect", 1)
    assert roles(msgs) == ["user", "assistant", "user", "assistant", "user"]
    assert "drama club" in msgs[0]["content"] and "\\boxed{Your Answer}" in msgs[0]["content"]
    assert msgs[1]["content"].endswith("Answer: \\boxed{17}")
    assert msgs[2]["content"] == ("Great job! You've successfully answered the question. "
                                  "Now, let's move on to the next one.\n" + Q)
    assert msgs[4]["content"] == "The answer is incorrect. Please try again. Here's the question: " + Q


def test_with_response_appends_assistant_turn():
    msgs = with_response(render_state(Q, [], DEFAULT), "#### 7")
    assert msgs[-1] == {"role": "assistant", "content": "#### 7"}


def test_episode_config_validates():
    with pytest.raises(ValueError, match="feedback"):
        EpisodeConfig(feedback="loud")
    with pytest.raises(ValueError, match="preset"):
        EpisodeConfig(preset="nope")
    assert EpisodeConfig().render(Q, [WRONG])[-1]["role"] == "user"
