"""The paper's analyses: edit sizes between attempts, problems beyond pass@B."""
import pytest

from rise.analysis import beyond_pass_at_b, edit_fraction, edit_sizes, eval_analyses, histogram


def t(text, reward):
    return {"text": text, "answer": None, "reward": reward}


@pytest.mark.parametrize("a,b,lo,hi", [("same", "same", 0.0, 0.0), ("abcdefghij", "abcdefghiX", 0.05, 0.15),
                                        ("aaaa", "zzzz", 1.0, 1.0)])
def test_edit_fraction(a, b, lo, hi):
    assert lo <= edit_fraction(a, b) <= hi


def test_histogram_bins():
    h = histogram([0.0, 0.01, 0.1, 0.3, 0.9, 1.0], (0.0, 0.05, 0.2, 0.5, 1.0))
    assert h == {"identical": 1 / 6, "0%-5%": 1 / 6, "5%-20%": 1 / 6, "20%-50%": 1 / 6, "50%-100%": 2 / 6}


def test_edit_sizes_counts_transitions_after_wrong_turns():
    eps = [{"turns": [t("x = 5\n#### 5", 0.0), t("x = 6\n#### 6", 1.0), t("x = 6\n#### 6", 1.0)]},
           {"turns": [t("abc", 0.0), t("abc", 0.0)]}]
    e = edit_sizes(eps)
    assert e["n_all"] == 2 and e["n_wrong_to_right"] == 1
    assert e["all"]["identical"] == 0.5 and e["wrong_to_right"]["identical"] == 0.0


def test_beyond_pass_at_b():
    par = [{"problem_id": "a", "parallel": [t("", 0.0), t("", 1.0)]},
           {"problem_id": "b", "parallel": [t("", 0.0), t("", 0.0)]},
           {"problem_id": "c", "parallel": [t("", 1.0), t("", 0.0)]}]
    seq = [{"problem_id": "a", "turns": [t("", 0.0), t("", 1.0)]},
           {"problem_id": "b", "turns": [t("", 0.0), t("", 1.0)]},
           {"problem_id": "c", "turns": [t("", 0.0), t("", 0.0)]}]
    assert beyond_pass_at_b(par, seq, [1, 2]) == {1: 2 / 3, 2: 1 / 3}
    with pytest.raises(ValueError, match="need 4"):
        beyond_pass_at_b(par, seq, [4])


def test_eval_analyses_per_model_against_itself_and_the_base(tmp_path):
    from rise.metrics import episode_metrics
    from rise.report import write_report

    def ep(pid, par, seq, model):
        return {"model": model, "problem_id": pid, "question": f"What is {pid}?",
                "parallel": [t(x, r) for x, r in par], "turns": [t(x, r) for x, r in seq]}

    base = [ep("a", [("1", 0.0), ("2", 1.0)], [("1", 0.0), ("1", 0.0)], "base"),
            ep("b", [("1", 0.0), ("1", 0.0)], [("1", 0.0), ("1", 0.0)], "base")]
    rise = [ep("a", [("1", 0.0), ("1", 0.0)], [("1", 0.0), ("2", 1.0)], "rise-iter1"),
            ep("b", [("1", 0.0), ("2", 1.0)], [("1", 0.0), ("2", 1.0)], "rise-iter1")]
    found = eval_analyses({"base": base, "rise-iter1": rise})
    assert found["base"]["beyond_own"] == {"1": 0.0, "2": 0.0} and "beyond_reference" not in found["base"]
    # rise's chain solves a and b; its own 2 samples solve b only; the base's 2 samples solve a only
    assert found["rise-iter1"]["beyond_own"] == {"1": 1.0, "2": 0.5}
    assert found["rise-iter1"]["beyond_reference"] == {"1": 1.0, "2": 0.5}
    assert found["base"]["edit_sizes"]["all"]["identical"] == 1.0
    results = {n: {**episode_metrics(e), "analyses": found[n]} for n, e in (("base", base), ("rise-iter1", rise))}
    paths = write_report(tmp_path, results, transcripts=rise[:1])
    assert paths["analyses_png"].read_bytes()[:4] == b"\x89PNG"
    md = paths["md"].read_text()
    assert "## Analyses" in md and "beyond base pass@2" in md and "What is a?" in md
    section = md.split("## Analyses")[1]
    row = next(line for line in section.splitlines() if line.startswith("| `rise-iter1`"))
    assert row.split("|")[2:6] == [" 100.0 ", " 50.0 ", " 100.0 ", " 50.0 "]


def test_hostile_answers_are_counted_in_the_report_notes():
    from rise.evaluate import grader_notes
    from rise.tasks import get_task

    task = get_task("math", verify_timeout=2.0)
    from rise.tasks.base import Problem

    prob = Problem(id="p", question="q", solution="\\boxed{1}", answer="1")
    hostile = ["\\boxed{" + "{" * 5000 + "}" * 5000 + "}", "\\boxed{" + "9" * 200_000 + "}",
               "\\boxed{10^{10^{10^{10}}}}"]
    assert all(task.reward(h, prob) == 0.0 for h in hostile)
    notes = grader_notes(dict(task.grader_stats))
    assert notes and "too_long" in notes[0]
    assert grader_notes({"timeouts": 0}) == []
