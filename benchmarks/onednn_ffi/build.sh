#!/usr/bin/env bash
# Builds libonednn_conv.so: a bf16 NHWC convolution through oneDNN as an XLA FFI handler (a probe of issue 19's
# "reach the AMX units from JAX" lever; benchmarks/onednn_ffi/probe.py measures it). Needs g++ and pip (PyPI):
# oneDNN 3.2 from the onednn-cpu-gomp / onednn-devel-cpu-gomp wheels (CPU only, GNU OpenMP; the newer `onednn`
# wheels need Intel's SYCL and compiler runtimes), and the XLA FFI headers jaxlib ships (jax.ffi.include_dir()).
#   PYTHON=.venv/bin/python bash benchmarks/onednn_ffi/build.sh [BUILD_DIR]
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
PYTHON="${PYTHON:-python3}"
BUILD="${1:-$HERE/build}"
mkdir -p "$BUILD"
"$PYTHON" -m pip download -q --no-deps onednn-cpu-gomp==2023.2.0 onednn-devel-cpu-gomp==2023.2.0 -d "$BUILD"
for w in "$BUILD"/onednn_*cpu_gomp-2023.2.0-*.whl; do "$PYTHON" -m zipfile -e "$w" "$BUILD/dnnl"; done
INC="$BUILD/dnnl/onednn_devel_cpu_gomp-2023.2.0.data/data/include"
LIB="$BUILD/dnnl/onednn_cpu_gomp-2023.2.0.data/data/lib"
JINC="$("$PYTHON" -c 'import jax.ffi; print(jax.ffi.include_dir())')"
g++ -O2 -std=c++17 -shared -fPIC -w -I"$JINC" -I"$INC" "$HERE/onednn_conv.cc" -o "$BUILD/libonednn_conv.so" \
    -L"$LIB" -ldnnl -Wl,-rpath,"$LIB"
echo "$BUILD/libonednn_conv.so"
