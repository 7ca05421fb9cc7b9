#!/usr/bin/env bash
# The SDK alone, as a device maker installs it: `pip install .` into a fresh venv (no [train],
# so no torch), then the shipped demo, offline. Fails if anything in the runtime needs torch.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .venv-sdk
python3 -m venv .venv-sdk
. .venv-sdk/bin/activate
python -m pip install -q .
if python -c "import torch" 2>/dev/null; then echo "torch leaked into the SDK install"; exit 1; fi
shipped=$(ls -d python/usclip_sdk/models/usclip-edge* 2>/dev/null | head -1 || true)
cd /tmp   # run away from the source tree: only the installed package is importable
HF_HUB_OFFLINE=1 usclip info
if [ -n "$shipped" ]; then
  HF_HUB_OFFLINE=1 usclip demo
else
  echo "no shipped model in python/usclip_sdk/models yet: demo not run"
fi
deactivate
