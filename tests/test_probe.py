"""The NLL probe (analysis (a)): which problems it keeps and what its two sets contain."""
from rise.episodes import EpisodeConfig
from rise.probe import probe_examples
from rise.tasks.base import Problem


def _problem(i, solution="2 + 2 = 4\n#### 4"):
    return Problem(id=f"p{i}", question=f"What is 2 + 2? ({i})", answer="4", solution=solution)


def test_probe_keeps_wrong_first_attempts_with_a_reference():
    problems = [_problem(0), _problem(1), _problem(2, solution=""), _problem(3)]
    first = [{"text": "#### 5", "answer": "5", "reward": 0.0},
             {"text": "#### 4", "answer": "4", "reward": 1.0},      # solved: nothing to probe
             {"text": "#### 3", "answer": "3", "reward": 0.0},      # no reference solution
             {"text": "no idea", "answer": None, "reward": -1.0}]
    ep = EpisodeConfig()
    sets = probe_examples(problems, first, ep)
    assert [r["problem_id"] for r in sets["alone"]] == ["p0", "p3"] == [r["problem_id"] for r in sets["multi_turn"]]
    for alone, multi, wrong in zip(sets["alone"], sets["multi_turn"], ("#### 5", "no idea"), strict=True):
        assert alone["messages"][-1] == multi["messages"][-1] == {"role": "assistant", "content": "2 + 2 = 4\n#### 4"}
        assert len(alone["messages"]) == 2
        # question, the wrong attempt, the feedback line, then the reference
        assert len(multi["messages"]) == 4 and multi["messages"][1] == {"role": "assistant", "content": wrong}
        assert multi["messages"][2]["role"] == "user"
