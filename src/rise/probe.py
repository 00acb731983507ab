"""The NLL probe: the paper's "Classic vs RISE" analysis (a).

The question it answers: does training make the model find the right answer *more* likely after it
has seen its own wrong attempt and the feedback than from the question alone? RISE should lower
the first (it learns to use the failed attempt); single-turn SFT ("Classic") lowers only the
second. The probe is a fixed set of held-out problems the base model gets wrong at turn 1, as two
files of training-format examples whose target is the reference solution:

    probe/alone.jsonl       [question] -> reference
    probe/multi_turn.jsonl  [question, wrong attempt, feedback] -> reference

The train stage scores them before, during (`train.eval_every`) and after training
(`eval_files` -> `train_stats.json["eval_nll"]`).
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Sequence

from rise.errors import InputError

PROBE_SETS = ("alone", "multi_turn")


def probe_files(out_dir: str | Path) -> dict[str, str]:
    """{set name: path} of the probe files under out_dir."""
    return {name: str(Path(out_dir) / f"{name}.jsonl") for name in PROBE_SETS}


def probe_examples(problems: Sequence, first_turns: Sequence[dict], episode) -> dict[str, list[dict]]:
    """The two probe sets from each problem's first attempt (`{"text", "answer", "reward"}`);
    problems solved at turn 1 are left out. Pure."""
    from rise.episodes import Attempt, with_response

    sets: dict[str, list[dict]] = {name: [] for name in PROBE_SETS}
    for p, first in zip(problems, first_turns, strict=True):
        if first["reward"] == 1.0 or not p.solution:
            continue
        tried = Attempt(first["text"], first["answer"], first["reward"])
        meta = {"problem_id": p.id}
        sets["alone"].append({"messages": with_response(episode.render(p.question, []), p.solution), **meta})
        sets["multi_turn"].append({"messages": with_response(episode.render(p.question, [tried]), p.solution), **meta})
    return sets


def build_probe(model: str, task, problems: Sequence, ev, out_dir: str | Path,
                progress: bool = True) -> dict[str, str]:
    """Sample `model`'s first attempt at each problem (eval config `ev`: engine, sampling, episode
    format, seed) and write the probe files under out_dir; returns {set name: path}."""
    from rise.engines import open_backend
    from rise.evaluate import run_episodes
    from rise.records import write_jsonl

    if not problems:
        raise InputError("probe: no problems to build the NLL probe from")
    one = copy.deepcopy(ev)
    one.turns, one.parallel = 1, 1
    with open_backend(model, ev.engine) as backend:
        episodes = run_episodes(backend, task, problems, one, "probe", progress)
    sets = probe_examples(problems, [ep["turns"][0] for ep in episodes], ev.episode)
    if not sets["alone"]:
        raise InputError(f"probe: {model} solved all {len(problems)} probe problems at turn 1; nothing to probe")
    paths = probe_files(out_dir)
    for name, rows in sets.items():
        write_jsonl(paths[name], rows)
    return paths


def read_probe(files: dict[str, str]) -> dict[str, list[dict]]:
    from rise.records import read_jsonl

    sets = {}
    for name, path in files.items():
        if not Path(path).is_file():
            raise InputError(f"probe file {name}: {path} does not exist")
        sets[name] = read_jsonl(path)
    return sets
