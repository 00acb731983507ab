#!/usr/bin/env bash
# Reference pipeline: the stages of `rise run`, one command each, on the embedded default.
# Each stage reads the files of the one before; open them to see what RISE does.
set -euo pipefail
OUT=${OUT:-runs/pipeline}
THREADS=${THREADS:-2}

# the arith difficulty the embedded base was pretrained on (rise.embedded.CPU_ARITH_OPTIONS)

# 0. the base model: a small Qwen2 pretrained offline on arith; the package ships it
#    (`rise pretrain --out DIR` makes it again: 18 min on 2 cores)
BASE=$(rise pretrain --cached --quiet | tail -n 1)

# 1. collect: roll the base out for up to 5 turns; every failed state gets the reference solution
#    (configs/embedded/*.yaml hold exactly the settings `rise run` uses; tested)
rise collect --threads "$THREADS" --config configs/embedded/collect.yaml --policy "$BASE" --out "$OUT/iter1/collect"

# 2. train: one example per turn, weight exp(r/0.4), loss on the last turn only
rise train --threads "$THREADS" --config configs/embedded/train.yaml --model "$BASE" \
  --rollouts "$OUT/iter1/collect/rollouts.jsonl" --out "$OUT/iter1/train"

# 3. evaluate base vs RISE: 5 sequential turns, 5 parallel samples at turn 1
rise eval --threads "$THREADS" --config configs/embedded/eval.yaml --model base="$BASE" \
  --model rise-iter1="$OUT/iter1/train/checkpoint" --out "$OUT/eval"
cat "$OUT/eval/report.md"
