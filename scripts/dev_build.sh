#!/usr/bin/env bash
# Developer build: compile the extension into python/usclip_sdk/ so a source checkout on
# PYTHONPATH (python/ and training/) imports it. Users and CI use `pip install .` instead.
# Usage: scripts/dev_build.sh [extra cmake -D flags]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${USCLIP_DEV_BUILD:-build/dev}
version=$(python3 -c "import tomllib;print(tomllib.load(open('pyproject.toml','rb'))['project']['version'])")
cmake -S . -B "$build" -G Ninja -DPython_EXECUTABLE="$(command -v python3)" \
  -Dpybind11_DIR="$(python3 -m pybind11 --cmakedir)" -DSKBUILD_PROJECT_VERSION="$version" "$@" >/dev/null
cmake --build "$build"
# Atomic replace: a running process keeps the old file (cp over it would crash it).
for so in "$build"/_native*.so; do
  cp "$so" "python/usclip_sdk/.$(basename "$so").tmp" && mv -f "python/usclip_sdk/.$(basename "$so").tmp" "python/usclip_sdk/$(basename "$so")"
done
