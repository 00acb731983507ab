"""The multi-turn MDP of RISE, as chat messages. Standard library only.

A single-turn problem becomes an episode (paper, Sec. 4.1): the state s_t is the prompt plus the
earlier attempts a_1..a_{t-1} and the feedback f_1..f_{t-1} after each; the action a_t is one
whole response; the reward r_t is the correctness of a_t's answer.

Context window (official `context_window 2`): from turn 2 on, only the `history` most recent
attempts (each with its feedback) stay in context, so test-time contexts of turn 5 look like the
2-turn contexts seen in training. The question message always stays: Hugging Face chat templates
require user/assistant alternation (the official code, on FastChat templates, also dropped it).
"""
from __future__ import annotations

from dataclasses import dataclass

from rise.errors import InputError
from rise.prompts import FEEDBACK_MODES, PromptPreset

Message = dict[str, str]


@dataclass(frozen=True)
class Attempt:
    """One action of an episode and how it was graded."""

    response: str
    answer: str | None
    reward: float

    @property
    def correct(self) -> bool:
        return self.reward == 1.0


def feedback_text(preset: PromptPreset, mode: str, question: str, attempt: Attempt) -> str:
    """The user turn after `attempt`.

    mode "incorrect" is the paper's: always the fixed "incorrect" line, whatever the truth, so no
    oracle leaks into the prompt. "oracle" tells the truth; "none" asks again with no verdict.
    """
    if mode not in FEEDBACK_MODES:
        raise InputError(f"unknown feedback mode {mode!r}; known: {', '.join(FEEDBACK_MODES)}")
    if mode == "oracle" and attempt.correct:
        return preset.correct_feedback
    answer = attempt.answer if attempt.answer is not None else "no answer"
    return preset.feedback[mode].format(question=question, answer=answer)


def prefix_messages(preset: PromptPreset) -> list[Message]:
    """System prompt and few-shot turns that precede the question."""
    msgs: list[Message] = []
    if preset.system:
        msgs.append({"role": "system", "content": preset.system})
    for user, assistant in preset.few_shot:
        msgs.append({"role": "user", "content": user})
        msgs.append({"role": "assistant", "content": assistant})
    return msgs


def render_state(
    question: str,
    attempts: list[Attempt],
    preset: PromptPreset,
    feedback: str = "incorrect",
    history: int | None = 1,
) -> list[Message]:
    """Messages of state s_{t}, t = len(attempts) + 1, ending with a user turn.

    history: how many of the most recent attempts stay in context (None = all; the paper's
    evaluation keeps 1). Dropped attempts vanish together with their feedback.
    """
    if history is not None and history < 0:
        raise InputError(f"history must be >= 0 or None, got {history}")
    msgs = prefix_messages(preset)
    msgs.append({"role": "user", "content": preset.question.format(question=question)})
    kept = attempts if history is None else attempts[max(0, len(attempts) - history):] if history else []
    for attempt in kept:
        msgs.append({"role": "assistant", "content": attempt.response})
        msgs.append({"role": "user", "content": feedback_text(preset, feedback, question, attempt)})
    return msgs


def with_response(messages: list[Message], response: str) -> list[Message]:
    """The conversation `messages` followed by the assistant's `response` (a training example)."""
    return [*messages, {"role": "assistant", "content": response}]


@dataclass
class EpisodeConfig:
    """How an episode is shown to the model (shared by collect and eval)."""

    preset: str = "default"          # prompt preset: default | paper
    feedback: str = "incorrect"      # none | incorrect | oracle
    history: int | None = 1          # most recent attempts kept in context (official: 1)

    def __post_init__(self):
        if self.feedback not in FEEDBACK_MODES:
            raise InputError(f"feedback must be one of {', '.join(FEEDBACK_MODES)}, got {self.feedback!r}")
        if self.history is not None and self.history < 0:
            raise InputError(f"history must be >= 0, got {self.history}")
        from rise.prompts import get_preset

        get_preset(self.preset)

    def render(self, question: str, attempts: list[Attempt]) -> list[Message]:
        from rise.prompts import get_preset

        return render_state(question, attempts, get_preset(self.preset), self.feedback, self.history)
