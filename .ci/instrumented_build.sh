# Sourced by .ci/sanitize.sh and .ci/tsan.sh: build the native extension with sanitizer flags
# (CPU kernels; CUDA off) in a temporary folder with cmake directly, and assemble a package
# copy that imports it, so the normal build is never touched.
# In: $name (for messages), $marker (a symbol the instrumented .so must export, e.g.
# __asan_init), $build_dir_var (env var that keeps the build for incremental reruns), and the
# extra cmake arguments in the array cmake_extra. Out: $py, $work (removed on exit), $log
# (report folder), $start, and PYTHONPATH set to the package copy first.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
start=$(date +%s)
py=$(command -v python3)
work=$(mktemp -d "${TMPDIR:-/tmp}/usclip-$name.XXXXXX")
trap 'rm -rf "$work"' EXIT

pybind_dir=$("$py" -m pybind11 --cmakedir 2>/dev/null) || {
  "$py" -m pip install -q "pybind11>=2.12"   # the build requirement pyproject.toml declares
  pybind_dir=$("$py" -m pybind11 --cmakedir)
}
gen=(); command -v ninja >/dev/null && gen=(-G Ninja)
build=${!build_dir_var:-$work/build}
echo "== $name build (CPU kernels) in $build"
# Debug without LTO: the kernels keep their own -O3 (the code that ships is what is checked),
# the pybind11 glue compiles at -O0 and pybind11 adds no -flto: a third less build time.
cmake -S . -B "$build" "${gen[@]}" -DCMAKE_BUILD_TYPE=Debug -DCMAKE_INTERPROCEDURAL_OPTIMIZATION=OFF \
  -DUSCLIP_CUDA=OFF -DPython_EXECUTABLE="$py" -Dpybind11_DIR="$pybind_dir" "${cmake_extra[@]}" \
  >"$work/configure.log" || { cat "$work/configure.log"; exit 1; }
cmake --build "$build" -j "$(nproc)" >"$work/build.log" || { tail -50 "$work/build.log"; exit 1; }
echo "built in $(( $(date +%s) - start )) s"
so=$(ls "$build"/_native*.so)
if ! nm -D "$so" | grep "$marker" >/dev/null; then  # no -q: a closed pipe fails pipefail
  echo "$name: $so is not instrumented"; exit 1
fi

# The package, with every entry linked back to the source tree except the extension.
pkg="$work/pkg/usclip_sdk"
mkdir -p "$pkg"
for entry in python/usclip_sdk/*; do
  case "$(basename "$entry")" in _native*.so|__pycache__) continue ;; esac
  ln -s "$PWD/$entry" "$pkg/"
done
cp "$so" "$pkg/"
# A dev install is editable: a finder that .pth processing puts on sys.meta_path maps
# usclip_sdk (and its extension) to the source tree and site-packages ahead of PYTHONPATH.
# sitecustomize runs after the .pth files, so it can take that finder out for this run only.
mkdir -p "$work/boot"
cat >"$work/boot/sitecustomize.py" <<'PY'
import sys
sys.meta_path[:] = [f for f in sys.meta_path if "ScikitBuild" not in type(f).__name__]
PY
log="$work/reports"
mkdir -p "$log"
export PYTHONPATH="$work/boot:$work/pkg:$PWD/tests${PYTHONPATH:+:$PYTHONPATH}"

# Proves the import really resolves to the instrumented build (call after LD_PRELOAD is set).
check_instrumented_import() {
  "$py" -c "import usclip_sdk._native as n, sys; f = n.__file__; print('extension:', f); \
sys.exit(0 if f.startswith('$work/pkg') else 'not the $name build')"
}
