"""A stride-1 NHWC convolution whose weight gradient is computed as a plain NHWC convolution ("transposed roles").

``jax.grad`` of ``lax.conv_general_dilated`` computes the kernel gradient as a convolution with exotic dimension
numbers (batch and feature roles swapped: ``lhs='CHWN'``); XLA:CPU then runs it on a generic path that keeps
only part of the cores busy at small per-device batches. Here the same sum

    dW[i, j, c, o] = sum_{b, h, w} x_pad[b, h + i, w + j, c] * dy[b, h, w, o]

is written as an ordinary ``NHWC x HWIO -> NHWC`` valid convolution of ``x_pad^T: [C, Hp, Wp, B]`` (channels as
the batch, the batch as the feature dimension) with ``dy^T: [H, W, B, O]`` (the output gradient as the kernel),
giving ``[C, kh, kw, O]`` -> ``[kh, kw, C, O]``. The input gradient is an ordinary convolution of ``dy`` with the
flipped, transposed kernel (:func:`input_grad`; XLA:CPU keeps it in its convolution library even inside ``while``
loops). Both equal the plain gradients up to float summation order (``tests/test_conv_vjp.py`` bounds the
difference).

Use: ``nn.Conv(..., conv_general_dilated=conv_general_dilated)`` (what ``jaxgen.models.layers.conv`` does when
:func:`enabled`); other convolutions (strides, dilations, groups, other layouts) fall back to
``lax.conv_general_dilated`` unchanged.

Small maps: XLA:CPU runs a stride-1 convolution over a map of at most :data:`SMALL_MAP_PIXELS` pixels (VGG's
``conv5`` block on a 32 px input is 2x2; 1x1, 1x4, 1x8 and 2x4 too) outside its convolution libraries, 2-48x
slower than the same sum as one matrix product (forward and gradients; 210 ms instead of 3 ms for a 3x3
512->512 convolution of 4 maps of 2x2 at LLVM -O0; ``benchmarks/small_map_conv.py``, numbers in
``benchmarks/RESULTS.md``). On CPU both :func:`conv_general_dilated` and :func:`default_conv` (every jaxgen
convolution's function when neither :func:`enabled` nor an :func:`override`) compute those as :func:`as_dot`:
the ``kh * kw`` shifted windows side by side, times the reshaped kernel (equal up to float summation order).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from typing import Any, Iterator, Sequence

import jax
import jax.numpy as jnp
from jax import lax

__all__ = ["SMALL_MAP_PIXELS", "as_dot", "conv2d_nhwc", "conv_general_dilated", "default_conv", "enabled",
           "flax_conv_fn", "input_grad", "nhwc_padding", "overridden", "override", "override_or_lax", "set_enabled",
           "set_override", "set_transpose_override", "small_map", "stride1_nhwc_padding", "transpose_override", "use",
           "weight_grad"]

_NHWC = ("NHWC", "HWIO", "NHWC")
_NHWC_SPEC = ((0, 3, 1, 2), (3, 2, 0, 1), (0, 3, 1, 2))  # lax.conv_dimension_numbers(..., _NHWC) as tuples
_STATE: dict[str, Any] = {"enabled": False, "override": None, "transpose_override": None}

Padding = tuple[tuple[int, int], tuple[int, int]]
# The largest map (input height x width) XLA:CPU's convolution runs outside its libraries: 1x1 ... 2x4 measured
# 2-48x slower than as_dot at 64-512 channels, 3x3 and 2x8 at par (benchmarks/small_map_conv.py).
SMALL_MAP_PIXELS = 8
_LAX_CONV = inspect.signature(lax.conv_general_dilated)


def enabled() -> bool:
    """Whether ``jaxgen.models.layers.conv`` builds convolutions with this gradient (read at trace time)."""
    return _STATE["enabled"]


def flax_conv_fn() -> Any:
    """The ``conv_general_dilated`` argument for ``flax.linen.Conv`` (read at trace time): the :func:`override`
    when one is set (the oneDNN backend), else :func:`conv_general_dilated` when :func:`enabled`, else
    :func:`default_conv` (``lax.conv_general_dilated``, small maps on CPU as :func:`as_dot`)."""
    if _STATE["override"] is not None:
        return _STATE["override"]
    return conv_general_dilated if enabled() else default_conv


def override_or_lax() -> Any:
    """The ``conv_general_dilated`` argument for the ``flax.linen.Conv`` layers that keep XLA's convolution as it
    is (the discriminators, the CycleGAN / pix2pix generators, AdaIN's networks; read at trace time): the
    :func:`override` when one is set (the oneDNN backend), else ``lax.conv_general_dilated`` itself -- flax's
    default, so their XLA programs and numbers are unchanged."""
    return _STATE["override"] or lax.conv_general_dilated


def override() -> Any:
    """The convolution function :func:`flax_conv_fn` hands every layer instead of its own choice, or ``None``."""
    return _STATE["override"]


def set_override(fn: Any) -> None:
    """Process-wide: every convolution built through :func:`flax_conv_fn` from now on calls ``fn`` (a
    ``lax.conv_general_dilated`` drop-in), or the default choice again with ``None``. Set by
    ``jaxgen.models.onednn_conv.configure`` (``conv_backend = "onednn"``)."""
    _STATE["override"] = fn


def transpose_override() -> Any:
    """The transposed-convolution function ``jaxgen.models.layers.ConvTranspose`` calls instead of
    ``lax.conv_transpose`` (``fn(x, kernel, strides, padding)``, NHWC, ``transpose_kernel=True``), or ``None``."""
    return _STATE["transpose_override"]


def set_transpose_override(fn: Any) -> None:
    """Process-wide: every ``layers.ConvTranspose`` traced from now on calls ``fn``, or ``lax.conv_transpose`` again
    with ``None``. Set by ``jaxgen.models.onednn_conv.configure`` with :func:`set_override`."""
    _STATE["transpose_override"] = fn


def set_enabled(value: bool) -> None:
    """Process-wide switch (``jaxgen.xla_setup`` sets it from the measured per-backend choice)."""
    _STATE["enabled"] = bool(value)


@contextlib.contextmanager
def use(value: bool = True) -> Iterator[None]:
    """Context manager: models *traced* inside build their convolutions with (or without) this gradient."""
    previous = _STATE["enabled"]
    _STATE["enabled"] = bool(value)
    try:
        yield
    finally:
        _STATE["enabled"] = previous


@contextlib.contextmanager
def overridden(fn: Any) -> Iterator[None]:
    """Context manager: :func:`set_override` ``fn`` (``None``: none, and no :func:`transpose_override` either) for
    what is traced inside, then the previous."""
    previous = _STATE["override"], _STATE["transpose_override"]
    _STATE["override"] = fn
    if fn is None:
        _STATE["transpose_override"] = None
    try:
        yield
    finally:
        _STATE["override"], _STATE["transpose_override"] = previous


def _plain(x: jax.Array, kernel: jax.Array, padding: Padding) -> jax.Array:
    return lax.conv_general_dilated(x, kernel, (1, 1), padding, dimension_numbers=_NHWC)


def weight_grad(x: jax.Array, dy: jax.Array, kernel_hw: tuple[int, int], padding: Padding) -> jax.Array:
    """``dW [kh,kw,C,O]`` of ``y = conv(x [B,H,W,C], W, stride 1, padding)`` for the output gradient ``dy [B,Ho,Wo,O]``,
    as one NHWC valid convolution of the transposed padded input with the transposed output gradient."""
    (pt, pb), (pl, pr) = padding
    x_pad = jnp.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    kh, kw = kernel_hw
    if x_pad.shape[1] - dy.shape[1] + 1 != kh or x_pad.shape[2] - dy.shape[2] + 1 != kw:
        raise ValueError(f"weight_grad: input {x.shape} padded {padding} and output grad {dy.shape} do not fit a "
                         f"{kh}x{kw} kernel")
    lhs = x_pad.transpose(3, 1, 2, 0)  # [C, Hp, Wp, B]
    rhs = dy.transpose(1, 2, 0, 3)  # [Ho, Wo, B, O]
    out = lax.conv_general_dilated(lhs, rhs, (1, 1), "VALID", dimension_numbers=_NHWC)  # [C, kh, kw, O]
    return out.transpose(1, 2, 0, 3)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def conv2d_nhwc(x: jax.Array, kernel: jax.Array, padding: Padding) -> jax.Array:
    """``lax.conv_general_dilated(x [B,H,W,C], kernel [kh,kw,C,O], (1,1), padding, NHWC/HWIO)`` with the
    transposed-roles weight gradient. ``padding``: ``((top, bottom), (left, right))`` ints."""
    return _plain(x, kernel, padding)


def _fwd(x: jax.Array, kernel: jax.Array, padding: Padding) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
    return _plain(x, kernel, padding), (x, kernel)


def input_grad(dy: jax.Array, kernel: jax.Array, padding: Padding) -> jax.Array:
    """``dx [B,H,W,C]`` of ``y = conv(x, kernel [kh,kw,C,O], stride 1, padding)`` for ``dy [B,Ho,Wo,O]``: one
    NHWC/HWIO convolution of ``dy`` with the explicitly flipped, in/out-swapped kernel ``[kh,kw,O,C]`` and padding
    ``k - 1 - p`` (negative = crop) on each side.

    Autodiff expresses the same sum as a convolution with reversed kernel dimensions (``dim_labels ..._01oi``);
    XLA:CPU folds that into its convolution library in a plain jitted step, but not inside a ``while`` loop body
    (optax's L-BFGS line search), where it runs 3x slower. This form is an ordinary convolution everywhere."""
    (pt, pb), (pl, pr) = padding
    kh, kw = kernel.shape[:2]
    flipped = jnp.flip(kernel, (0, 1)).transpose(0, 1, 3, 2)
    pad = ((kh - 1 - pt, kh - 1 - pb), (kw - 1 - pl, kw - 1 - pr))
    return lax.conv_general_dilated(dy, flipped, (1, 1), pad, dimension_numbers=_NHWC)


def _bwd(padding: Padding, res: tuple[jax.Array, jax.Array], dy: jax.Array) -> tuple[jax.Array, jax.Array]:
    x, kernel = res
    dx = input_grad(dy, kernel, padding).astype(x.dtype)
    dw = weight_grad(x, dy, kernel.shape[:2], padding).astype(kernel.dtype)
    return dx, dw


conv2d_nhwc.defvjp(_fwd, _bwd)


def nhwc_padding(ndim: int, padding: Any, lhs_dilation: Any = None, rhs_dilation: Any = None,
                 dimension_numbers: Any = None, feature_group_count: int = 1,
                 batch_group_count: int = 1) -> Padding | None:
    """For the arguments of a ``lax.conv_general_dilated`` call on ``ndim``-dimensional operands (its window strides
    aside): its padding as ``((top, bottom), (left, right))`` ints when it is an undilated, ungrouped NHWC/HWIO
    convolution with explicit or ``'VALID'`` padding, else ``None``. Other padding strings (``'SAME'``) are
    ``None``: resolve them first (``lax.padtype_to_pads``)."""
    ones = (None, (1, 1), [1, 1])
    simple = (
        ndim == 4
        and lhs_dilation in ones
        and (rhs_dilation is None or tuple(rhs_dilation) == (1, 1))
        and feature_group_count == 1
        and batch_group_count == 1
        and (padding == "VALID" or (not isinstance(padding, str) and len(padding) == 2
                                    and all(len(p) == 2 for p in padding)))
        and _spec(dimension_numbers, ndim) == _NHWC_SPEC
    )
    if not simple:
        return None
    return ((0, 0), (0, 0)) if isinstance(padding, str) else tuple((int(lo), int(hi)) for lo, hi in padding)


def stride1_nhwc_padding(ndim: int, window_strides: Sequence[int], padding: Any, lhs_dilation: Any = None,
                         rhs_dilation: Any = None, dimension_numbers: Any = None, feature_group_count: int = 1,
                         batch_group_count: int = 1) -> Padding | None:
    """:func:`nhwc_padding` of a stride-1 convolution (the case :func:`conv_general_dilated` routes to
    :func:`conv2d_nhwc`), else ``None``."""
    if tuple(window_strides) != (1, 1):
        return None
    return nhwc_padding(ndim, padding, lhs_dilation, rhs_dilation, dimension_numbers, feature_group_count,
                        batch_group_count)


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
) -> jax.Array:
    """Drop-in for ``lax.conv_general_dilated`` (the signature ``flax.linen.Conv`` calls): the stride-1, undilated,
    ungrouped NHWC/HWIO case with explicit (or ``'VALID'``) padding goes through :func:`conv2d_nhwc`; anything else
    (a small map on CPU: :func:`small_map`), and any ``precision`` / ``preferred_element_type`` request, is passed
    to :func:`default_conv`."""
    pad = None if precision is not None or preferred_element_type is not None else stride1_nhwc_padding(
        lhs.ndim, window_strides, padding, lhs_dilation, rhs_dilation, dimension_numbers, feature_group_count,
        batch_group_count)
    if pad is not None and not small_map(lhs):
        return conv2d_nhwc(lhs, rhs, pad)
    return default_conv(
        lhs, rhs, window_strides, padding, lhs_dilation=lhs_dilation, rhs_dilation=rhs_dilation,
        dimension_numbers=dimension_numbers, feature_group_count=feature_group_count,
        batch_group_count=batch_group_count, precision=precision, preferred_element_type=preferred_element_type)


def small_map(x: jax.Array) -> bool:
    """Whether a stride-1 NHWC convolution of ``x`` goes to :func:`as_dot`: on CPU (the backend at trace time),
    maps of at most :data:`SMALL_MAP_PIXELS` pixels. A symbolic size (``jax.export`` shape polymorphism) is not."""
    h, w = x.shape[1:3]
    return isinstance(h, int) and isinstance(w, int) and h * w <= SMALL_MAP_PIXELS and jax.default_backend() == "cpu"


def as_dot(x: jax.Array, kernel: jax.Array, padding: Padding, precision: Any = None,
           preferred_element_type: Any = None) -> jax.Array:
    """``conv(x [B,H,W,C], kernel [kh,kw,C,O], stride 1, padding)`` as one matrix product: the padded input's
    ``kh * kw`` shifted windows concatenated on the channel axis (``[B*Ho*Wo, kh*kw*C]``, window-major as the
    kernel's ``HWIO`` layout) times ``kernel.reshape(kh*kw*C, O)``. Padding may be negative (a crop)."""
    (pt, pb), (pl, pr) = padding
    kh, kw, c, o = kernel.shape
    zero = jnp.zeros((), x.dtype)
    xp = lax.pad(x, zero, ((0, 0, 0), (pt, pb, 0), (pl, pr, 0), (0, 0, 0)))
    ho, wo = xp.shape[1] - kh + 1, xp.shape[2] - kw + 1
    if ho < 1 or wo < 1:
        raise ValueError(f"as_dot: input {x.shape} padded {padding} is smaller than the {kh}x{kw} kernel")
    cols = jnp.concatenate([xp[:, i:i + ho, j:j + wo, :] for i in range(kh) for j in range(kw)], axis=-1)
    y = jnp.matmul(cols.reshape(-1, kh * kw * c), kernel.reshape(kh * kw * c, o), precision=precision,
                   preferred_element_type=preferred_element_type)
    return y.reshape(x.shape[0], ho, wo, o)


def default_conv(lhs: jax.Array, rhs: jax.Array, window_strides: Sequence[int], padding: Any, *args: Any,
                 **kwargs: Any) -> jax.Array:
    """Drop-in for ``lax.conv_general_dilated`` (same arguments): a stride-1 NHWC/HWIO convolution of a small map
    on CPU (:func:`small_map`) as :func:`as_dot`, anything else ``lax.conv_general_dilated`` unchanged."""
    a = _LAX_CONV.bind(lhs, rhs, window_strides, padding, *args, **kwargs).arguments
    dn = a.get("dimension_numbers")
    explicit = padding
    if isinstance(padding, str) and padding != "VALID" and _spec(dn, lhs.ndim) == _NHWC_SPEC:
        explicit = lax.padtype_to_pads(lhs.shape[1:3], rhs.shape[:2], window_strides, padding)
    pad = stride1_nhwc_padding(lhs.ndim, window_strides, explicit, a.get("lhs_dilation"), a.get("rhs_dilation"), dn,
                               a.get("feature_group_count", 1), a.get("batch_group_count", 1))
    if pad is not None and small_map(lhs):
        return as_dot(lhs, rhs, pad, a.get("precision"), a.get("preferred_element_type"))
    return lax.conv_general_dilated(lhs, rhs, window_strides, padding, *args, **kwargs)


def _spec(dimension_numbers: Any, ndim: int) -> Any:
    """Normalised ``(lhs, rhs, out)`` dimension tuples (``lax.conv_dimension_numbers``), or ``None``."""
    if dimension_numbers is None or ndim != 4:
        return None
    if isinstance(dimension_numbers, lax.ConvDimensionNumbers):
        dn = dimension_numbers
    else:
        dn = lax.conv_dimension_numbers((1,) * ndim, (1,) * ndim, dimension_numbers)
    return (tuple(dn.lhs_spec), tuple(dn.rhs_spec), tuple(dn.out_spec))
