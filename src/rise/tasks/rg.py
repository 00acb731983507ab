"""`rg:<name>`: any reasoning-gym dataset (procedurally generated reasoning problems) as a task.

    task = get_task("rg:chain_sum", seed=0, min_terms=2, max_terms=3)
    problems = task.load("test", limit=100)

reasoning-gym (`pip install 'recursive-introspection[rg]'`, Apache-2.0) generates problems in code, offline, and
grades answers with each dataset's own verifier `dataset.score_answer(answer, entry)` (a score in
[0, 1]). It is imported only when an `rg:` task is built, never by `import rise`.

Options: this task's own (`seed`, `train_size`, `validation_size`, `test_size`,
`partial_credit`, `instruction`) plus every field of the dataset's reasoning-gym config (its
difficulty knobs, e.g. chain_sum's `min_terms`, `max_terms`, `min_digits`, `max_digits`;
`task_options("rg:chain_sum")` lists them). The config's own `seed` and `size` are set per split.

Splits: each split generates from its own reasoning-gym seed (a hash of `seed` and the split name,
so the streams of two splits never line up), and a question belongs to exactly one split, chosen
by its content hash (`problem_hash`: test 20%, validation 10%, train 70%), so test never overlaps
train whatever the sizes loaded; within a split, repeated questions are dropped. `load(split,
limit=n)` is a prefix of the full split.

Problems: the question is the dataset's question plus `instruction` (default: asks to end with
"The answer is <your answer>."; reasoning-gym's own `<answer>` tags are read too); the gold
answer is the dataset's `answer`, the solution a response stating it (`reference_solution`);
`meta` keeps `rg_dataset`, `rg_index`, `rg_metadata` (the entry's metadata after a JSON round
trip, so a rollout replayed from its record grades exactly as it was graded) and `hash`.

Answer extraction (`rg_answer`): of the last `<answer>...</answer>`, the last `\\boxed{...}` and
the last final-answer statement ("The answer is 42.", up to the end of its line or sentence), the
one that comes LAST in the response wins
(as for GSM8K). A tag or a box is taken as written (trimmed); a statement's clause loses its
markdown and math delimiters and a trailing period. No other fallback: a response that states no
answer has not answered (the "last number in the text" would grade free-form text as answers).

Reward: reasoning-gym's score is mapped like MATH, 1 when `score >= 1.0` (the verifier accepts the
answer as fully right) else 0; no answer scores 0. Several verifiers give small partial scores
for well-formed wrong answers (e.g. 0.01), which would turn "wrong" into a faint "right" and blur
the success rate RISE reports; `partial_credit=True` keeps the raw fractional score as the reward
instead. A final-answer statement whose whole clause does not score 1 ("292 legs") is scored again
by its number (`rise.tasks.answers.number_of`, the value after its last "="), since tagless small
models state answers in words; tags and boxes are not second-guessed.
"""
from __future__ import annotations

import difflib
import hashlib
import importlib.util
import json
import re
from dataclasses import fields
from pathlib import Path
from typing import Any

from .answers import (
    _BOX_RE,
    ANSWER_MARKER_RE,
    NOTHING,
    Extraction,
    _last_match,
    boxed_chain,
    number_of,
)
from .base import Grade, Problem, Task, TaskError, problem_hash

PREFIX = "rg:"
SPLITS = ("train", "validation", "test")
_BUCKETS = 20                                    # hash buckets: 0-3 test, 4-5 validation, rest train
# A statement, not reasoning-gym's <answer> tags (still read): asked for tags, SmolLM2-135M-Instruct
# wrote none in 30 of 30 chain_sum answers; asked for this statement, it stated a readable answer
# in 24 of 30 (docs/real-models.md). No example value: it copied one ("= 42") instead of computing.
INSTRUCTION = "\n\nEnd your response with: The answer is <your answer>."
_TAG_RE = re.compile(r"<answer>(.{0,4000}?)</answer>", re.DOTALL | re.IGNORECASE)
_OPEN_TAG_RE = re.compile(r"<answer>", re.IGNORECASE)
_OWN_CONFIG = ("seed", "size")                   # config fields this task sets itself
# a test problem takes ~5 draws (20% of the hash space), a validation one ~10; the rest is room
# for repeated questions before a too-small dataset is reported
_MAX_DRAWS_PER_PROBLEM = 40


def split_of(question: str) -> str:
    """The split that owns a question, from its content hash."""
    bucket = int(problem_hash(question), 16) % _BUCKETS
    return "test" if bucket < 4 else "validation" if bucket < 6 else "train"


def require_reasoning_gym():
    """The `reasoning_gym` module, or a one-line TaskError saying how to install it."""
    if importlib.util.find_spec("reasoning_gym") is None:
        raise TaskError("rg: tasks need reasoning-gym: pip install 'recursive-introspection[rg]' "
                        "(or pip install reasoning-gym)")
    import reasoning_gym
    return reasoning_gym


