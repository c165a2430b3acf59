#!/usr/bin/env bash
# Builds libonednn_conv.so: stride-1 NHWC convolutions (forward, backward-data, backward-weights; f32 and bf16)
# through oneDNN as XLA FFI handlers (issue 19's "reach the AMX units from JAX" lever; conv.py wraps them in a
# custom_vjp, probe.py and train_step.py measure them). The wheels are downloaded once into BUILD_DIR. Needs g++ and pip (PyPI):
# oneDNN 3.2 from the onednn-cpu-gomp / onednn-devel-cpu-gomp wheels (CPU only, GNU OpenMP; the newer `onednn`
# wheels need Intel's SYCL and compiler runtimes), and the XLA FFI headers jaxlib ships (jax.ffi.include_dir()).
#   PYTHON=.venv/bin/python bash benchmarks/onednn_ffi/build.sh [BUILD_DIR]
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
PYTHON="${PYTHON:-python3}"
BUILD="${1:-$HERE/build}"
mkdir -p "$BUILD"
if ! ls "$BUILD"/onednn_devel_cpu_gomp-2023.2.0-*.whl "$BUILD"/onednn_cpu_gomp-2023.2.0-*.whl >/dev/null 2>&1; then
  "$PYTHON" -m pip download -q --no-deps onednn-cpu-gomp==2023.2.0 onednn-devel-cpu-gomp==2023.2.0 -d "$BUILD"
fi
for w in "$BUILD"/onednn_*cpu_gomp-2023.2.0-*.whl; do "$PYTHON" -m zipfile -e "$w" "$BUILD/dnnl"; done
INC="$BUILD/dnnl/onednn_devel_cpu_gomp-2023.2.0.data/data/include"
LIB="$BUILD/dnnl/onednn_cpu_gomp-2023.2.0.data/data/lib"
JINC="$("$PYTHON" -c 'import jax.ffi; print(jax.ffi.include_dir())')"
g++ -O2 -std=c++17 -shared -fPIC -w -I"$JINC" -I"$INC" "$HERE/onednn_conv.cc" -o "$BUILD/libonednn_conv.so" \
    -L"$LIB" -ldnnl -Wl,-rpath,"$LIB"
echo "$BUILD/libonednn_conv.so"
