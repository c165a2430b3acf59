"""Trainable stride-1 NHWC convolutions through oneDNN (``onednn_conv.cc``) as XLA FFI custom calls.

    lib = conv.load("benchmarks/onednn_ffi/build/libonednn_conv.so")   # build.sh builds it
    y = conv.conv2d_nhwc(x, w, ((1, 1), (1, 1)), jnp.bfloat16)          # differentiable (custom_vjp)
    nn.Conv(..., conv_general_dilated=conv.flax_conv_fn(jnp.bfloat16))  # drop-in for flax

:func:`conv2d_nhwc` runs oneDNN's forward_training primitive; its VJP runs the backward-data and backward-weights
primitives (no XLA convolution anywhere in the step). ``compute_dtype`` is what oneDNN multiplies in: ``float32``
(exact f32, AVX-512) or ``bfloat16`` (AMX on Sapphire Rapids; f32 accumulation, f32 results), the role of
``torch.autocast('cpu', torch.bfloat16)`` for the convolutions. Inputs are cast to it in XLA; outputs and
gradients come back in the caller's dtypes, so parameters, bias adds, activations and the optimizer stay f32.

Sharded batches: each custom call is wrapped in ``jax.experimental.custom_partitioning`` with the batch dimension
as the only shardable factor, so on a data-parallel mesh every device convolves its own shard (forward and
backward-data) and the weight gradient is summed over the batch shards (``psum``); anything sharded otherwise is
replicated first.

:func:`conv_general_dilated` has ``lax.conv_general_dilated``'s signature (what ``flax.linen.Conv`` calls) and the
fallback rules of ``jaxgen.models.conv_vjp.conv_general_dilated``: only the stride-1, undilated, ungrouped
NHWC/HWIO case with explicit (non-negative), ``'SAME'`` or ``'VALID'`` padding in f32/bf16 and no ``precision`` /
``preferred_element_type`` request goes to oneDNN; everything else goes to ``lax.conv_general_dilated`` unchanged.
"""

from __future__ import annotations

import ctypes
import functools
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.experimental.custom_partitioning import custom_partitioning
from jax.sharding import NamedSharding, PartitionSpec as P

from jaxgen.models import conv_vjp

__all__ = ["conv2d_nhwc", "conv_general_dilated", "flax_conv_fn", "load"]

TARGETS = {"fwd": "onednn_conv_fwd", "bwd_data": "onednn_conv_bwd_data", "bwd_weights": "onednn_conv_bwd_weights"}
SYMBOLS = {"fwd": "OnednnConvFwd", "bwd_data": "OnednnConvBwdData", "bwd_weights": "OnednnConvBwdWeights"}
_LOADED: dict[str, Any] = {}

Padding = tuple[tuple[int, int], tuple[int, int]]


def load(lib_path: str) -> ctypes.CDLL:
    """Loads ``libonednn_conv.so`` and registers its three handlers as CPU FFI targets (once per process)."""
    if "lib" not in _LOADED:
        lib = ctypes.CDLL(str(lib_path))
        for kind, target in TARGETS.items():
            jax.ffi.register_ffi_target(target, jax.ffi.pycapsule(getattr(lib, SYMBOLS[kind])), platform="cpu")
        _LOADED["lib"] = lib
    return _LOADED["lib"]


def _attrs(padding: Padding) -> dict:
    (pt, pb), (pl, pr) = padding
    return {"pt": np.int64(pt), "pb": np.int64(pb), "pl": np.int64(pl), "pr": np.int64(pr)}


def _call(kind: str, a: jax.Array, b: jax.Array, padding: Padding, out_shape: tuple, out_dtype: Any) -> jax.Array:
    out = jax.ShapeDtypeStruct(out_shape, out_dtype)
    return jax.ffi.ffi_call(TARGETS[kind], out)(a, b, **_attrs(padding))


def _out_hw(h: int, w: int, kh: int, kw: int, padding: Padding) -> tuple[int, int]:
    (pt, pb), (pl, pr) = padding
    return h + pt + pb - kh + 1, w + pl + pr - kw + 1


def _local_fwd(x, w, padding, out_dtype):
    oh, ow = _out_hw(x.shape[1], x.shape[2], w.shape[0], w.shape[1], padding)
    return _call("fwd", x, w, padding, (x.shape[0], oh, ow, w.shape[3]), out_dtype)


def _local_bwd_data(dy, w, padding, out_dtype, hw):
    return _call("bwd_data", dy, w, padding, (dy.shape[0], hw[0], hw[1], w.shape[2]), out_dtype)


def _local_bwd_weights(x, dy, padding, out_dtype, khw):
    return _call("bwd_weights", x, dy, padding, (khw[0], khw[1], x.shape[3], dy.shape[3]), out_dtype)


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

    def partition(padding, out_dtype, khw, mesh, arg_shapes, result_shape):
        axes = _batch_axes(arg_shapes[0].sharding)
        shardings = (_batch_sharded(mesh, axes), _batch_sharded(mesh, axes))

        def lower(x, dy):
            dw = _local_bwd_weights(x, dy, padding, out_dtype, khw)
            return dw if axes is None else lax.psum(dw, axes)

        return mesh, lower, _replicated(mesh), shardings

    def infer(padding, out_dtype, khw, mesh, arg_shapes, result_shape):
        return _replicated(mesh)

    return partition, infer




