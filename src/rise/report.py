"""Evaluation report: report.json, report.md, accuracy_by_turn.png, flows_by_turn.png and
analyses.png from per-model metrics.

report.json is keyed by model or method name at the top level, each entry holding the metrics of
`rise.metrics.episode_metrics` under the paper's names (fractions in [0, 1]) plus a "meta" dict;
nothing else sits at the top level, so `report[name]["m1@t1"]` always works. With eval.tasks
(rise.ood), an entry's "ood" holds its metrics on each extra task. report.md mirrors the paper's
Table 1 in percent, and its Table 3 in an "Out of distribution" section. The plot needs
matplotlib, imported only when the plot is drawn, and uses the Agg canvas directly (no pyplot, no
global backend switch). Writes are atomic.
"""
from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rise.metrics import TIE_RULE
from rise.records import atomic_open, write_json, write_text

DASH = "–"


def build_report(results: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """The report.json object: {name: metrics + {"meta": {...}}}, one entry per model or method.

    Extra fields of a result ("label", "wall_s", ...) are kept; its position in `results` is saved
    as meta["order"] because report.json is written with sorted keys.
    """
    if not results:
        raise ValueError("build_report: no results")
    report: dict[str, dict[str, Any]] = {}
    for i, (name, metrics) in enumerate(results.items()):
        if not isinstance(metrics, Mapping):
            raise ValueError(f"build_report: result {name!r} is not a dict of metrics")
        entry = dict(metrics)
        entry["meta"] = {**dict(entry.get("meta") or {}), "order": i}
        report[str(name)] = entry
    return report


def _pct(x: Any) -> str:
    """A fraction as a percentage with one decimal; missing or undefined values as a dash."""
    return DASH if x is None else f"{100 * x:.1f}"


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _headline_columns(results: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Paper's headline metric names present in any result, in Table 1 order (K, T may differ)."""
    Ks = sorted({r["K"] for r in results.values() if r.get("K")})
    Ts = sorted({r["T"] for r in results.values() if r.get("T")})
    cols = ["m1@t1"] + [f"{p}{k}@t1" for k in Ks for p in ("m", "p")]
    cols += [f"{p}1@t{t}" for t in Ts for p in ("m", "p")]
    seen: list[str] = []
    for c in cols:
        if c not in seen:
            seen.append(c)
    return seen


def _row_name(name: str, metrics: Mapping[str, Any]) -> str:
    label = metrics.get("label")
    return f"{label} (`{name}`)" if label and label != name else f"`{name}`"


def markdown_table(results: Mapping[str, Mapping[str, Any]]) -> str:
    """Table 1 of the paper in percent: one row per method, headline metrics, per-turn accuracy,
    accuracy at turn 2 after a wrong turn 1, flips and the no-answer rate."""
    heads = _headline_columns(results)
    T = max((len(r.get("turn_acc") or []) for r in results.values()), default=0)
    cols = (["method", "n"] + heads + [f"turn {t}" for t in range(1, T + 1)]
            + (["t2 after wrong t1", "W→R", "R→W"] if T > 1 else []) + ["no answer"])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for name, r in results.items():
        acc = list(r.get("turn_acc") or [])
        after = list(r.get("turn_acc_after_wrong") or [])
        flips = r.get("flips") or {}
        row = [_cell(_row_name(name, r)), str(r.get("n", DASH))]
        row += [_pct(r.get(c)) for c in heads]
        row += [_pct(acc[t] if t < len(acc) else None) for t in range(T)]
        if T > 1:
            row += [_pct(after[1] if len(after) > 1 else None),
                    _pct(flips.get("wrong_to_right")), _pct(flips.get("right_to_wrong"))]
        row.append(_pct(r.get("no_answer_rate")))
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


SELF_CORRECTION = [("acc@t1", "Acc@t1"), ("acc@t2", "Acc@t2"), ("d_t1_t2", "Δ(t1,t2)"),
                   ("d_i2c", "Δi→c"), ("d_c2i", "Δc→i"), ("fix_rate", "fix rate")]


def _interval(r: Mapping[str, Any], key: str) -> str:
    ci = (r.get("ci95") or {}).get(key)
    return f"{_pct(r.get(key))} [{_pct(ci[0])}, {_pct(ci[1])}]" if ci else _pct(r.get(key))


def self_correction_table(results: Mapping[str, Mapping[str, Any]]) -> str:
    """SCoRe's self-correction metrics (turn 1 -> 2 of the no-oracle chain) and the headline
    metrics with their 95% bootstrap intervals over problems, in percent."""
    heads = _headline_columns(results)
    cols = ["method"] + [label for _, label in SELF_CORRECTION] + [f"{h} [95% CI]" for h in heads]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for name, r in results.items():
        row = [_cell(_row_name(name, r))] + [_pct(r.get(key)) for key, _ in SELF_CORRECTION]
        row += [_interval(r, h) for h in heads]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


LEGEND = """\
All values are percentages of evaluated problems (n). A response is correct iff its reward is 1.
- **m1@t1**: turn 1 of the sequential chain is correct (one sample, one turn).
- **mK@t1**: the majority answer of K independent turn-1 samples is correct (compute-matched
  parallel baseline). **pK@t1**: any of the K samples is correct.
- **m1@tT**: one chain of T turns, no oracle: the majority answer over its T turns is correct.
- **p1@tT**: the same chain with oracle early stop: any of its T turns is correct.
- **turn t**: accuracy at turn t of the chain, which always runs to T with the {feedback}
  after every turn (no early stop). **t2 after wrong t1**: accuracy at turn 2 among problems whose
  turn 1 was wrong, the direct measure of self-correction.
- **W→R / R→W**: share of consecutive-turn transitions that flip wrong to right / right to wrong.
- **no answer**: share of sequential turns with no extractable answer.
- **Flows t-1→t**: share of all problems wrong at turn t-1 and right at turn t (i→c), and right
  then wrong (c→i); the net gain of turn t is their difference.
- **Acc@t1, Acc@t2, Δ(t1,t2), Δi→c, Δc→i, fix rate** (SCoRe, Kumar et al. 2024): accuracy at turns
  1 and 2 of the chain, their difference, the share of problems wrong at turn 1 and right at turn
  2 (and the reverse), and Δi→c / (1 - Acc@t1). **[95% CI]**: percentile bootstrap over problems
  (1,000 resamples, the same for every metric).
"""


def has_flows(results: Mapping[str, Mapping[str, Any]]) -> bool:
    """Whether any method's chain has a transition between turns (T >= 2) to show."""
    return any((r.get("flows") or {}).get("i2c") for r in results.values())


def flows_table(results: Mapping[str, Mapping[str, Any]]) -> str:
    """Per model and transition t-1 -> t: the share of problems wrong then right (i→c) and right
    then wrong (c→i), in percent, as "i→c / c→i"."""
    T = max((len((r.get("flows") or {}).get("i2c") or []) for r in results.values()), default=0) + 1
    cols = ["method"] + [f"{t - 1}→{t} (i→c / c→i)" for t in range(2, T + 1)]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for name, r in results.items():
        flows = r.get("flows") or {}
        i2c, c2i = list(flows.get("i2c") or []), list(flows.get("c2i") or [])
        row = [_cell(_row_name(name, r))]
        row += [f"{_pct(i2c[t])} / {_pct(c2i[t])}" if t < len(i2c) else DASH for t in range(T - 1)]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def has_analyses(results: Mapping[str, Mapping[str, Any]]) -> bool:
    return any(r.get("analyses") for r in results.values())


def analyses_table(results: Mapping[str, Mapping[str, Any]]) -> str:
    """The paper's analyses per model (`rise.analysis.eval_analyses`), in percent: problems its
    chain solves that B of its own / the base's parallel samples never solve (B = 1 and K), and
    the edit size between consecutive turns after a wrong one."""
    K = max((len(r["analyses"]["beyond_own"]) for r in results.values() if r.get("analyses")), default=1)
    budgets = sorted({1, K})
    cols = (["method"] + [f"beyond own pass@{b}" for b in budgets] + [f"beyond base pass@{b}" for b in budgets]
            + ["edits after wrong (n)", "median edit", "identical", "median edit, wrong→right"])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for name, r in results.items():
        a = r.get("analyses")
        if not a:
            continue
        own, ref, ed = a.get("beyond_own") or {}, a.get("beyond_reference") or {}, a["edit_sizes"]
        row = [_cell(_row_name(name, r))] + [_pct(own.get(str(b))) for b in budgets]
        row += [_pct(ref.get(str(b))) for b in budgets]
        row += [str(ed["n_all"]), _pct(ed["median_all"]), _pct(ed["all"].get("identical") if ed["n_all"] else None),
                _pct(ed["median_wrong_to_right"])]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


ANALYSES_LEGEND = """\
**beyond own / base pass@B**: share of problems that none of the first B turn-1 samples of the
model itself / of `base` solves but the model's sequential chain solves at some turn (paper,
Sec. 6: sequential improvement is not just more sampling). **edits after wrong**: consecutive
turn pairs whose first turn is wrong; **median edit**: the median share of characters changed
(1 - difflib ratio); **identical**: share of those where the whole response is repeated verbatim.
"""


def has_ood(results: Mapping[str, Mapping[str, Any]]) -> bool:
    return any(r.get("ood") for r in results.values())


def ood_by_task(results: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Mapping[str, Any]]]:
    """{task entry: {row: metrics}} from the rows' "ood" metrics (rise.ood): entries in the order
    they first appear, rows in the results' order."""
    out: dict[str, dict[str, Mapping[str, Any]]] = {}
    for name, r in results.items():
        for label, metrics in (r.get("ood") or {}).items():
            out.setdefault(label, {})[name] = metrics
    return out


def ood_section(results: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The "Out of distribution" section (the paper's Table 3): per extra task, the main table's
    columns for every row evaluated on it, with the task, split and data it was measured on."""
    out = ["## Out of distribution\n",
           "The same rows, turns, samples and episode format, on other tasks than the one above "
           "(`eval.tasks`); each task's full report is in its folder.\n"]
    for label, rows in ood_by_task(results).items():
        first = next(iter(rows.values()))
        meta = first.get("meta") or {}
        options = meta.get("task_options") or {}
        what = [f"task `{meta.get('task')}`"] + ([f"options `{_cell(json.dumps(options))}`"] if options else [])
        what += [f"{meta.get('split')} split"] + ([f"data `{meta['data_path']}`"] if meta.get("data_path") else [])
        out += [f"### {_cell(label)}\n",
                f"{', '.join(what)}; n={first.get('n', DASH)}; report: `{meta.get('folder')}/report.md`.\n",
                markdown_table(rows)]
    return out


def _fence(text: str) -> str:
    """A code fence longer than any backtick run in `text`, so transcripts cannot break out."""
    run = longest = 0
    for ch in text:
        run = run + 1 if ch == "`" else 0
        longest = max(longest, run)
    return "`" * max(3, longest + 1)


def _transcript_md(item: Any, max_chars: int = 1500) -> str:
    """An episode record (turn by turn, with answers and rewards) or a plain string as markdown."""
    if isinstance(item, str):
        f = _fence(item)
        return f"{f}\n{item}\n{f}\n"
    head = " · ".join(f"{k}: `{item[k]}`" for k in ("model", "problem_id", "gold") if k in item)
    parts = [f"**{head}**\n" if head else ""]
    if item.get("question"):
        q = str(item["question"])
        f = _fence(q)
        parts.append(f"Question\n\n{f}\n{q}\n{f}\n")
    for t, resp in enumerate(item.get("turns") or [], 1):
        text = str(resp.get("text", ""))
        if len(text) > max_chars:
            text = text[:max_chars] + " …"
        f = _fence(text)
        parts.append(f"Turn {t} · answer `{resp.get('answer')}` · reward {resp.get('reward')}\n\n"
                     f"{f}\n{text}\n{f}\n")
    return "\n".join(parts)


FEEDBACK_WORDS = {
    "incorrect": '"incorrect" feedback (whatever the truth, so no oracle leaks into the prompt)',
    "none": "question asked again with no verdict",
    "oracle": "ORACLE feedback (the true verdict: m1@tT and the turn accuracies are not no-oracle figures)",
}


def episode_format(results: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The episode format the results were measured with (meta.episode, the same for every row)."""
    for metrics in results.values():
        ep = (metrics.get("meta") or {}).get("episode")
        if ep:
            return dict(ep)
    return {}


def describe_episode(ep: Mapping[str, Any]) -> str:
    """One line stating the prompt preset, the feedback after each turn and the context window."""
    if not ep:
        return "Episode format: not recorded."
    history = "all earlier attempts" if ep.get("history") is None else f"the last {ep['history']} attempt(s)"
    return (f"Episode format: prompt preset `{ep.get('preset')}`, feedback `{ep.get('feedback')}` after "
            f"every turn, context holds the question and {history}.")


def render_markdown(results: Mapping[str, Mapping[str, Any]], title: str = "RISE evaluation",
                    notes: str | Sequence[str] | None = None,
                    transcripts: Sequence[Any] | None = None) -> str:
    """The whole report.md: title, table, plot link, legend with the tie rule, notes, transcripts."""
    episode = episode_format(results)
    out = [f"# {title}\n", f"{describe_episode(episode)}\n", markdown_table(results),
           "## Self-correction and intervals\n", self_correction_table(results),
           "![accuracy by turn](accuracy_by_turn.png)\n"]
    if has_flows(results):
        out += ["## Flows between turns\n", flows_table(results), "![flows between turns](flows_by_turn.png)\n"]
    if has_analyses(results):
        out += ["## Analyses\n", analyses_table(results), ANALYSES_LEGEND, "![analyses](analyses.png)\n"]
    if has_ood(results):
        out += ood_section(results)
    out += ["## Legend\n",
            LEGEND.format(feedback=FEEDBACK_WORDS.get(episode.get("feedback"), "feedback shown above")),
            f"Tie rule: {TIE_RULE}\n"]
    if notes:
        out.append("## Notes\n")
        out.append((notes if isinstance(notes, str) else "\n".join(f"- {n}" for n in notes)) + "\n")
    if transcripts:
        out.append("## Transcripts\n")
        out.extend(_transcript_md(t) for t in transcripts)
    return "\n".join(out)


MARKERS = "osD^vP<>"


def plot_accuracy_by_turn(results: Mapping[str, Mapping[str, Any]], path: str | os.PathLike,
                          title: str = "Accuracy by turn", show_parallel: bool = True) -> None:
    """One colour and marker per method: per-turn accuracy without early stop (solid), cumulative
    oracle accuracy (dashed), the parallel mK@t1 baseline (dotted horizontal line) and, right of
    the last turn, m1@tT (filled) and p1@tT (hollow). Methods are shifted apart a little on x so
    that equal values stay visible; the legend sits outside the axes, off the data."""
    fig, ax = _new_figure()
    n = len(results)
    max_t = max((len(r.get("turn_acc") or []) for r in results.values()), default=1) or 1
    final_x = max_t + 0.8
    for i, (name, r) in enumerate(results.items()):
        color, marker = f"C{i % 10}", MARKERS[i % len(MARKERS)]
        dx = (i - (n - 1) / 2) * 0.05
        label = str(r.get("label") or name)
        acc = [100 * a for a in r.get("turn_acc") or []]
        xs = [t + 1 + dx for t in range(len(acc))]
        ax.plot(xs, acc, "-", marker=marker, color=color, label=f"{label}: per turn")
        oracle = [100 * a for a in r.get("cumulative_oracle_acc") or []]
        if oracle:
            ax.plot(xs[:len(oracle)], oracle, "--", marker=marker, color=color, markersize=4,
                    markerfacecolor="none", label=f"{label}: oracle stop (p1@t)")
        k, t = r.get("K"), r.get("T") or len(acc)
        if show_parallel and k and r.get(f"m{k}@t1") is not None:
            ax.axhline(100 * r[f"m{k}@t1"], color=color, linestyle=":", alpha=0.7,
                       label=f"{label}: m{k}@t1")
        for key, face in ((f"m1@t{t}", color), (f"p1@t{t}", "none")):
            if r.get(key) is not None:
                ax.plot([final_x + dx], [100 * r[key]], marker=marker, markersize=8, color=color,
                        markerfacecolor=face, linestyle="none")
    ax.set_xticks(list(range(1, max_t + 1)) + [final_x])
    ax.set_xticklabels([str(t) for t in range(1, max_t + 1)] + [f"m1@t{max_t} (filled)\np1@t{max_t} (hollow)"],
                       fontsize="small")
    ax.set_xlim(0.7, final_x + 0.4)
    ax.set_ylim(0, 100)
    _save_figure(fig, ax, "turn", "accuracy (%)", title, path)


def plot_flows_by_turn(results: Mapping[str, Mapping[str, Any]], path: str | os.PathLike,
                       title: str = "Flows between turns") -> None:
    """One colour and marker per method: share of problems going wrong -> right (i→c, solid,
    filled) and right -> wrong (c→i, dashed, hollow) at each transition t-1 -> t."""
    fig, ax = _new_figure()
    n = len(results)
    max_t = 1
    for i, (name, r) in enumerate(results.items()):
        flows = r.get("flows") or {}
        i2c, c2i = flows.get("i2c") or [], flows.get("c2i") or []
        if not i2c:
            continue
        color, marker = f"C{i % 10}", MARKERS[i % len(MARKERS)]
        dx = (i - (n - 1) / 2) * 0.05
        label = str(r.get("label") or name)
        xs = [t + 2 + dx for t in range(len(i2c))]
        ax.plot(xs, [100 * v for v in i2c], "-", marker=marker, color=color, label=f"{label}: i→c")
        ax.plot(xs, [100 * v for v in c2i], "--", marker=marker, color=color, markerfacecolor="none",
                label=f"{label}: c→i")
        max_t = max(max_t, len(i2c) + 1)
    ax.set_xticks(list(range(2, max_t + 1)))
    ax.set_xticklabels([f"{t - 1}→{t}" for t in range(2, max_t + 1)])
    ax.set_ylim(bottom=0)
    _save_figure(fig, ax, "transition", "share of problems (%)", title, path)


def plot_analyses(results: Mapping[str, Mapping[str, Any]], path: str | os.PathLike,
                  title: str = "Analyses") -> None:
    """Left: share of problems the chain solves beyond pass@B of the model's own (solid) and the
    base's (dashed) parallel samples, over B. Right: the distribution of edit size between
    consecutive turns after a wrong one, one bar group per bin, one bar per method."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 4.5))
    FigureCanvasAgg(fig)
    left, right = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    rows = [(i, name, r) for i, (name, r) in enumerate(results.items()) if r.get("analyses")]
    width = 0.8 / max(1, len(rows))
    for j, (i, name, r) in enumerate(rows):
        a, color, marker = r["analyses"], f"C{i % 10}", MARKERS[i % len(MARKERS)]
        label = str(r.get("label") or name)
        for key, style, face, what in (("beyond_own", "-", color, "own"), ("beyond_reference", "--", "none", "base")):
            if a.get(key):
                bs = sorted(a[key], key=int)
                dx = (j - (len(rows) - 1) / 2) * 0.04  # equal curves stay visible
                left.plot([int(b) + dx for b in bs], [100 * a[key][b] for b in bs], style, marker=marker,
                          color=color, markerfacecolor=face, label=f"{label}: beyond {what} pass@B")
                left.set_xticks([int(b) for b in bs])
        hist = a["edit_sizes"]["all"]
        xs = [k + (j - (len(rows) - 1) / 2) * width for k in range(len(hist))]
        right.bar(xs, [100 * v for v in hist.values()], width=width, color=color, label=label)
        right.set_xticks(list(range(len(hist))))
        right.set_xticklabels(list(hist), fontsize="small")
    left.set_xlabel("B (parallel turn-1 samples)")
    left.set_ylabel("solved by the chain, not by pass@B (%)")
    left.set_title("Sequential beyond parallel")
    left.grid(True, alpha=0.3)
    left.legend(fontsize="x-small")
    right.set_xlabel("characters changed after a wrong turn")
    right.set_ylabel("share of transitions (%)")
    right.set_title("Edit size between turns")
    right.grid(True, alpha=0.3, axis="y")
    right.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_open(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=120)


def _new_figure():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4.5))
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot(1, 1, 1)


def _save_figure(fig, ax, xlabel: str, ylabel: str, title: str, path: str | os.PathLike) -> None:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    fig.tight_layout()
    with atomic_open(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=120)


def plot_nll_over_training(curves: Mapping[str, Mapping[str, Sequence[float]]], path: str | os.PathLike,
                           title: str = "NLL of the reference solution over training") -> None:
    """One colour per training run (`{"step": [...], "alone": [...], "multi_turn": [...]}`, from
    `train_stats.json["eval_nll"]`, plus "from_step": where a training that continues an earlier
    one starts on the x axis): given a wrong attempt + feedback (solid) and given the question
    alone (dashed)."""
    fig, ax = _new_figure()
    for i, (name, c) in enumerate(curves.items()):
        for key, style, what in (("multi_turn", "-o", "after a wrong attempt"), ("alone", "--s", "question alone")):
            if c.get(key):
                xs = [c.get("from_step", 0) + x for x in c["step"]]
                ax.plot(xs, c[key], style, color=f"C{i % 10}", markersize=3, label=f"{name}: {what}")
    _save_figure(fig, ax, "training steps from the base model", "NLL (nats / token)", title, path)


def write_report(out_dir: str | os.PathLike, results: Mapping[str, Mapping[str, Any]],
                 title: str = "RISE evaluation", notes: str | Sequence[str] | None = None,
                 transcripts: Sequence[Any] | None = None) -> dict[str, Path]:
    """Write report.json, report.md, accuracy_by_turn.png, (when a chain has two turns or more)
    flows_by_turn.png and (when results hold `analyses`) analyses.png into `out_dir`, atomically.

    Returns {"json": path, "md": path, "png": path} plus "flows_png" / "analyses_png" where drawn.
    """
    out = Path(out_dir)
    paths = {"json": out / "report.json", "md": out / "report.md",
             "png": out / "accuracy_by_turn.png"}
    write_json(paths["json"], build_report(results))
    write_text(paths["md"], render_markdown(results, title, notes, transcripts))
    plot_accuracy_by_turn(results, paths["png"], title=title)
    if has_flows(results):
        paths["flows_png"] = out / "flows_by_turn.png"
        plot_flows_by_turn(results, paths["flows_png"], title=f"{title}: flows between turns")
    if has_analyses(results):
        paths["analyses_png"] = out / "analyses.png"
        plot_analyses(results, paths["analyses_png"], title=f"{title}: analyses")
    return paths
