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
# The flags go in through CMAKE_CXX_FLAGS / CMAKE_MODULE_LINKER_FLAGS: no TSan option in CMake.
name=tsan marker=__tsan_init build_dir_var=USCLIP_TSAN_BUILD
cmake_extra=(-DCMAKE_CXX_FLAGS="-fsanitize=thread -fno-omit-frame-pointer -g"
             -DCMAKE_MODULE_LINKER_FLAGS=-fsanitize=thread)
. "$(dirname "$0")/instrumented_build.sh"

export LD_PRELOAD
LD_PRELOAD="$(gcc -print-file-name=libtsan.so)"
# second_deadlock_stack: a lock-order report names both acquisitions. exitcode 66 marks a
# report even when the report file could not be written. tsan.supp: glibc-internal orderings
# TSan cannot see, each explained there.
export TSAN_OPTIONS="halt_on_error=1:exitcode=66:second_deadlock_stack=1:log_path=$log/tsan:suppressions=$PWD/.ci/tsan.supp"
# numpy's OpenBLAS pool (the tests' references) syncs in ways TSan cannot see and is not under test.
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
# OpenCV's own pool likewise (the gate tests' frames and region detection use cv2): its
# uninstrumented workers' new/delete showed as a race inside cv2.abi3.so, not in our kernels.
export OPENCV_FOR_THREADS_NUM=1
check_instrumented_import
echo "== concurrency + kernel tests against the TSan extension"
"$py" -m pytest -q -p no:cacheprovider tests/native/test_ops_concurrency.py \
  tests/native/test_ops_preprocess.py tests/native/test_ops_similarity.py tests/native/test_ops_gate.py \
  && status=0 || status=$?
unset LD_PRELOAD
if ls "$log"/* >/dev/null 2>&1; then
  echo "tsan report(s):"; cat "$log"/*; exit 1
fi
if [ "$status" -ne 0 ]; then echo "tsan: tests failed (exit $status)"; exit "$status"; fi
echo "no TSan report ($(( $(date +%s) - start )) s)"
