"""The model card (README.md) of every checkpoint `rise train` saves. Standard library + PyYAML.

A checkpoint folder is an ordinary Hugging Face model folder; its card says where it came from:
the base model, the RISE settings (the stage's resolved config), the data (each rollout file and
the examples file with their record counts and SHA-256), and what training measured. The card
holds only what is the same on every run of the same config and data (no wall times, no memory
figures): `rise run` keys later stages on the checkpoint's content, and a card that changed from
run to run would make them re-run for nothing. Evaluation comes later and lives in
`rise eval`'s report, not here, so the checkpoint never changes after training.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

TAGS = ("rise", "recursive-introspection", "self-correction", "multi-turn")


def file_fingerprint(path: str | os.PathLike) -> dict[str, Any]:
    """Records (lines) and SHA-256 of a JSONL file."""
    h, lines = hashlib.sha256(), 0
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
            lines += block.count(b"\n")
    return {"path": str(path), "records": lines, "sha256": h.hexdigest()}


def _front_matter(base: str) -> list[str]:
    """Hub metadata. `base_model` only for a hub id: the Hub rejects a local path there."""
    lines = ["---", "library_name: transformers", "pipeline_tag: text-generation", "tags:"]
    lines += [f"- {t}" for t in TAGS]
    if base and not Path(base).expanduser().exists():
        lines.append(f"base_model: {base}")
    return [*lines, "---", ""]


def _training_lines(stats: dict[str, Any]) -> list[str]:
    loss = stats.get("loss") or []
    grad = stats.get("grad_norm") or []
    rows = [
        ("optimizer steps", stats.get("steps")),
        ("training examples", stats.get("examples")),
        ("examples skipped as too long", stats.get("skipped_too_long")),
        ("tokens (trained / all)", f"{stats.get('trained_tokens')} / {stats.get('tokens')}"),
        ("loss at the first / last step", f"{loss[0]:.4f} / {loss[-1]:.4f}" if loss else None),
        ("gradient norm at the last step", f"{grad[-1]:.4f}" if grad else None),
        ("processes", stats.get("processes")),
    ]
    by_turn = stats.get("examples_by_turn")
    if by_turn:
        rows.append(("examples by turn", ", ".join(f"turn {k}: {v}" for k, v in by_turn.items())))
    out = ["| measure | value |", "|---|---|"]
    out += [f"| {name} | {value} |" for name, value in rows if value is not None]
    probe = stats.get("eval_nll")
    if probe:
        out += ["", "Mean NLL of the eval sets (`eval_files`, rise.probe) over training:", "",
                "| step | " + " | ".join(k for k in probe if k != "step") + " |",
                "|---|" + "---|" * (len(probe) - 1)]
        for i, step in enumerate(probe["step"]):
            out.append(f"| {step} | " + " | ".join(f"{probe[k][i]:.4f}" for k in probe
                                                   if k != "step") + " |")
    return out


def _summary(base: str, mode: str, tau: float) -> list[str]:
    paper = "RISE, Recursive Introspection: Qu, Zhang, Garg, Kumar 2024, arXiv 2407.18219"
    if mode == "classic":
        return ["# Classic SFT baseline of RISE", "",
                f"`{base}` fine-tuned by `rise train --convert.mode classic` ({paper}): single-turn",
                "SFT on the correct actions of RISE rollouts, the paper's Classic baseline."]
    return ["# RISE fine-tune", "",
            f"`{base}` fine-tuned by `rise train` ({paper}) to improve its own answer over turns:",
            "after a wrong answer and a feedback line, the next turn is trained toward an improved",
            f"response, each example weighted by exp(reward / {tau}) (reward-weighted regression)."]


def checkpoint_card(cfg: Any, stats: dict[str, Any], examples_path: str | os.PathLike,
                    lora: bool = False) -> str:
    """README.md of a `rise train` checkpoint; `cfg` is the stage's TrainStageConfig."""
    from rise.config import dump_yaml

    data = [file_fingerprint(p) for p in cfg.rollouts]
    examples = file_fingerprint(examples_path)
    c = cfg.convert
    lines = [
        *_front_matter(cfg.model),
        *_summary(cfg.model, c.mode, c.tau),
        "",
        "## Data",
        "",
        "| file | records | sha256 |",
        "|---|---|---|",
        *[f"| `{d['path']}` (rollouts) | {d['records']} | `{d['sha256']}` |" for d in data],
        f"| `examples.jsonl` (training examples) | {examples['records']} | `{examples['sha256']}` |",
        "",
        f"Examples: `convert.mode` {c.mode}, criterion `{c.criterion}`, tau {c.tau}, "
        f"`train.train_on` {cfg.train.train_on}"
        + ("; LoRA merged into the weights (the adapter alone is in `../adapter`)" if lora else "")
        + ".",
        "",
        "## Training",
        "",
        *_training_lines(stats),
        "",
        "Evaluation over turns is in the report of `rise eval` (under `rise run`: `eval/report.md`).",
        "",
        "## Use",
        "",
        "```python",
        "from transformers import AutoModelForCausalLM, AutoTokenizer",
        "model = AutoModelForCausalLM.from_pretrained(PATH)   # this folder",
        "tokenizer = AutoTokenizer.from_pretrained(PATH)      # with its chat template",
        "```",
        "",
        "vLLM: `vllm.LLM(model=PATH).chat(messages)`, `vllm serve PATH`, or",
        "`rise eval --model rise=PATH --engine.engine vllm`.",
        "",
        "## RISE config",
        "",
        "The resolved `rise train` config (also `../config.yaml`):",
        "",
        "```yaml",
        dump_yaml(cfg).rstrip(),
        "```",
        "",
    ]
    return "\n".join(lines)
