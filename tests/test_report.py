"""report.json keyed by model name with the paper's metric names; report.md; a valid PNG."""
import json

import pytest

from rise.report import build_report, markdown_table, render_markdown, write_report

PAPER_NAMES = ["m1@t1", "m5@t1", "p5@t1", "m1@t5", "p1@t5"]


def metrics(acc1, step):
    """A metrics dict shaped like rise.metrics.episode_metrics for K = T = 5."""
    acc = [min(1.0, acc1 + step * t) for t in range(5)]
    return {"n": 100, "K": 5, "T": 5, "m1@t1": acc[0], "m5@t1": acc[0] + 0.05,
            "p5@t1": min(1.0, acc[0] + 0.2), "m1@t5": acc[-1], "p1@t5": min(1.0, acc[-1] + 0.1),
            "turn_acc": acc, "cumulative_oracle_acc": [min(1.0, a + 0.02) for a in acc],
            "turn_acc_after_wrong": [None, 0.63, 0.2, 0.1, 0.05],
            "flips": {"wrong_to_right": 0.1, "right_to_wrong": 0.02, "wrong_to_right_n": 40,
                      "right_to_wrong_n": 8, "transitions": 400},
            "flows": {"i2c": [0.12, 0.05, 0.02, 0.01], "c2i": [0.03, 0.04, 0.0, 0.01]},
            "no_answer_rate": 0.01}


RESULTS = {"base": metrics(0.436, -0.1), "rise-iter1": {**metrics(0.906, -0.01), "label": "RISE",
                                                        "wall_s": 12.5}}


def test_write_report_files(tmp_path):
    transcripts = [{"model": "base", "problem_id": "p1", "gold": "5",
                    "turns": [{"text": "x ``` y", "answer": "4", "reward": 0.0},
                              {"text": "ok", "answer": "5", "reward": 1.0}]}, "plain text"]
    paths = write_report(tmp_path / "out", RESULTS, title="Probe", notes=["a note"],
                         transcripts=transcripts)
    assert set(paths) == {"json", "md", "png", "flows_png"}
    for p in paths.values():
        assert p.is_file() and p.stat().st_size > 0
    assert sorted(f.name for f in (tmp_path / "out").iterdir()) == [
        "accuracy_by_turn.png", "flows_by_turn.png", "report.json", "report.md"]  # no temp files left

    report = json.loads(paths["json"].read_text())
    assert set(report) == {"base", "rise-iter1"}                     # top level keyed by name
    for name in report:
        for key in PAPER_NAMES:
            assert 0.0 <= report[name][key] <= 1.0
        assert isinstance(report[name]["turn_acc"], list) and len(report[name]["turn_acc"]) == 5
    assert report["rise-iter1"]["label"] == "RISE" and report["rise-iter1"]["wall_s"] == 12.5
    assert [report[n]["meta"]["order"] for n in ("base", "rise-iter1")] == [0, 1]

    for key in ("png", "flows_png"):
        assert paths[key].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    md = paths["md"].read_text()
    assert md.startswith("# Probe")
    rows = [line for line in md.splitlines() if line.startswith("| ")]
    assert any("`base`" in line for line in rows)
    assert any("RISE (`rise-iter1`)" in line for line in rows)
    assert "most recent" in md and "a note" in md and "````" in md  # tie rule, notes, safe fence


def test_markdown_table_values_and_columns():
    table = markdown_table(RESULTS)
    header, _, base_row, _ = table.splitlines()
    cols = [c.strip() for c in header.strip("|").split("|")]
    assert cols[:7] == ["method", "n"] + PAPER_NAMES
    assert cols[7:12] == [f"turn {t}" for t in range(1, 6)]
    cells = [c.strip() for c in base_row.strip("|").split("|")]
    assert cells[2] == "43.6"                                        # m1@t1 as a percentage
    assert cells[cols.index("t2 after wrong t1")] == "63.0"
    assert cells[cols.index("W→R")] == "10.0"


def test_missing_values_render_as_dash_and_mixed_K():
    results = {"a": {"n": 1, "K": 3, "T": 1, "m1@t1": 1.0, "m3@t1": 1.0, "p3@t1": None,
                     "turn_acc": [1.0]},
               "b": {"n": 1, "K": 5, "T": 1, "m1@t1": 0.0, "turn_acc": [0.0]}}
    table = markdown_table(results)
    assert "m3@t1" in table and "m5@t1" in table and "–" in table
    assert "t2 after wrong t1" not in table                          # T == 1: no transitions


def test_build_report_errors_and_copy():
    with pytest.raises(ValueError):
        build_report({})
    with pytest.raises(ValueError, match="bad"):
        build_report({"bad": [0.1]})
    src = {"x": {"m1@t1": 0.5}}
    build_report(src)
    assert "meta" not in src["x"]                                    # input left untouched


def test_render_markdown_without_optional_sections():
    md = render_markdown(RESULTS)
    assert "## Notes" not in md and "## Transcripts" not in md and "accuracy_by_turn.png" in md
    one_turn = {"a": {"n": 1, "K": 1, "T": 1, "m1@t1": 1.0, "turn_acc": [1.0], "flows": {"i2c": [], "c2i": []}}}
    assert "flows_by_turn.png" not in render_markdown(one_turn)


def test_flows_table_per_transition():
    from rise.report import flows_table

    header, _, base_row, rise_row = flows_table(RESULTS).splitlines()
    cols = [c.strip() for c in header.strip("|").split("|")]
    assert cols == ["method"] + [f"{t - 1}→{t} (i→c / c→i)" for t in range(2, 6)]
    assert [c.strip() for c in base_row.strip("|").split("|")][1:3] == ["12.0 / 3.0", "5.0 / 4.0"]
    assert "## Flows between turns" in render_markdown(RESULTS)


def test_imports_stay_light():
    import subprocess
    import sys
    code = ("import sys, rise.report, rise.metrics; "
            "print(sorted(m for m in ('matplotlib', 'torch', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_report_transcripts_are_rise_chains_that_start_wrong_and_turn_right():
    from rise.evaluate import wrong_to_right_examples

    def ep(model, rewards):
        return {"model": model, "turns": [{"reward": r} for r in rewards]}

    eps = [ep("base", [0.0, 1.0]), ep("rise-iter1", [1.0, 0.0, 1.0]), ep("rise-iter1", [0.0, 0.0]),
           ep("rise-iter1", [-1.0, 0.0, 1.0]), ep("classic-sft", [0.0, 1.0])]
    got = wrong_to_right_examples(eps, limit=2)
    assert got == [eps[3], eps[0]]
