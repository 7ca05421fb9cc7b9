#!/usr/bin/env bash
# Stage 2 of the shipped usclip-edge-conv model: from the stage-1 run (scripts/train_edge_conv.sh)
# continue with the prompt-alignment term (--set prompt_loss, usclip_train.loss.PromptAlignmentLoss):
# each image must pick its own value among its dimension's training-template prompts, which
# separates the descriptor anchors that the soft-label loss lets collapse (docs/results.md).
# Defaults: the shipped model's recipe (weight 3). PROMPT_LOSS=0 is the control: the same
# continuation without the term. Resumable like stage 1. MODEL=usclip-edge-zoom continues a
# stage-2 checkpoint with the zoom head (usclip_train/zoom.py; its box loss and teacher schedule
# come from --set zoom_box_loss / zoom_teacher, defaults 10 / 0.5); SEED picks the data order.
#   INIT=runs/conv128-nograph/checkpoints/step-00001350 OUT=runs/conv128-prompts3 scripts/finetune_prompts.sh
set -euo pipefail
export HF_HUB_OFFLINE=1
OUT=${OUT:-runs/conv128-prompts3}
INIT=${INIT:-runs/conv128-nograph/checkpoints/step-00001350}
resume=()
[ -f "$OUT/checkpoints/latest" ] && resume=(--resume)
exec nice -n 5 usclip train --data "${DATA:-data/synth-v4}" --model "${MODEL:-usclip-edge-conv}" --out "$OUT" "${resume[@]}" \
  --set init_checkpoint="$INIT" --set prompt_loss="${PROMPT_LOSS:-3}" \
  --set precision="${PRECISION:-fp32}" --set use_graph=false --set lock_text=true --set unlock_text_layers=2 \
  --set batch_size=64 --set max_steps="${STEPS:-600}" --set warmup_steps=50 --set lr="${LR:-3e-4}" \
  --set template_captions=0.5 --set save_every=100 --set keep_checkpoints=20 --set log_every=10 \
  --set progress=false --set seed="${SEED:-1}" --set eval_at_end=false ${EXTRA:-}
