#!/usr/bin/env bash
# ASan + UBSan: build the native extension with USCLIP_SANITIZE=ON (CPU kernels; CUDA off) in a
# temporary folder with cmake directly, then run the kernel tests and the fuzz tests against
# it through a temporary package copy (PYTHONPATH first), so the normal build is never touched.
# CPython is not instrumented: libasan is preloaded and leak checking is off (CPython keeps
# its arenas until exit). Any sanitizer report fails the step: UBSan aborts on the first
# finding (-fno-sanitize-recover), ASan halts on its first error, and both write to $log.
# Usage: .ci/sanitize.sh (from any folder; uses the python3 on PATH, e.g. CI's venv).
# USCLIP_SANITIZE_BUILD=DIR keeps the build in DIR (incremental reruns); default: a temp folder.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
py=$(command -v python3)
work=$(mktemp -d "${TMPDIR:-/tmp}/usclip-sanitize.XXXXXX")
trap 'rm -rf "$work"' EXIT

pybind_dir=$("$py" -m pybind11 --cmakedir 2>/dev/null) || {
  "$py" -m pip install -q "pybind11>=2.12"   # the build requirement pyproject.toml declares
  pybind_dir=$("$py" -m pybind11 --cmakedir)
}
gen=(); command -v ninja >/dev/null && gen=(-G Ninja)
build=${USCLIP_SANITIZE_BUILD:-$work/build}
echo "== sanitizer build (ASan + UBSan, CPU kernels) in $build"
# Debug without LTO: the kernels keep their own -O3 (the code that ships is what is checked),
# the pybind11 glue compiles at -O0 and pybind11 adds no -flto: a third less build time.
cmake -S . -B "$build" "${gen[@]}" -DCMAKE_BUILD_TYPE=Debug -DCMAKE_INTERPROCEDURAL_OPTIMIZATION=OFF \
  -DUSCLIP_CUDA=OFF -DUSCLIP_SANITIZE=ON -DPython_EXECUTABLE="$py" -Dpybind11_DIR="$pybind_dir" \
  >"$work/configure.log" || { cat "$work/configure.log"; exit 1; }
cmake --build "$build" -j "$(nproc)" >"$work/build.log" || { tail -50 "$work/build.log"; exit 1; }
echo "built in $(( $(date +%s) - start )) s"
so=$(ls "$build"/_native*.so)
if ! nm -D "$so" | grep __asan_init >/dev/null; then  # no -q: a closed pipe fails pipefail
  echo "sanitize: $so is not instrumented"; exit 1
fi

# The package, with every entry linked back to the source tree except the extension.
pkg="$work/pkg/usclip_sdk"
mkdir -p "$pkg"
for entry in python/usclip_sdk/*; do
  case "$(basename "$entry")" in _native*.so|__pycache__) continue ;; esac
  ln -s "$PWD/$entry" "$pkg/"
done
cp "$so" "$pkg/"

log="$work/reports"
mkdir -p "$log"
# libstdc++ too: loaded later, ASan's __cxa_throw interceptor finds no real one and aborts on
# the first C++ exception the bindings translate into a Python error.
export LD_PRELOAD
LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libstdc++.so)"
export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=1:allocator_may_return_null=1:log_path=$log/asan"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$log/ubsan"
export PYTHONPATH="$work/pkg:$PWD/tests${PYTHONPATH:+:$PYTHONPATH}"
export USCLIP_FUZZ_EXAMPLES="${USCLIP_FUZZ_EXAMPLES:-100}"
"$py" -c "import usclip_sdk._native as n, sys; f = n.__file__; print('extension:', f); \
sys.exit(0 if f.startswith('$work/pkg') else 'not the sanitized build')"
echo "== kernel + fuzz tests against the sanitized extension"
"$py" -m pytest -q -p no:cacheprovider tests/native/test_ops_preprocess.py tests/native/test_ops_similarity.py \
  tests/native/test_ops_similarity_errors.py tests/native/test_fuzz_ops.py && status=0 || status=$?
unset LD_PRELOAD
if ls "$log"/* >/dev/null 2>&1; then
  echo "sanitizer report(s):"; cat "$log"/*; exit 1
fi
if [ "$status" -ne 0 ]; then echo "sanitize: tests failed (exit $status)"; exit "$status"; fi
echo "no sanitizer report ($(( $(date +%s) - start )) s)"
