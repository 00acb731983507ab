"""Prompt presets: how a problem and the feedback between attempts are worded.

Two presets ship:
- `paper`: the official RISE prompts (an instruction with one worked example, the "Great job!"
  line before the real question, and the feedback
  `The answer is incorrect. Please try again. Here's the question: {query}`).
- `default`: the same feedback wording without the instruction and worked example, so that
  contexts stay short for small models (the embedded default sees thousands of them on a CPU).

Standard library only.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from rise.errors import InputError

FEEDBACK_MODES = ("none", "incorrect", "oracle")

# The official RISE prompts (cmu-mind/RISE, utils/template.py and environments/gsm8k.py): the
# first user turn is an instruction with a worked example problem, answered by the assistant; the
# real question follows a "Great job!" line, and every later user turn is the feedback line, which
# restates the question.
_PAPER_INSTRUCTION = """
You are an AI language model designed to assist with math problem-solving. In this task, I will provide you with math problems. Your goal is to solve the problem step-by-step, showing your reasoning at each step. After you have finished solving the problem, present your final answer as \\boxed{Your Answer}.

Here is the math word problem for you to solve:

Of the 60 students in the drama club, 36 take mathematics, 27 take physics and 20 students take both mathematics and physics. How many drama club students take neither mathematics nor physics?
"""
_PAPER_EXAMPLE = (
    "Step 1: To find the number of drama club students who take neither mathematics nor physics, "
    "we first need to determine the number of students taking only math, only physics, and both "
    "math and physics. Step 2: Out of the 60 students in the drama club, 36 take mathematics and "
    "27 take physics, and 20 students take both mathematics and physics. Step 3: To calculate the "
    "number of students taking only math, we subtract the number of students taking both from the "
    "total taking math: $36 - 20 = 16$. Step 4: Similarly, to calculate the number of students "
    "taking only physics, we subtract the number of students taking both from the total taking "
    "physics: $27 - 20 = 7$. Step 5: Now, to find the number of students taking neither math nor "
    "physics, we subtract the total number of students taking only math, only physics, and both "
    "from the total number of students in the drama club. This gives us "
    "$60 - 16 - 7 - 20 = \\boxed{17}$ students taking neither. Answer: \\boxed{17}"
)


@dataclass(frozen=True)
class PromptPreset:
    """Wording of one episode. Templates use `{question}` and `{answer}` (the last attempt's
    extracted answer, or "no answer")."""

    name: str
    question: str = "{question}"
    system: str | None = None
    few_shot: tuple[tuple[str, str], ...] = ()   # (user, assistant) pairs before the question
    feedback: dict[str, str] = field(default_factory=dict)  # feedback mode -> template
    correct_feedback: str = "That is correct."          # oracle mode, after a right answer
    # Self-Refine baseline (Madaan et al. 2023): the model critiques its answer, then revises it.
    critique: str = "Review your answer above step by step and point out any mistake in it."
    revise: str = "Using your review, give an improved answer. Here's the question: {question}"


_INCORRECT = "The answer is incorrect. Please try again. Here's the question: {question}"

PRESETS: dict[str, PromptPreset] = {
    "default": PromptPreset(
        name="default",
        feedback={
            # No correctness information: ask for another attempt at the same question.
            "none": "Please answer again. Here's the question: {question}",
            "incorrect": _INCORRECT,
            "oracle": "Your answer {answer} is incorrect. Please try again. Here's the question: {question}",
        },
    ),
    "paper": PromptPreset(
        name="paper",
        few_shot=((_PAPER_INSTRUCTION, _PAPER_EXAMPLE),),
        question="Great job! You've successfully answered the question. Now, let's move on to the next one.\n{question}",
        feedback={
            "none": "Please try again. Here's the question: {question}",
            "incorrect": _INCORRECT,
            "oracle": "Your answer {answer} is incorrect. Please try again. Here's the question: {question}",
        },
    ),
}


def get_preset(name: str) -> PromptPreset:
    try:
        return PRESETS[name]
    except KeyError:
        raise InputError(f"unknown prompt preset {name!r}; known: {', '.join(sorted(PRESETS))}") from None
