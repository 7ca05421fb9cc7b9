#!/usr/bin/env bash
# The shipped usclip-edge-conv model's training run, resumable: run it again after an
# interruption and it continues from the newest checkpoint in runs/conv128.
# No attribute graph (use_graph=false): at the release's fusion strength it cost ~18 points of
# AvgAcc in the ablation (docs/results.md); soft labels (lambda 1) stay on.
# PRECISION=fp32 on CPUs without AVX512-BF16/AMX (bf16 is emulated there: 15x slower on a
# 2-core AMD EPYC, bench/train_throughput.py). Data first (about 4 min on 2 cores):
#   usclip synth --out data/synth-v4 --n 12000 --size 256 --workers 2 --seed 31
set -euo pipefail  # EXTRA="--set eval_at_end=false" adds settings
export HF_HUB_OFFLINE=1
OUT=${OUT:-runs/conv128}
resume=()
[ -f "$OUT/checkpoints/latest" ] && resume=(--resume)
exec nice -n 5 usclip train --data "${DATA:-data/synth-v4}" --model usclip-edge-conv --out "$OUT" "${resume[@]}" \
  --set precision="${PRECISION:-bf16}" --set use_graph=false --set lock_text=true --set unlock_text_layers=2 --set batch_size=64 \
  --set max_steps="${STEPS:-1350}" --set warmup_steps=150 --set lr=1e-3 --set template_captions=0.5 \
  --set save_every=250 --set keep_checkpoints=20 --set log_every=10 --set progress=false --set seed=0 ${EXTRA:-}
