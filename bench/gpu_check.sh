#!/usr/bin/env bash
# One prepared check for a lent GPU machine (Python, torch, nvcc, cmake, pybind11 and
# scikit-build-core present; no internet). Builds and installs the package with its CUDA
# kernels for this GPU only, runs the GPU-marked tests, runs them again under compute-sanitizer
# (memcheck, racecheck), times the kernels, prints a table last.
# Usage (repository root): bash bench/gpu_check.sh   -> JSON results under ${OUT:-/tmp}/
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp}
mkdir -p "$out"
status=0

cap=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d '.')
archs=${USCLIP_CUDA_ARCHITECTURES:-${cap:-90}}
echo "== build (CUDA archs $archs)"
if ! USCLIP_CUDA=ON python -m pip install --no-build-isolation --no-deps -q \
    --config-settings=cmake.define.USCLIP_CUDA_ARCHITECTURES="$archs" . >"$out/build.log" 2>&1; then
  tail -40 "$out/build.log"; echo "BUILD FAILED"; exit 1
fi
# The installed package is imported (python/ is not on sys.path from the repository root).
run_py() { PYTHONPATH= python "$@"; }
run_py -c "import usclip_sdk.ops as o; print(o.build_info())"

echo "== GPU tests"
gpu_tests=$(grep -l "mark.gpu" tests/*/test_*.py tests/test_*.py 2>/dev/null)  # tests mirror the packages
if [ -n "$gpu_tests" ]; then
  PYTHONPATH= python -m pytest -m gpu $gpu_tests -q -p no:cacheprovider 2>&1 | tail -25
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
fi

echo "== compute-sanitizer: memcheck (out-of-bounds, misaligned, invalid frees) and racecheck"
# (shared-memory hazards) over the same GPU tests; any finding fails the check (exit 86).
# Leak checking is off: CPython and the CUDA runtime keep allocations until exit by design.
cs=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
if [ -z "$cs" ]; then
  echo "compute-sanitizer: not found (expected in the CUDA toolkit's bin/)"; status=1
elif [ -n "$gpu_tests" ]; then
  for tool in memcheck racecheck; do
    USCLIP_FUZZ_EXAMPLES=${USCLIP_FUZZ_EXAMPLES:-20} PYTHONPATH= timeout "${USCLIP_SANITIZER_TIMEOUT:-240}" "$cs" --tool "$tool" \
      --error-exitcode 86 --print-limit 20 --log-file "$out/sanitizer_$tool.log" \
      python -m pytest -m gpu $gpu_tests -q -p no:cacheprovider >"$out/sanitizer_$tool.txt" 2>&1
    rc=$?
    echo "$tool: exit $rc (124: timed out); $(grep -E "ERROR SUMMARY|RACECHECK SUMMARY" "$out/sanitizer_$tool.log" 2>/dev/null | tail -1)"
    tail -3 "$out/sanitizer_$tool.txt"
    [ "$rc" -eq 0 ] || status=1
  done
fi

echo "== kernel timings"
bench=bench
run_py "$bench/gpu_preprocess.py" --json "$out/gpu_preprocess.json" >"$out/gpu_preprocess.txt" 2>&1 \
  || { cat "$out/gpu_preprocess.txt"; status=1; }
if [ -f "$bench/gpu_similarity.py" ]; then
  run_py "$bench/gpu_similarity.py" --json "$out/gpu_similarity.json" >"$out/gpu_similarity.txt" 2>&1 \
    || { cat "$out/gpu_similarity.txt"; status=1; }
fi

echo "== summary"
cat "$out/gpu_preprocess.txt" 2>/dev/null
[ -f "$out/gpu_similarity.txt" ] && cat "$out/gpu_similarity.txt"
exit $status
