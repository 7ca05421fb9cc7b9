#!/usr/bin/env bash
# ThreadSanitizer: build the native extension with -fsanitize=thread (CPU kernels; CUDA off) in
# a temporary folder with cmake directly, then run the native concurrency tests (many Python
# threads calling the kernels, which release the GIL and share one thread pool,
# csrc/common/parallel.cpp) and the kernel tests against it through a temporary package copy
# (PYTHONPATH first), so the normal build is never touched. The flags go in through
# CMAKE_CXX_FLAGS / CMAKE_MODULE_LINKER_FLAGS, so CMakeLists.txt needs no TSan option.
# CPython is not instrumented: libtsan is preloaded (it must be the first runtime in the
# process); only races where the instrumented kernels touch memory are reported, which is the
# code under test. Any report fails the step (halt_on_error, report files in $log).
# Usage: .ci/tsan.sh (from any folder; uses the python3 on PATH, e.g. CI's venv).
# USCLIP_TSAN_BUILD=DIR keeps the build in DIR (incremental reruns); default: a temp folder.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
py=$(command -v python3)
work=$(mktemp -d "${TMPDIR:-/tmp}/usclip-tsan.XXXXXX")
trap 'rm -rf "$work"' EXIT

pybind_dir=$("$py" -m pybind11 --cmakedir 2>/dev/null) || {
  "$py" -m pip install -q "pybind11>=2.12"   # the build requirement pyproject.toml declares
  pybind_dir=$("$py" -m pybind11 --cmakedir)
}
gen=(); command -v ninja >/dev/null && gen=(-G Ninja)
build=${USCLIP_TSAN_BUILD:-$work/build}
echo "== TSan build (CPU kernels) in $build"
# Debug without LTO, as in sanitize.sh: the kernels keep their own -O3 (the code that ships is
# what is checked), the pybind11 glue compiles at -O0.
flags="-fsanitize=thread -fno-omit-frame-pointer -g"
cmake -S . -B "$build" "${gen[@]}" -DCMAKE_BUILD_TYPE=Debug -DCMAKE_INTERPROCEDURAL_OPTIMIZATION=OFF \
  -DUSCLIP_CUDA=OFF -DCMAKE_CXX_FLAGS="$flags" -DCMAKE_MODULE_LINKER_FLAGS="-fsanitize=thread" \
  -DPython_EXECUTABLE="$py" -Dpybind11_DIR="$pybind_dir" \
  >"$work/configure.log" || { cat "$work/configure.log"; exit 1; }
cmake --build "$build" -j "$(nproc)" >"$work/build.log" || { tail -50 "$work/build.log"; exit 1; }
echo "built in $(( $(date +%s) - start )) s"
so=$(ls "$build"/_native*.so)
if ! nm -D "$so" | grep __tsan_init >/dev/null; then  # no -q: a closed pipe fails pipefail
  echo "tsan: $so is not instrumented"; exit 1
fi

# The package, with every entry linked back to the source tree except the extension.
pkg="$work/pkg/usclip_sdk"
mkdir -p "$pkg"
for entry in python/usclip_sdk/*; do
  case "$(basename "$entry")" in _native*.so|__pycache__) continue ;; esac
  ln -s "$PWD/$entry" "$pkg/"
done
cp "$so" "$pkg/"
# The dev install is editable: a finder that .pth processing puts on sys.meta_path maps
# usclip_sdk (and its extension) to the source tree and site-packages ahead of PYTHONPATH.
# sitecustomize runs after the .pth files, so it can take that finder out for this run only.
mkdir -p "$work/boot"
cat >"$work/boot/sitecustomize.py" <<'PY'
import sys
sys.meta_path[:] = [f for f in sys.meta_path if "ScikitBuild" not in type(f).__name__]
PY

log="$work/reports"
mkdir -p "$log"
export LD_PRELOAD
LD_PRELOAD="$(gcc -print-file-name=libtsan.so)"
# second_deadlock_stack: a lock-order report names both acquisitions. exitcode 66 marks a
# report even when the report file could not be written. tsan.supp: glibc-internal orderings
# TSan cannot see, each explained there.
export TSAN_OPTIONS="halt_on_error=1:exitcode=66:second_deadlock_stack=1:log_path=$log/tsan:suppressions=$PWD/.ci/tsan.supp"
export PYTHONPATH="$work/boot:$work/pkg:$PWD/tests${PYTHONPATH:+:$PYTHONPATH}"
# numpy's OpenBLAS pool (the tests' references) syncs in ways TSan cannot see and is not under test.
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
# The editable install maps usclip_sdk to the source tree through a finder; this proves the
# import really resolves to the TSan build.
"$py" -c "import usclip_sdk._native as n, sys; f = n.__file__; print('extension:', f); \
sys.exit(0 if f.startswith('$work/pkg') else 'not the TSan build')"
echo "== concurrency + kernel tests against the TSan extension"
"$py" -m pytest -q -p no:cacheprovider tests/native/test_ops_concurrency.py \
  tests/native/test_ops_preprocess.py tests/native/test_ops_similarity.py && status=0 || status=$?
unset LD_PRELOAD
if ls "$log"/* >/dev/null 2>&1; then
  echo "tsan report(s):"; cat "$log"/*; exit 1
fi
if [ "$status" -ne 0 ]; then echo "tsan: tests failed (exit $status)"; exit "$status"; fi
echo "no TSan report ($(( $(date +%s) - start )) s)"
