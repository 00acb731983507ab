"""rise's graders against verdicts no one here wrote: the peers' own test tables in
tests/peer_tables/ (Math-Verify, hendrycks/math, Qwen2.5-Math, lm-evaluation-harness; each file
names its source and license). Agreement is printed per table and kind (run with -s to see it)
and must reach the issue-11 thresholds: 97% of plain answer forms and 75% of prose outputs (all
rows, and the non-debatable ones), 98% of the non-debatable GSM8K and Minerva-format outputs. A
debatable row is a peer convention rise knowingly differs on (its reason is in the row)."""
from __future__ import annotations

from collections import Counter

import pytest

from peer_tables import KINDS, grade_row, load_tables

THRESHOLDS = {"plain": 0.97, "prose": 0.75, "gsm8k": 0.98, "minerva": 0.98}
MAX_DEBATABLE_SHARE = 0.05      # debatable rows are a few named conventions, not a loophole


@pytest.fixture(scope="module")
def outcomes():
    """(table, row, rise's verdict, rise's Grade) for every row of every table."""
    out = []
    for table, rows in load_tables().items():
        for row in rows:
            grade = grade_row(row)
            out.append((table, row, int(grade.reward == 1.0), grade))
    return out


def agreement(outcomes, kind: str, with_debatable: bool) -> tuple[int, int]:
    rows = [(r, v) for _, r, v, _ in outcomes
            if r["kind"] == kind and (with_debatable or not r.get("debatable"))]
    return sum(v == r["expected"] for r, v in rows), len(rows)


def report(outcomes) -> str:
    """Agreement per table and kind, then the rows rise disagrees on."""
    ok, total = Counter(), Counter()
    for table, row, v, _ in outcomes:
        key = (table, row["kind"], "debatable" if row.get("debatable") else "")
        total[key] += 1
        ok[key] += v == row["expected"]
    lines = [f"{t:16s} {k:8s} {d:10s} {ok[(t, k, d)]:4d}/{n:<4d} {ok[(t, k, d)] / n:6.1%}"
             for (t, k, d), n in sorted(total.items())]
    for _table, row, v, grade in outcomes:
        if v != row["expected"]:
            flag = ", debatable" if row.get("debatable") else ""
            lines.append(f"  disagree [{row['kind']}{flag}] {row['source']}: expected "
                         f"{row['expected']}, rise read {grade.answer!r} ({grade.extracted_by}) "
                         f"against {row['gold'][:60]!r}")
    return "\n".join(lines)


def test_tables_are_well_formed():
    tables = load_tables()
    assert tables, "no peer tables found"
    for table, rows in tables.items():
        assert rows, table
        for row in rows:
            assert row["kind"] in KINDS and row["expected"] in (0, 1), row
            assert row["source"].strip() and isinstance(row["response"], str), row
        debatable = [r for r in rows if r.get("debatable")]
        assert all(len(r["debatable"]) > 20 for r in debatable), "a debatable row needs a reason"
        assert len(debatable) <= max(2, MAX_DEBATABLE_SHARE * len(rows)), table


@pytest.mark.parametrize("kind", KINDS)
def test_agreement_with_peer_tables(outcomes, kind):
    print("\n" + report(outcomes))
    ok, n = agreement(outcomes, kind, with_debatable=False)
    all_ok, all_n = agreement(outcomes, kind, with_debatable=True)
    assert n > 0, f"no {kind} rows"
    print(f"{kind}: rise agrees with the peers on {ok}/{n} = {ok / n:.1%} of the non-debatable rows"
          f" ({all_ok}/{all_n} = {all_ok / all_n:.1%} of all)")
    assert ok / n >= THRESHOLDS[kind], report(outcomes)
    if kind in ("plain", "prose"):                   # here debatable rows count as well
        assert all_ok / all_n >= THRESHOLDS[kind], report(outcomes)


def test_gsm8k_no_answer_keeps_its_reward():
    """The GSM8K reward scale is unchanged: 1 right, 0 wrong, -1 no final answer."""
    rows = [{"kind": "gsm8k", "gold": "6", "response": r} for r in
            ("So 21 - 15 = 6. The answer is 6.", "The answer is 7.", "I am not sure.")]
    assert [grade_row(r).reward for r in rows] == [1.0, 0.0, -1.0]
