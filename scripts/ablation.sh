#!/usr/bin/env bash
# The paper's ablation (CLIP / + soft labels / + graph / full at lambda 1, then 0.3 and 3 / full with the
# Jaccard S^(k)), 3 seeds, one budget for every variant: 600 steps of 64 = 38,400 samples (20 x
# the 1,920 of the first ablation), usclip-edge-conv at 96 px, the shipped recipe otherwise.
# Resumable (bench/ablation.py skips finished runs): run it again after an interruption.
# Budget: 21 runs; bf16 on a CPU with AVX512-BF16 measured 108 samples/s at 96 px
# (bench/train_throughput.py), i.e. ~6-7 min a run with evaluation, ~2.5 h in all on 2 cores.
# Subsets: SEEDS=1,2 LAMBDAS=1 VARIANTS='CLIP (InfoNCE);+ soft labels;+ graph;full, lambda=1'.
# Data first: usclip synth --out data/synth-v4 --n 12000 --size 256 --workers 2 --seed 31
set -euo pipefail
export HF_HUB_OFFLINE=1
exec nice -n 5 python bench/ablation.py --data "${DATA:-data/synth-v4}" --out "${OUT:-runs/ablation-v4}" \
  --seeds "${SEEDS:-0,1,2}" --lambdas "${LAMBDAS:-1,0.3,3}" ${VARIANTS:+--variants "$VARIANTS"} \
  --set model=usclip-edge-conv --set image_size=96 --set precision="${PRECISION:-bf16}" \
  --set lock_text=true --set unlock_text_layers=2 --set batch_size=64 --set max_steps=600 \
  --set warmup_steps=50 --set lr=1e-3 --set template_captions=0.5 --set save_every=100 \
  --set keep_checkpoints=1 --set progress=false --set log_every=20