def dataset_names() -> list[str]:
    """Every reasoning-gym dataset name, sorted."""
    require_reasoning_gym()
    from reasoning_gym.factory import DATASETS
    return sorted(DATASETS)


def dataset_classes(name: str) -> tuple[type, type]:
    """(dataset class, config class) of one reasoning-gym dataset; TaskError naming close names."""
    require_reasoning_gym()
    from reasoning_gym.factory import DATASETS
    if name not in DATASETS:
        close = difflib.get_close_matches(name, DATASETS, n=5, cutoff=0.5)
        hint = f"close names: {', '.join(close)}" if close else f"e.g. {', '.join(sorted(DATASETS)[:5])}"
        raise TaskError(f"unknown reasoning-gym dataset {name!r} (task 'rg:{name}'); {hint}; "
                        f"{len(DATASETS)} datasets in all")
    return DATASETS[name]


def config_fields(name: str) -> list[str]:
    """The reasoning-gym config fields of dataset `name` that are options of `rg:<name>`."""
    return [f.name for f in fields(dataset_classes(name)[1]) if f.name not in _OWN_CONFIG]


def split_seed(seed: int, split: str) -> int:
    """reasoning-gym seed of one split: a hash, so that train's stream (item i uses seed + i) is
    not test's stream shifted by a few items, as consecutive seeds would be."""
    digest = hashlib.sha256(f"rise-rg:{seed}:{split}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % (2 ** 31)


def json_roundtrip(value: Any, what: str) -> Any:
    """`value` as it reads back from JSON (tuples become lists...); TaskError if it cannot be."""
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError) as e:
        raise TaskError(f"{what}: metadata is not JSON-serialisable ({e}); this reasoning-gym "
                        "dataset cannot be stored as rise problems") from None


# A statement's answer runs to the end of its line or sentence; unlike GSM8K's clause it does not
# stop at ", word" (list answers: "The answer is: his, content, the").
_SENTENCE_END_RE = re.compile(r"\n|[.!?](?=\s|$)")


def final_statement(text: str) -> Extraction:
    """The last final-answer statement ("The answer is ...") and its line or sentence."""
    for m in reversed(list(ANSWER_MARKER_RE.finditer(text))[-8:]):
        chunk = text[m.end():m.end() + 2000]
        end = _SENTENCE_END_RE.search(chunk)
        clause = chunk[:end.start()] if end else chunk
        if clause.strip():
            return Extraction(clause.strip(), "final_answer", m.start())
    return NOTHING


def _clean_clause(clause: str) -> str:
    s = clause.strip()
    for junk in ("**", "\\(", "\\)", "\\[", "\\]", "$", "`"):
        s = s.replace(junk, "")
    s = s.strip().rstrip(".").strip()
    if len(s) >= 2 and s[0] == s[-1] and s[0] in "\"'":       # 'The answer is "olleh".'
        s = s[1:-1].strip()
    return s


def rg_answer(text: str) -> Extraction:
    """The answer a response states, and the step that read it ("tag", "boxed", "final_answer");
    see the module doc for the order."""
    if not isinstance(text, str):
        return NOTHING
    found = []
    tag = _last_match(_TAG_RE, text)
    if tag is not None:
        found.append(Extraction(tag.group(1).strip() or None, "tag", tag.start()))
    last_open = _last_match(_OPEN_TAG_RE, text)
    if last_open is not None and (tag is None or last_open.start() > tag.start()):
        found.append(Extraction(None, "tag", last_open.start()))   # a tag that never closes
    box = boxed_chain(text) if _BOX_RE.search(text) else NOTHING
    if box.step:
        found.append(box)
    stated = final_statement(text)
    if stated.answer is not None:
        found.append(Extraction(_clean_clause(stated.answer) or None, "final_answer", stated.start))
    if not found:
        return NOTHING
    return max(found, key=lambda e: e.start)   # a box inside a statement starts later: it wins


def reference_solution(gold: str) -> str:
    """A response stating `gold` (reasoning-gym has no worked solutions): "The answer is X." as the
    default instruction asks, or `<answer>X</answer>` when a statement would not read back as X
    (a multi-line grid, an answer with a full stop inside)."""
    stated = f"The answer is {gold}."
    return stated if rg_answer(stated).answer == gold.strip() else f"<answer>{gold}</answer>"


