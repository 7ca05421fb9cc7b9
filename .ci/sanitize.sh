#!/usr/bin/env bash
# ASan + UBSan: build the native extension with USCLIP_SANITIZE=ON (CPU kernels; CUDA off) in a
# temporary folder with cmake directly, then run the kernel tests and the fuzz tests against
# it through a temporary package copy (PYTHONPATH first), so the normal build is never touched.
# CPython is not instrumented: libasan is preloaded and leak checking is off (CPython keeps
# its arenas until exit). Any sanitizer report fails the step: UBSan aborts on the first
# finding (-fno-sanitize-recover), ASan halts on its first error, and both write to $log.
# Usage: .ci/sanitize.sh (from any folder; uses the python3 on PATH, e.g. CI's venv).
# USCLIP_SANITIZE_BUILD=DIR keeps the build in DIR (incremental reruns); default: a temp folder.
name=sanitize marker=__asan_init build_dir_var=USCLIP_SANITIZE_BUILD
cmake_extra=(-DUSCLIP_SANITIZE=ON)
. "$(dirname "$0")/instrumented_build.sh"

# libstdc++ too: loaded later, ASan's __cxa_throw interceptor finds no real one and aborts on
# the first C++ exception the bindings translate into a Python error.
export LD_PRELOAD
LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libstdc++.so)"
export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=1:allocator_may_return_null=1:log_path=$log/asan"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$log/ubsan"
export USCLIP_FUZZ_EXAMPLES="${USCLIP_FUZZ_EXAMPLES:-100}"
check_instrumented_import
echo "== kernel + fuzz tests against the sanitized extension"
"$py" -m pytest -q -p no:cacheprovider tests/native/test_ops_preprocess.py tests/native/test_ops_similarity.py \
  tests/native/test_ops_similarity_errors.py tests/native/test_ops_gate.py tests/native/test_fuzz_ops.py \
  && status=0 || status=$?
unset LD_PRELOAD
if ls "$log"/* >/dev/null 2>&1; then
  echo "sanitizer report(s):"; cat "$log"/*; exit 1
fi
if [ "$status" -ne 0 ]; then echo "sanitize: tests failed (exit $status)"; exit "$status"; fi
echo "no sanitizer report ($(( $(date +%s) - start )) s)"
