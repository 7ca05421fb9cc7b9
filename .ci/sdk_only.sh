#!/usr/bin/env bash
# The SDK alone, as a device maker installs it: `pip install ".[cpu]"` into a fresh venv (no [train],
# so no torch), then the shipped demo, offline. Fails if anything in the runtime needs torch.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .venv-sdk
python3 -m venv .venv-sdk
. .venv-sdk/bin/activate
python -m pip install -q ".[cpu]"
if python -c "import torch" 2>/dev/null; then echo "torch leaked into the SDK install"; exit 1; fi
# A CUDA/Jetson install takes onnxruntime-gpu: the SDK must not pull PyPI's onnxruntime beside
# it (they collide). pip resolves from metadata only (--dry-run), so nothing large downloads.
python -m pip install -q --dry-run --ignore-installed --report /tmp/usclip-gpu-report.json ".[gpu]"
python - <<'PY'
import json
names = {i["metadata"]["name"].lower() for i in json.load(open("/tmp/usclip-gpu-report.json"))["install"]}
assert "onnxruntime-gpu" in names and "onnxruntime" not in names, sorted(n for n in names if "onnx" in n)
print("[gpu] resolves to onnxruntime-gpu without onnxruntime")
PY
shipped=$(ls -d python/usclip_sdk/models/usclip-edge* 2>/dev/null | head -1 || true)
cd /tmp   # run away from the source tree: only the installed package is importable
HF_HUB_OFFLINE=1 usclip info
if [ -n "$shipped" ]; then
  HF_HUB_OFFLINE=1 usclip demo
else
  echo "no shipped model in python/usclip_sdk/models yet: demo not run"
fi
deactivate