def _replicate(rule: str) -> tuple[str, ...]:
    """Every factor of ``rule`` but the batch ``n``, in order of first appearance (Shardy wants them sorted)."""
    return tuple(dict.fromkeys(f for f in rule.replace(",", " ").replace("->", " ").split() if f != "n"))


_FWD_RULE, _BWD_DATA_RULE, _BWD_W_RULE = "n h w c, i j c o -> n a b o", "n a b o, i j c o -> n h w c", \
    "n h w c, n a b o -> i j c o"
_fwd_op = custom_partitioning(_local_fwd, static_argnums=(2, 3))
_p, _i = _part_batch_major(_local_fwd)
_fwd_op.def_partition(partition=_p, infer_sharding_from_operands=_i,
                      sharding_rule=_FWD_RULE, need_replication_factors=_replicate(_FWD_RULE))
_bwd_data_op = custom_partitioning(_local_bwd_data, static_argnums=(2, 3, 4))
_p, _i = _part_batch_major(_local_bwd_data)
_bwd_data_op.def_partition(partition=_p, infer_sharding_from_operands=_i,
                           sharding_rule=_BWD_DATA_RULE, need_replication_factors=_replicate(_BWD_DATA_RULE))
_bwd_weights_op = custom_partitioning(_local_bwd_weights, static_argnums=(2, 3, 4))
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


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def conv2d_nhwc(x: jax.Array, w: jax.Array, padding: Padding, compute_dtype: Any = jnp.float32) -> jax.Array:
    """``lax.conv_general_dilated(x [B,H,W,C], w [kh,kw,C,O], (1,1), padding, NHWC/HWIO)`` on oneDNN, multiplying
    in ``compute_dtype`` (f32 or bf16) and returning ``result_type(x, w)``. ``padding``: ``((top, bottom),
    (left, right))`` non-negative ints. Needs :func:`load` first."""
    return _fwd(x, w, padding, compute_dtype)[0]


def _fwd(x, w, padding, compute_dtype):
    cd = jnp.dtype(compute_dtype)
    xc, wc = x.astype(cd), w.astype(cd)
    y = _fwd_op(xc, wc, padding, jnp.result_type(x, w))
    return y, _Res((xc, wc, jnp.dtype(x.dtype), jnp.dtype(w.dtype)))


def _bwd(padding, compute_dtype, res, dy):
    xc, wc, x_dtype, w_dtype = res
    dyc = dy.astype(jnp.dtype(compute_dtype))
    dx = _bwd_data_op(dyc, wc, padding, x_dtype, tuple(xc.shape[1:3]))
    dw = _bwd_weights_op(xc, dyc, padding, w_dtype, tuple(wc.shape[0:2]))
    return dx, dw


conv2d_nhwc.defvjp(_fwd, _bwd)


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
    """Drop-in for ``lax.conv_general_dilated``: the simple stride-1 NHWC case goes to :func:`conv2d_nhwc` (in
    ``compute_dtype``), anything else to ``lax.conv_general_dilated`` unchanged."""
    floats = (jnp.dtype(jnp.float32), jnp.dtype(jnp.bfloat16))
    pad = None
    if (precision is None and preferred_element_type is None and jnp.dtype(lhs.dtype) in floats
            and jnp.dtype(rhs.dtype) in floats):
        explicit = padding
        if isinstance(padding, str) and padding in ("SAME", "SAME_LOWER") and lhs.ndim == 4:
            explicit = lax.padtype_to_pads(lhs.shape[1:3], rhs.shape[0:2], (1, 1), padding)
        pad = conv_vjp.stride1_nhwc_padding(lhs.ndim, window_strides, explicit, lhs_dilation, rhs_dilation,
                                            dimension_numbers, feature_group_count, batch_group_count)
    if pad is not None and min(min(p) for p in pad) >= 0:  # oneDNN takes no negative (cropping) padding
        return conv2d_nhwc(lhs, rhs, pad, jnp.dtype(compute_dtype))
    return lax.conv_general_dilated(
        lhs, rhs, window_strides, padding, lhs_dilation=lhs_dilation, rhs_dilation=rhs_dilation,
        dimension_numbers=dimension_numbers, feature_group_count=feature_group_count,
        batch_group_count=batch_group_count, precision=precision, preferred_element_type=preferred_element_type)


def flax_conv_fn(compute_dtype: Any = jnp.float32) -> Any:
    """The ``conv_general_dilated=`` argument for ``flax.linen.Conv`` computing in ``compute_dtype``."""
    return functools.partial(conv_general_dilated, compute_dtype=jnp.dtype(compute_dtype))
