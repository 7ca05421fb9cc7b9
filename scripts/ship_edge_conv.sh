#!/usr/bin/env bash
# From a finished training run (scripts/train_edge_conv.sh) to a calibrated, measured bundle:
#   1. learning curve (checkpoints exported as shipped, uncalibrated);
#   2. the shipping export (fp32 with float16-stored weights, int8_cpu for onnxruntime on x86,
#      int8 text: what python/usclip_sdk/models/ holds, <= 40 MB) and its triage calibration;
#   3. the TensorRT-side export (fp16 and int8 Q/DQ) of the same checkpoint, for the precision
#      deltas only (not shipped: size);
#   4. every measurement docs/results.md and docs/performance.md quote, on the same test frames:
#      the new bundle calibrated / uncalibrated, the shipped bundle, each precision, prompt
#      separability, the CPU end-to-end bench.
# Outputs: $OUT/, bench/results/*_$TAG.json. Copy $OUT/usclip-edge.zip to
# python/usclip_sdk/models/ only when it measures better than the shipped bundle.
#   RUN=runs/conv128-v4 DATA=data/synth-v4 TAG=conv128v4 scripts/ship_edge_conv.sh
# PREV names the shipped bundle's model_eval JSON (measured once, then kept).
set -euo pipefail
export HF_HUB_OFFLINE=1
RUN=${RUN:-runs/conv128}; DATA=${DATA:-data/synth-v3}; TAG=${TAG:-conv128}; N=${N:-600}
OUT=${SHIP_OUT:-runs/ship-$TAG}; EVERY=${EVERY:-1}; R=bench/results
mkdir -p "$OUT"
step() { echo "== $(date +%T) $*"; }
eval_bundle() {  # bundle precision json-name log-name
  python bench/model_eval.py --data "$DATA" ${1:+--bundle "$1"} --precision "$2" --max "$N" \
    --json "$R/$3.json" | tee "$OUT/$4.txt"
}
step "learning curve (every ${EVERY}th checkpoint, 400 test frames)"
python bench/learning_curve.py --run "$RUN" --data "$DATA" --max 400 --every "$EVERY" \
  --json "$R/learning_curve_$TAG.json"
step "shipping export"
usclip export "$RUN" --out "$OUT/raw.zip" --zip --overwrite --fp16-weights --int8-text \
  --int8-image synthetic --int8-for cpu --calib-frames 64 --bn-data "$DATA"
step calibrate
usclip calibrate "$OUT/raw.zip" --data "$DATA" --split valid --out "$OUT/usclip-edge.zip" --overwrite --json \
  > "$OUT/calibration.json"
step "TensorRT-side export (fp16, int8 Q/DQ) for the precision deltas"
usclip export "$RUN" --out "$OUT/tensorrt.zip" --zip --overwrite --fp16 --int8-image synthetic \
  --int8-for tensorrt --calib-frames 64 --bn-data "$DATA"
step "model_eval: new calibrated / uncalibrated / the shipped bundle, same $N test frames"
eval_bundle "$OUT/usclip-edge.zip" fp32 "model_eval_$TAG" model_eval
eval_bundle "$OUT/raw.zip" fp32 "model_eval_${TAG}_uncalibrated" model_eval_raw
prev=${PREV:-"model_eval_shipped_on_$(basename "$DATA")"}  # the shipped bundle: kept when already measured
[ -f "$R/$prev.json" ] && echo "kept $R/$prev.json" || eval_bundle "" fp32 "$prev" model_eval_previous
step "precision deltas (uncalibrated, same frames): int8_cpu, fp16, int8 Q/DQ"
eval_bundle "$OUT/raw.zip" int8_cpu "model_eval_${TAG}_int8_cpu" model_eval_int8_cpu
eval_bundle "$OUT/tensorrt.zip" fp16 "model_eval_${TAG}_fp16" model_eval_fp16
eval_bundle "$OUT/tensorrt.zip" int8 "model_eval_${TAG}_int8_qdq" model_eval_int8_qdq
step prompt separability
python bench/prompt_separability.py python/usclip_sdk/models/usclip-edge.zip "$OUT/usclip-edge.zip" \
  --json "$R/prompt_separability_$TAG.json" | tee "$OUT/separability.txt"
step "CPU end to end (variants, savvy and open_clip eager baselines, accuracy guard)"
python bench/bench_cpu_e2e.py --bundle "$OUT/usclip-edge.zip" --data "$DATA" --max 300 --frames 60 \
  --stream-frames 300 --checkpoint "$RUN" --json "$R/cpu_e2e_$TAG.json" | tee "$OUT/cpu_e2e.txt"
ls -l "$OUT"/*.zip
step done
