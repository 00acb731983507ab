#!/usr/bin/env bash
# Reference pipeline: the stages of `rise run`, one command each, on the embedded default.
# Each stage reads the files of the one before; open them to see what RISE does.
set -euo pipefail
OUT=${OUT:-runs/pipeline}
THREADS=${THREADS:-2}

# 0. the base model: a small Qwen2 pretrained offline on the arith task (cached after the first run)
BASE=$(rise pretrain --threads "$THREADS" --out "$OUT/base" | tail -n 1)

# 1. collect: roll the base out for up to 5 turns; every failed state gets the reference solution
rise collect --threads "$THREADS" --policy "$BASE" --turns 5 --improve reference --out "$OUT/iter1/collect"

# 2. train: one example per turn, weight exp(r/0.4), loss on the last turn only
rise train --threads "$THREADS" --model "$BASE" --rollouts "$OUT/iter1/collect/rollouts.jsonl" \
  --train.lr 1e-3 --out "$OUT/iter1/train"

# 3. evaluate base vs RISE: 5 sequential turns, 5 parallel samples at turn 1
rise eval --threads "$THREADS" --model base="$BASE" --model rise-iter1="$OUT/iter1/train/checkpoint" \
  --out "$OUT/eval"
cat "$OUT/eval/report.md"
