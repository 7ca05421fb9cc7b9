#!/usr/bin/env bash
# From the finished runs/conv128 (scripts/train_edge_conv.sh) to a calibrated, measured bundle:
# export (fp32 with float16-stored weights, fp16 for TensorRT 11, int8 Q/DQ for TensorRT,
# int8_cpu for onnxruntime on x86, int8 text), triage calibration on the validation split,
# then every measurement docs/results.md and docs/performance.md quote. Outputs: runs/ship/,
# bench/results/*_conv128.json. Copy runs/ship/usclip-edge.zip to python/usclip_sdk/models/
# only when it measures better than the shipped bundle on the same frames.
set -euo pipefail
export HF_HUB_OFFLINE=1
RUN=${RUN:-runs/conv128}; DATA=${DATA:-data/synth-v3}; OUT=runs/ship; N=${N:-600}
mkdir -p "$OUT"
step() { echo "== $(date +%T) $*"; }
step "learning curve (every checkpoint, 400 test frames)"
python bench/learning_curve.py --run "$RUN" --data "$DATA" --max 400 --json bench/results/learning_curve_conv128.json
step export
usclip export "$RUN" --out "$OUT/raw.zip" --zip --overwrite --fp16 --fp16-weights --int8-text \
  --int8-image synthetic --calib-frames 64 --bn-data "$DATA"
step calibrate
usclip calibrate "$OUT/raw.zip" --data "$DATA" --split valid --out "$OUT/usclip-edge.zip" --overwrite --json \
  > "$OUT/calibration.json"
step "model_eval (new, calibrated / uncalibrated / the shipped bundle, same $N test frames)"
python bench/model_eval.py --data "$DATA" --bundle "$OUT/usclip-edge.zip" --max "$N" \
  --json bench/results/model_eval_conv128.json | tee "$OUT/model_eval.txt"
python bench/model_eval.py --data "$DATA" --bundle "$OUT/raw.zip" --max "$N" \
  --json bench/results/model_eval_conv128_uncalibrated.json | tee "$OUT/model_eval_raw.txt"
python bench/model_eval.py --data "$DATA" --max "$N" \
  --json bench/results/model_eval_previous_shipped_on_synth_v3.json | tee "$OUT/model_eval_previous.txt"
step prompt separability
python bench/prompt_separability.py python/usclip_sdk/models/usclip-edge.zip "$OUT/usclip-edge.zip" \
  --json bench/results/prompt_separability_conv128.json | tee "$OUT/separability.txt"
step "int8 / fp16 deltas"
python bench/bench_cpu_e2e.py --bundle "$OUT/usclip-edge.zip" --data "$DATA" --max 300 --frames 60 \
  --stream-frames 300 --checkpoint "$RUN" --json bench/results/cpu_e2e_conv128.json | tee "$OUT/cpu_e2e.txt"
step done
