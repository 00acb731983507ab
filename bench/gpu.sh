#!/usr/bin/env bash
# The GPU benchmarks, for a machine with one NVIDIA GPU and no network (about 8 minutes):
#   1. trainer: ours vs the official recipe on a random Qwen2-0.5B-shaped model (bf16), paper prompts
#   2. rollout: HFBackend vs plain generate on the same model shape, 5 turns, N = 4
#   3. FSDP smoke: `rise train` under `accelerate launch --config_file configs/accelerate/fsdp.yaml`
#      on 1 GPU against a plain run of the same config (same losses; checkpoint written)
#   4. trainer again with micro-batches of 16,384 tokens instead of 8,192 (if time is left)
# Usage, from the repository root:  OUT=/some/dir bash bench/gpu.sh
# Every step's output goes to $OUT/<step>.txt, the last lines of all to $OUT/summary.txt.
# Needs torch with CUDA, transformers, accelerate, tokenizers, psutil (no download happens).
set -u -o pipefail
OUT=${OUT:-bench-out}
mkdir -p "$OUT"
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
export PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false \
       HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 RISE_CACHE="${RISE_CACHE:-/tmp/rise-cache}"
PY=${PYTHON:-python3}
T0=$(date +%s)

step() {  # step NAME TIMEOUT_S CMD...: run, log to $OUT/NAME.txt, keep going on failure
  local name=$1 limit=$2; shift 2
  echo "== $name ($(($(date +%s) - T0)) s in): $*" | tee "$OUT/$name.txt"
  timeout --signal=INT --kill-after=10 "$limit" "$@" 2>&1 | tee -a "$OUT/$name.txt"
  local rc=${PIPESTATUS[0]}
  [ "$rc" -eq 0 ] || echo "!! $name exited $rc" | tee -a "$OUT/$name.txt"
}

{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  "$PY" -c 'import torch, transformers, accelerate; print("torch", torch.__version__, "cuda", torch.version.cuda, "| transformers", transformers.__version__, "| accelerate", accelerate.__version__)'
} 2>&1 | tee "$OUT/env.txt"

step trainer_05b 170 "$PY" bench/trainer.py --gpu-size 0.5b
step rollout_05b 200 "$PY" bench/rollout.py --gpu-size 0.5b --max-seconds 120

# 3. FSDP smoke: a tiny model and rollouts made here, then `rise train` twice.
SMOKE=/tmp/rise-fsdp-smoke
rm -rf "$SMOKE" && mkdir -p "$SMOKE"
"$PY" - "$SMOKE" <<'EOF' > "$OUT/fsdp_setup.txt" 2>&1
import json, sys
from pathlib import Path
sys.path.insert(0, "tests")
from test_ddp import TEXTS, examples
from rise.embedded import build_model, build_tokenizer
from rise.modeling import save_model
root = Path(sys.argv[1])
tok = build_tokenizer(TEXTS * 5, vocab_size=300)
save_model(build_model(tok, "tiny"), tok, root / "base")
with open(root / "rollouts.jsonl", "w") as f:
    for i, ex in enumerate(examples()):
        act = {"text": ex["messages"][-1]["content"], "answer": "7", "reward": 1.0, "source": "reference"}
        f.write(json.dumps({"problem_id": f"p{i}", "turn": 1 + (len(ex["messages"]) > 2), "messages": ex["messages"][:-1],
                            "candidates": [act], "action": act, "next": act, "done": True}) + "\n")
print("ok")
EOF
TRAIN_ARGS=(--model "$SMOKE/base" --rollouts "$SMOKE/rollouts.jsonl" --dtype float32 --train.max_steps 3
            --train.batch_size 8 --train.lr 3e-3 --train.warmup_ratio 0 --train.micro_batch_tokens 64 --quiet)
step fsdp_plain 90 "$PY" -m rise.cli train "${TRAIN_ARGS[@]}" --out "$SMOKE/plain"
step fsdp_fsdp 120 "$PY" -m accelerate.commands.launch --config_file configs/accelerate/fsdp.yaml \
  --num_processes 1 --gpu_ids 0 --mixed_precision no -m rise.cli train "${TRAIN_ARGS[@]}" --out "$SMOKE/fsdp"
"$PY" - "$SMOKE" <<'EOF' 2>&1 | tee "$OUT/fsdp_check.txt"
import json, sys
from pathlib import Path
root = Path(sys.argv[1])
try:
    a = json.loads((root / "plain" / "train_stats.json").read_text())
    b = json.loads((root / "fsdp" / "train_stats.json").read_text())
    same = all(abs(x - y) <= 1e-4 * abs(x) for x, y in zip(a["loss"], b["loss"]))
    ok = (root / "fsdp" / "checkpoint" / "model.safetensors").is_file()
    print(f"fsdp: losses plain {a['loss']} vs fsdp {b['loss']}: {'same' if same else 'DIFFERENT'}; "
          f"checkpoint {'written' if ok else 'MISSING'}")
except Exception as e:
    print(f"fsdp: smoke failed ({type(e).__name__}: {e})")
EOF

LEFT=$((480 - ($(date +%s) - T0)))
if [ "$LEFT" -gt 70 ]; then
  step trainer_05b_b16k $((LEFT - 10)) "$PY" bench/trainer.py --gpu-size 0.5b --budget 16384 --baseline-steps 2
fi

{
  echo "device: $(head -1 "$OUT/env.txt")"
  for f in trainer_05b rollout_05b trainer_05b_b16k; do
    [ -f "$OUT/$f.txt" ] && { grep -E '^(MFU|losses|ours|official|plain)' "$OUT/$f.txt"; tail -1 "$OUT/$f.txt"; }
  done
  cat "$OUT/fsdp_check.txt" 2>/dev/null
  echo "gpu.sh: $(($(date +%s) - T0)) s"
} | tee "$OUT/summary.txt"