class ReasoningGymTask(Task):
    """One reasoning-gym dataset; `get_task("rg:<name>", ...)` builds it."""

    unparseable_reward = 0.0

    def __init__(self, dataset: str, *, seed: int = 0, train_size: int = 5000,
                 validation_size: int = 200, test_size: int = 200, partial_credit: bool = False,
                 instruction: str = INSTRUCTION, **config: Any):
        self.dataset = str(dataset)
        self.name = PREFIX + self.dataset
        dataset_cls, config_cls = dataset_classes(self.dataset)
        allowed = config_fields(self.dataset)
        unknown = sorted(set(config) - set(allowed))
        if unknown:
            raise TaskError(f"task {self.name!r}: unknown option(s) {', '.join(unknown)}; "
                            f"dataset options: {', '.join(allowed)}")
        self.seed, self.partial_credit, self.instruction = int(seed), bool(partial_credit), str(instruction)
        self.config = dict(config)
        self.sizes = {"train": int(train_size), "validation": int(validation_size),
                      "test": int(test_size)}
        self._datasets: dict[str, Any] = {}
        self._scorer = self._make("train", 1)         # validates the config once, up front

    def _make(self, split: str, size: int):
        from reasoning_gym import create_dataset
        try:
            return create_dataset(self.dataset, seed=split_seed(self.seed, split), size=size,
                                  **self.config)
        except (TypeError, ValueError, AssertionError) as e:
            raise TaskError(f"task {self.name!r}: bad options {self.config}: {e}") from None

    # -- data ------------------------------------------------------------------------------------
    def load(self, split: str, path: str | Path | None = None,
             limit: int | None = None) -> list[Problem]:
        """Generated problems of `split` (train/validation/test); `limit` = how many (default the
        split's size option). With `path`, read a JSONL file of problem records (`Problem.to_dict`
        rows, e.g. saved by an earlier run)."""
        if path is not None:
            return self._read(path, limit)
        if split not in SPLITS:
            raise TaskError(f"{self.name}: unknown split {split!r}; splits: {', '.join(SPLITS)}")
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
            raise TaskError(f"limit must be a non-negative integer or None, got {limit!r}")
        return self.generate(split, self.sizes[split] if limit is None else limit)

    def generate(self, split: str, n: int) -> list[Problem]:
        """The first `n` distinct problems of `split` for this seed and these options."""
        draws = _MAX_DRAWS_PER_PROBLEM * n + 100
        data = self._make(split, draws)
        seen: set[str] = set()
        problems: list[Problem] = []
        for index in range(draws):
            if len(problems) >= n:
                break
            entry = data[index]
            question = str(entry["question"]).rstrip() + self.instruction
            h = problem_hash(question)
            if h in seen or split_of(question) != split:
                continue
            seen.add(h)
            gold = str(entry["answer"])
            meta = {"hash": h, "rg_dataset": self.dataset, "rg_index": index,
                    "rg_question": entry["question"],
                    "rg_metadata": json_roundtrip(entry.get("metadata", {}), f"{self.name} item {index}")}
            problems.append(Problem(id=f"rg-{self.dataset}-{split}-{len(problems):05d}",
                                    question=question, solution=reference_solution(gold),
                                    answer=gold, meta=meta))
        if len(problems) < n:
            raise TaskError(f"{self.name}: only {len(problems)} distinct {split} problems after "
                            f"{draws} draws; ask for fewer or widen the dataset options")
        return problems

    def _read(self, path: str | Path, limit: int | None) -> list[Problem]:
        from .loaders import iter_jsonl_rows
        src = Path(path)
        if not src.is_file():
            raise TaskError(f"{src}: no such file")
        out = []
        for loc, row in iter_jsonl_rows(src):
            if limit is not None and len(out) >= limit:
                break
            try:
                out.append(Problem.from_dict(row))
            except (KeyError, TypeError) as e:
                raise TaskError(f"{loc}: not a problem record ({e})") from None
        return out

    # -- grading ---------------------------------------------------------------------------------
    def extract(self, text: str) -> Extraction:
        return rg_answer(text)

    def score(self, answer: str | None, problem: Problem) -> float:
        """reasoning-gym's own score of an answer string, in [0, 1] (0 for no answer)."""
        if answer is None:
            return 0.0
        entry = {"question": problem.meta.get("rg_question", problem.question),
                 "answer": problem.answer, "metadata": problem.meta.get("rg_metadata", {})}
        try:
            return float(self._scorer.score_answer(answer, entry))
        except Exception:       # a verifier that chokes on a malformed answer: it is wrong
            return 0.0

    def is_equivalent(self, predicted: str, gold: str) -> bool:
        return predicted is not None and predicted.strip() == str(gold).strip()

    def judge(self, response: str, problem: Problem) -> Grade:
        found = self.extract(response)
        if found.answer is None:
            return Grade(None, self.unparseable_reward, found.step)
        answer, score = found.answer, self.score(found.answer, problem)
        if score < 1.0 and found.step == "final_answer":
            num = number_of(answer)
            if num is not None and num != answer:
                num_score = self.score(num, problem)
                if num_score > score:
                    answer, score = num, num_score
        reward = score if self.partial_credit else (1.0 if score >= 1.0 else 0.0)
        return Grade(answer, reward, found.step)
