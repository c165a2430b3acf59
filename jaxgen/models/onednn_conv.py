"""oneDNN convolutions (``conv_backend = "onednn"``, and ``"auto"`` -- the config default -- for float32 training on
the CPUs where they measured faster: :func:`resolve`): strided NHWC convolutions as XLA FFI custom calls.

    onednn_conv.configure("onednn", compute_dtype="bfloat16")  # what `jaxgen train/upscale` do when chosen
    y = onednn_conv.conv2d_nhwc(x, w, ((1, 1), (1, 1)), jnp.bfloat16)   # differentiable (custom_vjp)
    y = onednn_conv.conv2d_nhwc(x, w, ((1, 1), (1, 1)), jnp.float32, (2, 2))   # a stride-2 downsampling
    nn.Conv(..., conv_general_dilated=onednn_conv.flax_conv_fn(jnp.bfloat16))  # drop-in for flax

``onednn_conv.cc`` (next to this file) holds three XLA FFI handlers -- oneDNN's forward_training, backward-data
and backward-weights convolution primitives. :func:`load` compiles it with ``g++`` on first use into
``~/.cache/jaxgen/onednn/<key>/`` (``$XDG_CACHE_HOME`` honoured; the key hashes the source, the jaxlib version,
oneDNN's version header and where it lives), against oneDNN 3.2 from the ``onednn-cpu-gomp`` /
``onednn-devel-cpu-gomp`` wheels (``pip install 'jaxgen[onednn]'``: their ``lib/`` and ``include/`` land under
``sys.prefix``; :data:`PREFIX_ENV` points elsewhere) and jaxlib's FFI headers (``jax.ffi.include_dir()``), then
registers the handlers as CPU FFI targets (once per process). A missing compiler, header or library raises
:class:`OnednnUnavailableError` (a ``ValueError``: the CLI prints it as one ``jaxgen: error:`` line, exit 2).

:func:`conv2d_nhwc` runs the forward primitive; its VJP runs backward-data and backward-weights (no XLA
convolution in the step). ``compute_dtype`` is what oneDNN multiplies in: ``float32`` (AVX-512) or ``bfloat16``
(AMX on Sapphire Rapids; f32 accumulation and f32 results) -- ``torch.autocast('cpu', torch.bfloat16)``'s role
for the convolutions. Inputs are cast to it in XLA; outputs and gradients come back in the caller's dtypes, so
parameters, bias adds, activations and the optimizer stay f32.

Sharded batches: each custom call is wrapped in ``jax.experimental.custom_partitioning`` with the batch
dimension as the only shardable factor: on the data-parallel mesh every device convolves its own shard (forward,
backward-data) and the weight gradient is summed over the shards (``psum``); other shardings are replicated.

:func:`conv_general_dilated` has ``lax.conv_general_dilated``'s signature (what ``flax.linen.Conv`` calls) and
``jaxgen.models.conv_vjp``'s fallback rules: only the undilated, ungrouped NHWC/HWIO case (any window strides:
the discriminators', TransformerNet's and the translation generators' stride-2 downsamplings too) with explicit
(non-negative), ``'SAME'`` or ``'VALID'`` padding in f32/bf16 and no ``precision`` / ``preferred_element_type``
request goes to oneDNN; everything else (transposed convolutions' dilated inputs, grouped or dilated kernels)
goes to ``lax.conv_general_dilated`` unchanged. :func:`conv_transpose` is ``lax.conv_transpose``'s drop-in for
``jaxgen.models.layers.ConvTranspose`` (``transpose_kernel=True``): the transpose of a convolution is oneDNN's
backward-data primitive, its gradients the forward and backward-weights primitives with the roles swapped
(XLA:CPU's own kernel gradient of a transposed convolution is 50-90x its forward:
``benchmarks/conv_transpose_grad.py``).

:func:`configure` is the process-wide switch: with ``"onednn"`` it loads the library and installs
:func:`flax_conv_fn` as ``conv_vjp``'s override, so every convolution jaxgen's models build through
``conv_vjp.flax_conv_fn()`` (``layers.conv``, TransformerNet, VGG, Real-CUGAN) or ``conv_vjp.override_or_lax()``
(the discriminators, the CycleGAN / pix2pix generators, AdaIN's networks), and every ``layers.ConvTranspose``
through ``conv_vjp.transpose_override()``, traced from then on, inside
``layers.repeat_blocks``' scans too, takes oneDNN. Measured: ``benchmarks/RESULTS.md``, ``docs/performance.md``.
The custom calls have no ``vmap`` rule: ``layers.repeat_blocks``' stacked init traces XLA's convolutions instead.

Ported from this repository's ``benchmarks/onednn_ffi/conv.py`` / ``onednn_conv.cc`` (commits db3e4da, 0d5eca2,
73570c0), which measured it; the primitives follow oneDNN 3.2's C++ API (``oneapi/dnnl/dnnl.hpp``).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.experimental.custom_partitioning import custom_partitioning
from jax.sharding import NamedSharding, PartitionSpec as P

from jaxgen import xla_setup
from jaxgen.config import CONV_BACKENDS, check_conv_backend, default_conv_backend
from jaxgen.models import conv_vjp

__all__ = ["INSTALL_HINT", "OnednnUnavailableError", "PREFIX_ENV", "SOURCE", "add_argument", "bf16",
           "bf16_supported", "build_key", "cache_dir", "configure", "conv2d_nhwc", "conv_general_dilated",
           "conv_transpose", "conv_transpose_nhwc", "current_backend", "enabled", "find_toolchain", "flax_conv_fn",
           "implementations", "last_team", "load", "reference_kernels", "resolve", "set_threads"]

SOURCE = Path(__file__).with_name("onednn_conv.cc")
PREFIX_ENV = "JAXGEN_ONEDNN_PREFIX"  # the folder holding oneDNN's lib/ and include/ (default: sys.prefix)
INSTALL_HINT = "pip install 'jaxgen[onednn]' (oneDNN 3.2 wheels) and a C++ compiler (g++; CXX names another)"
TARGETS = {"fwd": "onednn_conv_fwd", "bwd_data": "onednn_conv_bwd_data", "bwd_weights": "onednn_conv_bwd_weights"}
SYMBOLS = {"fwd": "OnednnConvFwd", "bwd_data": "OnednnConvBwdData", "bwd_weights": "OnednnConvBwdWeights"}
LIB_NAME = "libonednn_conv.so"
_LOADED: dict[str, Any] = {}

Padding = tuple[tuple[int, int], tuple[int, int]]
Strides = tuple[int, int]


class OnednnUnavailableError(ValueError):
    """``conv_backend = "onednn"`` cannot run here (no compiler, no oneDNN wheel, a non-CPU backend): one line
    saying what to install or change (``ValueError``: the CLI's user-error exit 2)."""


# ------------------------------------------------------------------------------------------- build and load


def find_toolchain(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The compiler, oneDNN's include and lib folders and its version header text, or
    :class:`OnednnUnavailableError` naming what is missing and :data:`INSTALL_HINT`."""
    environ = os.environ if environ is None else environ
    cxx_name = environ.get("CXX") or "g++"
    cxx = shutil.which(cxx_name, path=environ.get("PATH"))
    if cxx is None:
        raise OnednnUnavailableError(f"conv_backend 'onednn' needs a C++ compiler to build its extension; "
                                     f"{cxx_name!r} is not on PATH: {INSTALL_HINT}")
    prefix = Path(environ.get(PREFIX_ENV) or sys.prefix)
    include, lib = prefix / "include", prefix / "lib"
    header = include / "oneapi" / "dnnl" / "dnnl_version.h"
    missing = [str(p) for p in (include / "oneapi" / "dnnl" / "dnnl.hpp", header, lib / "libdnnl.so")
               if not p.is_file()]
    if missing:
        raise OnednnUnavailableError(f"conv_backend 'onednn' needs oneDNN 3.2's headers and library under {prefix} "
                                     f"(missing {', '.join(missing)}): {INSTALL_HINT}")
    return {"cxx": cxx, "include": str(include), "lib": str(lib), "version_header": header.read_text()}


def _jaxlib_version() -> str:
    try:
        return version("jaxlib")
    except PackageNotFoundError:  # pragma: no cover - jaxlib is a dependency
        return jax.__version__


def build_key(source: bytes, jaxlib_version: str, onednn_version_header: str, lib_dir: str) -> str:
    """The cache folder name of one build: a hash of the handler source, the jaxlib version (its FFI headers and
    ABI), oneDNN's version header and the library folder (its path is baked into the build as the rpath)."""
    h = hashlib.sha256()
    for part in (source, jaxlib_version.encode(), onednn_version_header.encode(), lib_dir.encode()):
        h.update(len(part).to_bytes(8, "little") + part)
    return h.hexdigest()[:16]


def cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$XDG_CACHE_HOME/jaxgen/onednn`` (default ``~/.cache/jaxgen/onednn``)."""
    environ = os.environ if environ is None else environ
    return Path(environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "jaxgen" / "onednn"


def build(environ: Mapping[str, str] | None = None) -> Path:
    """The compiled handler library for this source, jaxlib and oneDNN: from the cache, else built there with the
    compiler (into a temporary file renamed into place, so a concurrent process never loads a partial one)."""
    tools = find_toolchain(environ)
    source = SOURCE.read_bytes()
    key = build_key(source, _jaxlib_version(), tools["version_header"], tools["lib"])
    folder = cache_dir(environ) / key
    target = folder / LIB_NAME
    if target.is_file():
        return target
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{LIB_NAME}.", dir=folder)
        os.close(fd)
    except OSError as e:
        raise OnednnUnavailableError(f"conv_backend 'onednn': cannot write its build cache {folder} ({e.strerror}); "
                                     "set XDG_CACHE_HOME to a writable folder") from None
    cmd = [tools["cxx"], "-O2", "-std=c++17", "-shared", "-fPIC", "-w", f"-I{jax.ffi.include_dir()}",
           f"-I{tools['include']}", str(SOURCE), "-o", tmp, f"-L{tools['lib']}", "-ldnnl",
           f"-Wl,-rpath,{tools['lib']}"]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            first = next((ln for ln in r.stderr.splitlines() if "error" in ln), r.stderr.strip()[-300:])
            raise OnednnUnavailableError(f"conv_backend 'onednn': {tools['cxx']} failed to build {SOURCE.name}: "
                                         f"{first.strip()} (needs C++17 and oneDNN 3.2: {INSTALL_HINT})")
        os.chmod(tmp, 0o755)  # mkstemp's 0600; a shared cache folder's other users load it too
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def _gomp_loaded() -> bool:
    try:
        return "libgomp" in Path("/proc/self/maps").read_text()
    except OSError:  # not Linux: cannot tell
        return True


def load(environ: Mapping[str, str] | None = None) -> ctypes.CDLL:
    """Builds (or finds in the cache) and loads the handler library, registering its three CPU FFI targets; once
    per process. Sets ``OMP_NUM_THREADS`` to cores / XLA CPU devices first when nobody set it and GNU OpenMP is
    not loaded yet (it reads the variable once, when loaded): one oneDNN thread per device on the 2-device mesh
    (``xla_setup.configure_process`` sets it earlier for ``JAXGEN_CONV_BACKEND=onednn`` / ``--config.conv_backend``)."""
    if "lib" not in _LOADED:
        path = build(environ)
        if not _gomp_loaded():
            xla_setup.set_default_omp_threads(len(jax.devices("cpu")))
        lib = ctypes.CDLL(str(path))
        for kind, target in TARGETS.items():
            jax.ffi.register_ffi_target(target, jax.ffi.pycapsule(getattr(lib, SYMBOLS[kind])), platform="cpu")
        _LOADED["lib"] = lib
    return _LOADED["lib"]


def set_threads(n: int) -> None:
    """oneDNN's OpenMP team for every convolution run from now on, in this process: ``n`` threads (each calling
    thread's ``omp_set_num_threads``; primitives are made per team size), or ``OMP_NUM_THREADS``'s with 0. Loads
    the library. ``xla_setup.prepare_training`` sets it to ``xla_setup.omp_team`` of the step's devices."""
    load().JaxgenOnednnSetThreads(ctypes.c_int(max(0, int(n))))


def last_team() -> int:
    """The OpenMP team size the last oneDNN convolution of this process ran with (0 before any)."""
    return int(load().JaxgenOnednnLastTeam())


# ------------------------------------------------------------------------------------------ the process switch


def enabled() -> bool:
    """Whether :func:`configure` routed jaxgen's convolutions to oneDNN."""
    return conv_vjp.override() is not None


def current_backend() -> str:
    """``"onednn"`` or ``"xla"``: what :func:`configure` chose for models traced from now on."""
    return "onednn" if enabled() else "xla"


def bf16(compute_dtype: Any) -> bool:
    """Whether ``compute_dtype`` (``None``, a name or a dtype) is bfloat16."""
    return compute_dtype is not None and jnp.dtype(compute_dtype) == jnp.bfloat16


@functools.cache
def bf16_supported() -> bool:
    """Whether oneDNN has bf16 convolutions on this CPU: a 1x1 bf16 convolution's forward and both gradients run
    (oneDNN 3.2 makes them on AVX512-BF16 / AMX and on AVX-512 by conversion; an AVX2-only CPU -- AMD Zen 3,
    measured 2026-12-07 -- has none: its primitive descriptor cannot be created). Loads the library; the answer is
    kept for the process."""
    load()
    x = jnp.ones((1, 2, 2, 8), jnp.float32)
    w = jnp.ones((1, 1, 8, 8), jnp.float32)
    try:
        jax.block_until_ready(jax.jit(jax.grad(
            lambda x, w: jnp.sum(conv2d_nhwc(x, w, ((0, 0), (0, 0)), jnp.bfloat16)), argnums=(0, 1)))(x, w))
    except jax.errors.JaxRuntimeError as e:
        if "primitive creation failed" not in str(e):
            raise
        return False
    return True


def resolve(conv_backend: str, compute_dtype: Any = None, platform: str | None = None,
            networks: Sequence[str] = ()) -> str:
    """``"xla"`` or ``"onednn"`` for a ``conv_backend`` setting: itself unless ``"auto"``, which is ``"onednn"`` when
    the JAX backend (``platform``, default ``jax.default_backend()``) is the CPU, the run is one process (several
    hosts are unmeasured with it), ``xla_setup.prefers_onednn`` (float32 ``compute_dtype``, a CPU of
    ``xla_setup.ONEDNN_TRAIN_CPU_FLAGS``, or of ``ONEDNN_TRAIN_CPU_NETWORKS`` for a train step or forward of
    ``networks``, its model names; none: not known) and the library builds and loads here (:func:`load`; its cached
    build after the first time), else ``"xla"`` -- never an error."""
    if check_conv_backend(conv_backend, "conv_backend") != "auto":
        return conv_backend
    platform = jax.default_backend() if platform is None else platform
    float32 = compute_dtype is None or jnp.dtype(compute_dtype) == jnp.float32
    if platform != "cpu" or jax.process_count() > 1 or not xla_setup.prefers_onednn(float32, networks=networks):
        return "xla"
    try:
        load()
    except OnednnUnavailableError:
        return "xla"
    return "onednn"


def configure(conv_backend: str, compute_dtype: Any = None, platform: str | None = None,
              networks: Sequence[str] = ()) -> None:
    """The process-wide convolution backend for models traced from now on: ``"xla"``, ``"onednn"`` (loads the
    library; ``compute_dtype`` ``bfloat16`` multiplies in bf16 on AMX, anything else f32) or ``"auto"``
    (:func:`resolve`, for a train step or forward of ``networks``). ``"onednn"`` on a non-CPU JAX backend
    (``platform``, default ``jax.default_backend()``) is :class:`OnednnUnavailableError`: the FFI handlers are CPU
    code; so is ``compute_dtype`` bfloat16 where oneDNN has no bf16 convolution (:func:`bf16_supported`)."""
    conv_backend = resolve(conv_backend, compute_dtype, platform, networks)
    if conv_backend == "xla":
        conv_vjp.set_override(None)
        conv_vjp.set_transpose_override(None)
        return
    platform = jax.default_backend() if platform is None else platform
    if platform != "cpu":
        raise OnednnUnavailableError(f"conv_backend 'onednn' runs on the CPU backend only; this run's JAX backend is "
                                     f"{platform!r}: use conv_backend 'xla' (XLA's own {platform} convolutions)")
    load()
    if bf16(compute_dtype) and not bf16_supported():
        model = xla_setup.cpu_model()
        raise OnednnUnavailableError(
            f"compute_dtype 'bfloat16' with conv_backend 'onednn': oneDNN has no bf16 convolution on this CPU "
            f"({model}; it needs AVX-512, AVX512-BF16 or AMX): use compute_dtype 'float32' (or drop --bf16) for "
            f"oneDNN's f32 convolutions, or conv_backend 'xla'")
    # the custom_partitioning callbacks' pointers differ in every process: left in the cache key, no program with
    # these convolutions would ever come from the persistent cache. Their rules are this file's code, which keys
    # jaxgen's cache folder instead (xla_setup.CACHE_KEYED_SOURCES).
    jax.config.update("jax_remove_custom_partitioning_ptr_from_cache_key", True)
    dtype = jnp.dtype(jnp.bfloat16) if bf16(compute_dtype) else jnp.dtype(jnp.float32)
    conv_vjp.set_override(flax_conv_fn(dtype))
    conv_vjp.set_transpose_override(functools.partial(conv_transpose, compute_dtype=dtype))


def add_argument(parser: Any) -> None:
    """The inference commands' ``--conv-backend`` flag (default ``$JAXGEN_CONV_BACKEND``, else ``auto``: oneDNN
    where :func:`resolve` picks it -- the SR, fast-style and translation forwards measured 1.1-1.8x faster with it
    on those CPUs, ``benchmarks/RESULTS.md``); pass its value to :func:`configure` before the model is first
    traced."""
    parser.add_argument("--conv-backend", choices=CONV_BACKENDS, default=default_conv_backend(),
                        help="convolutions: xla, onednn (CPU; pip install 'jaxgen[onednn]' and g++; "
                             "docs/performance.md) or auto (onednn for float32 on the CPUs where it measured faster, "
                             "when installed; else xla); default auto")


# ------------------------------------------------------------------------------------------------ custom calls


def _onednn_dtypes(*arrays: jax.Array) -> bool:
    """Whether every array is float32 or bfloat16 (what the FFI handlers multiply)."""
    return all(jnp.dtype(a.dtype) in (jnp.dtype(jnp.float32), jnp.dtype(jnp.bfloat16)) for a in arrays)


def _attrs(padding: Padding, strides: Strides) -> dict:
    (pt, pb), (pl, pr) = padding
    return {"pt": np.int64(pt), "pb": np.int64(pb), "pl": np.int64(pl), "pr": np.int64(pr),
            "sh": np.int64(strides[0]), "sw": np.int64(strides[1])}


def _call(kind: str, a: jax.Array, b: jax.Array, padding: Padding, strides: Strides, out_shape: tuple,
          out_dtype: Any) -> jax.Array:
    out = jax.ShapeDtypeStruct(out_shape, out_dtype)
    return jax.ffi.ffi_call(TARGETS[kind], out)(a, b, **_attrs(padding, strides))


@functools.lru_cache(maxsize=None)
def implementations(x_shape: tuple[int, ...], w_shape: tuple[int, ...], padding: Padding, strides: Strides = (1, 1),
                    compute_dtype: str = "float32") -> tuple[str, str, str]:
    """The implementations oneDNN picks on this CPU for the forward, backward-data and backward-weights primitives
    of the convolution ``x [N,H,W,C] * w [KH,KW,C,O]`` (``padding`` ``((top, bottom), (left, right))``), named as
    ``ONEDNN_VERBOSE`` names them (``"brgconv:avx2"``, ``"jit:avx512_core"``, ``"ref:any"``); ``""`` where none
    can be made. A backward-weights name ends in ``"/blocked"`` where the handler reorders ``x`` and ``dy`` into
    the primitive's own blocked layout first (oneDNN 3.2's AVX2 direct kernel, ``jit:avx2``: 1.2-3x faster on it
    than on NHWC, measured on AMD Zen 3). Loads the library; kept per geometry for the process."""
    lib = load()
    n, h, w, c = (int(v) for v in x_shape)
    kh, kw, _, o = (int(v) for v in w_shape)
    (pt, pb), (pl, pr) = padding
    oh, ow = _out_hw(h, w, kh, kw, padding, strides)
    geo = (ctypes.c_int64 * 15)(n, h, w, c, kh, kw, o, oh, ow, pt, pb, pl, pr, *strides)
    buf = ctypes.create_string_buffer(256)
    bf16_ops = int(jnp.dtype(compute_dtype) == jnp.bfloat16)
    names = []
    for kind in range(3):
        length = lib.JaxgenOnednnImpl(ctypes.c_int(kind), ctypes.c_int(bf16_ops), geo, buf, ctypes.c_int(len(buf)))
        names.append(buf.value.decode() if length >= 0 else "")
    return tuple(names)


def reference_kernels(x_shape: Sequence[int], w_shape: Sequence[int], padding: Padding, strides: Strides = (1, 1),
                      compute_dtype: Any = jnp.float32) -> bool:
    """Whether oneDNN would run any of the convolution's three primitives with its reference code (``ref:``, or
    none at all: :func:`implementations`) -- naive loops: on an AVX2-only CPU the 9x9 32->3 backward-data of
    TransformerNet's last layer took 11 s a call there against XLA's 1.2 s for the layer's whole forward and
    backward (2026-12-07, AMD EPYC Zen 3). :func:`conv_general_dilated` leaves such convolutions to XLA."""
    names = implementations(tuple(int(v) for v in x_shape), tuple(int(v) for v in w_shape),
                            tuple((int(lo), int(hi)) for lo, hi in padding), tuple(int(v) for v in strides),
                            jnp.dtype(compute_dtype).name)
    return any(not name or name.startswith("ref") for name in names)


def _out_hw(h: int, w: int, kh: int, kw: int, padding: Padding, strides: Strides) -> tuple[int, int]:
    """XLA's output size: ``(H + top + bottom - KH) // stride + 1`` (input rows past the last window unused)."""
    (pt, pb), (pl, pr) = padding
    return (h + pt + pb - kh) // strides[0] + 1, (w + pl + pr - kw) // strides[1] + 1


def _local_fwd(x, w, padding, strides, out_dtype):
    oh, ow = _out_hw(x.shape[1], x.shape[2], w.shape[0], w.shape[1], padding, strides)
    return _call("fwd", x, w, padding, strides, (x.shape[0], oh, ow, w.shape[3]), out_dtype)


def _local_bwd_data(dy, w, padding, strides, out_dtype, hw):
    return _call("bwd_data", dy, w, padding, strides, (dy.shape[0], hw[0], hw[1], w.shape[2]), out_dtype)


def _local_bwd_weights(x, dy, padding, strides, out_dtype, khw):
    return _call("bwd_weights", x, dy, padding, strides, (khw[0], khw[1], x.shape[3], dy.shape[3]), out_dtype)


# ------------------------------------------------------------------------------ partitioning (batch dimension only)


def _batch_axes(sharding: Any) -> Any:
    spec = getattr(sharding, "spec", None)
    return spec[0] if spec else None


def _batch_sharded(mesh, axes) -> NamedSharding:
    return NamedSharding(mesh, P(axes, None, None, None))


def _replicated(mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def _part_batch_major(local):
    """Partition rule for fwd / bwd-data: operand 0 and the result sharded on the batch, operand 1 replicated."""

    def partition(*args):
        *static, mesh, arg_shapes, result_shape = args
        axes = _batch_axes(arg_shapes[0].sharding)
        shardings = (_batch_sharded(mesh, axes), _replicated(mesh))
        return mesh, lambda a, b: local(a, b, *static), _batch_sharded(mesh, axes), shardings

    def infer(*args):
        *_, mesh, arg_shapes, result_shape = args
        return _batch_sharded(mesh, _batch_axes(arg_shapes[0].sharding))

    return partition, infer


def _part_weights():
    """Partition rule for bwd-weights: both operands sharded on the batch, the result replicated (psum)."""

    def partition(padding, strides, out_dtype, khw, mesh, arg_shapes, result_shape):
        axes = _batch_axes(arg_shapes[0].sharding)
        shardings = (_batch_sharded(mesh, axes), _batch_sharded(mesh, axes))

        def lower(x, dy):
            dw = _local_bwd_weights(x, dy, padding, strides, out_dtype, khw)
            return dw if axes is None else lax.psum(dw, axes)

        return mesh, lower, _replicated(mesh), shardings

    def infer(padding, strides, out_dtype, khw, mesh, arg_shapes, result_shape):
        return _replicated(mesh)

    return partition, infer


def _replicate(rule: str) -> tuple[str, ...]:
    """Every factor of ``rule`` but the batch ``n``, in order of first appearance (Shardy wants them sorted)."""
    return tuple(dict.fromkeys(f for f in rule.replace(",", " ").replace("->", " ").split() if f != "n"))


_FWD_RULE, _BWD_DATA_RULE, _BWD_W_RULE = "n h w c, i j c o -> n a b o", "n a b o, i j c o -> n h w c", \
    "n h w c, n a b o -> i j c o"
_fwd_op = custom_partitioning(_local_fwd, static_argnums=(2, 3, 4))
_p, _i = _part_batch_major(_local_fwd)
_fwd_op.def_partition(partition=_p, infer_sharding_from_operands=_i,
                      sharding_rule=_FWD_RULE, need_replication_factors=_replicate(_FWD_RULE))
_bwd_data_op = custom_partitioning(_local_bwd_data, static_argnums=(2, 3, 4, 5))
_p, _i = _part_batch_major(_local_bwd_data)
_bwd_data_op.def_partition(partition=_p, infer_sharding_from_operands=_i,
                           sharding_rule=_BWD_DATA_RULE, need_replication_factors=_replicate(_BWD_DATA_RULE))
_bwd_weights_op = custom_partitioning(_local_bwd_weights, static_argnums=(2, 3, 4, 5))
_p, _i = _part_weights()
_bwd_weights_op.def_partition(partition=_p, infer_sharding_from_operands=_i,
                              sharding_rule=_BWD_W_RULE, reduction_factors=("n",),
                              need_replication_factors=_replicate(_BWD_W_RULE))
del _p, _i


# ------------------------------------------------------------------------------------------------- custom_vjp


@jax.tree_util.register_pytree_node_class
class _Res(tuple):
    """VJP residuals: x and w in the compute dtype (arrays), the primal dtypes as static aux data."""

    def tree_flatten(self):
        return (self[0], self[1]), (self[2], self[3])

    @classmethod
    def tree_unflatten(cls, aux, children):
        return cls((*children, *aux))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def conv2d_nhwc(x: jax.Array, w: jax.Array, padding: Padding, compute_dtype: Any = jnp.float32,
                strides: Strides = (1, 1)) -> jax.Array:
    """``lax.conv_general_dilated(x [B,H,W,C], w [kh,kw,C,O], strides, padding, NHWC/HWIO)`` on oneDNN,
    multiplying in ``compute_dtype`` (f32 or bf16) and returning ``result_type(x, w)``. ``padding``: ``((top,
    bottom), (left, right))`` non-negative ints; ``strides``: positive ints. Needs :func:`load` first."""
    return _fwd(x, w, padding, compute_dtype, strides)[0]


def _fwd(x, w, padding, compute_dtype, strides):
    cd = jnp.dtype(compute_dtype)
    xc, wc = x.astype(cd), w.astype(cd)
    y = _fwd_op(xc, wc, padding, tuple(strides), jnp.result_type(x, w))
    return y, _Res((xc, wc, jnp.dtype(x.dtype), jnp.dtype(w.dtype)))


def _bwd(padding, compute_dtype, strides, res, dy):
    xc, wc, x_dtype, w_dtype = res
    dyc = dy.astype(jnp.dtype(compute_dtype))
    dx = _bwd_data_op(dyc, wc, padding, tuple(strides), x_dtype, tuple(xc.shape[1:3]))
    dw = _bwd_weights_op(xc, dyc, padding, tuple(strides), w_dtype, tuple(wc.shape[0:2]))
    return dx, dw


conv2d_nhwc.defvjp(_fwd, _bwd)


# ----------------------------------------------------------------------------------------- transposed convolutions


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def conv_transpose_nhwc(x: jax.Array, kernel: jax.Array, padding: Padding, compute_dtype: Any,
                        strides: Strides) -> jax.Array:
    """The transpose (input gradient) of the convolution ``F(z) = conv(z, kernel, strides, padding)`` with
    ``kernel [kh, kw, O, C]`` as HWIO, applied to ``x [N, H, W, C]``: ``[N, (H-1) s + kh - top - bottom, ..., O]``
    -- oneDNN's backward-data primitive; its gradients are the forward (input) and backward-weights (kernel)
    primitives with the roles swapped. ``padding`` is ``F``'s (non-negative)."""
    return _ct_fwd(x, kernel, padding, compute_dtype, strides)[0]


def _transposed_hw(x_shape: Sequence[int], kernel_shape: Sequence[int], padding: Padding,
                   strides: Strides) -> tuple[int, int]:
    """The output size of the transposed convolution of ``x [N,H,W,C]`` (= the input size of the convolution
    ``F`` it transposes, ``padding`` ``F``'s): ``((H - 1) sh + kh - top - bottom, (W - 1) sw + kw - left - right)``."""
    (top, bottom), (left, right) = padding
    return ((x_shape[1] - 1) * strides[0] + kernel_shape[0] - top - bottom,
            (x_shape[2] - 1) * strides[1] + kernel_shape[1] - left - right)


def _ct_fwd(x, kernel, padding, compute_dtype, strides):
    cd = jnp.dtype(compute_dtype)
    xc, kc = x.astype(cd), kernel.astype(cd)
    hw = _transposed_hw(x.shape, kernel.shape, padding, strides)
    y = _bwd_data_op(xc, kc, padding, tuple(strides), jnp.result_type(x, kernel), hw)
    return y, _Res((xc, kc, jnp.dtype(x.dtype), jnp.dtype(kernel.dtype)))


def _ct_bwd(padding, compute_dtype, strides, res, dy):
    xc, kc, x_dtype, k_dtype = res
    dyc = dy.astype(jnp.dtype(compute_dtype))
    dx = _fwd_op(dyc, kc, padding, tuple(strides), x_dtype)
    dk = _bwd_weights_op(dyc, xc, padding, tuple(strides), k_dtype, tuple(kc.shape[0:2]))
    return dx, dk


conv_transpose_nhwc.defvjp(_ct_fwd, _ct_bwd)


def conv_transpose(x: jax.Array, kernel: jax.Array, strides: Sequence[int], padding: Any, *,
                   compute_dtype: Any = jnp.float32) -> jax.Array:
    """Drop-in for ``lax.conv_transpose(x, kernel, strides, padding, ('NHWC', 'HWIO', 'NHWC'),
    transpose_kernel=True)`` with explicit ``((top, bottom), (left, right))`` padding (what
    ``jaxgen.models.layers.ConvTranspose`` calls): on oneDNN (:func:`conv_transpose_nhwc`) when it is the
    transpose of a convolution with non-negative padding (``kh - 1 - top`` etc.), in f32/bf16, for which oneDNN has
    more than its reference code here (:func:`reference_kernels` of that convolution: its three primitives are
    this one's forward and gradients); else lax's."""
    strides = tuple(int(s) for s in strides)
    kh, kw = kernel.shape[:2]
    pads = None if isinstance(padding, str) else tuple((int(lo), int(hi)) for lo, hi in padding)
    if (pads is not None and len(pads) == 2 and x.ndim == 4 and len(strides) == 2 and min(strides) >= 1
            and _onednn_dtypes(x, kernel)):
        conv_pad = ((kh - 1 - pads[0][0], kh - 1 - pads[0][1]), (kw - 1 - pads[1][0], kw - 1 - pads[1][1]))
        z_shape = (x.shape[0], *_transposed_hw(x.shape, kernel.shape, conv_pad, strides), kernel.shape[2])
        if (min(min(p) for p in conv_pad) >= 0
                and not reference_kernels(z_shape, kernel.shape, conv_pad, strides, compute_dtype)):
            return conv_transpose_nhwc(x, kernel, conv_pad, jnp.dtype(compute_dtype), strides)
    return lax.conv_transpose(x, kernel, strides, padding, dimension_numbers=("NHWC", "HWIO", "NHWC"),
                              transpose_kernel=True)


# ----------------------------------------------------------------------------------------------- flax drop-in


def conv_general_dilated(
    lhs: jax.Array,
    rhs: jax.Array,
    window_strides: Sequence[int],
    padding: Any,
    lhs_dilation: Sequence[int] | None = None,
    rhs_dilation: Sequence[int] | None = None,
    dimension_numbers: Any = None,
    feature_group_count: int = 1,
    batch_group_count: int = 1,
    precision: Any = None,
    preferred_element_type: Any = None,
    *,
    compute_dtype: Any = jnp.float32,
) -> jax.Array:
    """Drop-in for ``lax.conv_general_dilated``: the undilated, ungrouped NHWC case (any window strides) goes to
    :func:`conv2d_nhwc` (in ``compute_dtype``) unless oneDNN has only reference code for it here
    (:func:`reference_kernels`), anything else to ``lax.conv_general_dilated`` unchanged."""
    pad = None
    strides = tuple(int(s) for s in window_strides)
    if (precision is None and preferred_element_type is None and _onednn_dtypes(lhs, rhs) and len(strides) == 2
            and min(strides) >= 1):
        explicit = padding
        if isinstance(padding, str) and padding in ("SAME", "SAME_LOWER") and lhs.ndim == 4:
            explicit = lax.padtype_to_pads(lhs.shape[1:3], rhs.shape[0:2], strides, padding)
        pad = conv_vjp.nhwc_padding(lhs.ndim, explicit, lhs_dilation, rhs_dilation, dimension_numbers,
                                    feature_group_count, batch_group_count)
    # oneDNN takes no negative (cropping) padding, an empty output is XLA's business, and so is a convolution
    # oneDNN has only its reference code for on this CPU
    if (pad is not None and min(min(p) for p in pad) >= 0
            and min(_out_hw(lhs.shape[1], lhs.shape[2], rhs.shape[0], rhs.shape[1], pad, strides)) >= 1
            and not reference_kernels(lhs.shape, rhs.shape, pad, strides, compute_dtype)):
        return conv2d_nhwc(lhs, rhs, pad, jnp.dtype(compute_dtype), strides)
    return lax.conv_general_dilated(
        lhs, rhs, window_strides, padding, lhs_dilation=lhs_dilation, rhs_dilation=rhs_dilation,
        dimension_numbers=dimension_numbers, feature_group_count=feature_group_count,
        batch_group_count=batch_group_count, precision=precision, preferred_element_type=preferred_element_type)


def flax_conv_fn(compute_dtype: Any = jnp.float32) -> Any:
    """The ``conv_general_dilated=`` argument for ``flax.linen.Conv`` computing in ``compute_dtype``."""
    return functools.partial(conv_general_dilated, compute_dtype=jnp.dtype(compute_dtype))
