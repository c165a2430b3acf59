"""Blur kernels of Real-ESRGAN's degradation model, sampled on device (``jax.random``) with static shapes.

Closed forms as BasicSR ``basicsr/data/degradations.py`` (Wang et al., Real-ESRGAN, ICCV-W 2021, Sec. 3.1),
on the centred grid ``x, y in {-(k-1)/2 .. (k-1)/2}`` of an odd size ``k`` (``x`` along columns, ``y`` along
rows, BasicSR ``mesh_grid``), with ``Sigma = R(theta) diag(sx^2, sy^2) R(theta)^T`` and ``q = [x y] Sigma^-1
[x y]^T``:

* ``iso`` / ``aniso`` Gaussian ``exp(-q / 2)`` (iso: ``sy = sx``, ``theta = 0``);
* ``generalized_iso`` / ``generalized_aniso`` ``exp(-q^beta / 2)`` (beta: ``betag_range``);
* ``plateau_iso`` / ``plateau_aniso`` ``1 / (q^beta + 1)`` (beta: ``betap_range``);
* ``sinc`` (``circular_lowpass_kernel``) ``omega_c J1(omega_c r) / (2 pi r)``, ``omega_c^2 / (4 pi)`` at
  ``r = 0``;

each normalised to sum 1. Sampling follows ``RealESRGANDataset.__getitem__``: size ``k`` uniform over
``7, 9, .., max_size``; with probability ``sinc_prob`` a sinc with ``omega_c ~ U[pi/3, pi]`` (``k < 13``) or
``U[pi/5, pi]``; otherwise a kernel type by ``kernel_prob``, ``sx, sy ~ U[blur_sigma]``, ``theta ~ U[-pi, pi]``,
``beta ~ U[lo, 1]`` or ``U[1, hi]`` with probability 1/2 each. The final sinc: with probability
``final_sinc_prob`` a sinc (``omega_c ~ U[pi/3, pi]``), otherwise the identity pulse.

A kernel of size ``k`` is returned zero-padded to ``[max_size, max_size]`` (static shape; the official code
pads the same way), so any sampled kernel is one array of fixed shape. ``J1`` is evaluated by the periodic
trapezoid rule of Bessel's integral (96 nodes: < 1e-14 error for the arguments used here, ``|z| <= 45``).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "KERNEL_TYPES",
    "KernelSpec",
    "bessel_j1",
    "circular_lowpass_kernel",
    "kernel_from_params",
    "pulse_kernel",
    "sample_final_sinc",
    "sample_kernel",
    "sample_kernel_params",
]

KERNEL_TYPES: tuple[str, ...] = (
    "iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso")
SINC = len(KERNEL_TYPES)  # type index of the sinc kernel in sampled parameters
_J1_NODES = 96


@dataclasses.dataclass(frozen=True)
class KernelSpec:
    """One degradation stage's blur settings (``train_realesrgan_x4plus.yml``'s names)."""

    max_size: int = 21  # blur_kernel_size: sizes 7, 9, ..., max_size
    kernel_list: tuple[str, ...] = KERNEL_TYPES
    kernel_prob: tuple[float, ...] = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
    sinc_prob: float = 0.1
    blur_sigma: tuple[float, float] = (0.2, 3.0)
    betag_range: tuple[float, float] = (0.5, 4.0)
    betap_range: tuple[float, float] = (1.0, 2.0)

    def __post_init__(self) -> None:
        if self.max_size < 7 or self.max_size % 2 == 0:
            raise ValueError(f"blur_kernel_size={self.max_size}: expected an odd size >= 7")
        unknown = [k for k in self.kernel_list if k not in KERNEL_TYPES]
        if unknown or len(self.kernel_list) != len(self.kernel_prob) or not self.kernel_list:
            raise ValueError(f"kernel_list={self.kernel_list} / kernel_prob={self.kernel_prob}: expected equally "
                             f"long lists of types from {KERNEL_TYPES}")
        if min(self.kernel_prob) < 0 or sum(self.kernel_prob) <= 0:
            raise ValueError(f"kernel_prob={self.kernel_prob}: expected non-negative weights with a positive sum")
        for name in ("blur_sigma", "betag_range", "betap_range"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi:
                raise ValueError(f"{name}=({lo}, {hi}): expected 0 < low <= high")
        if not 0 <= self.sinc_prob <= 1:
            raise ValueError(f"sinc_prob={self.sinc_prob}: expected a probability")

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(range(7, self.max_size + 1, 2))


def bessel_j1(z: jax.Array) -> jax.Array:
    """Bessel function of the first kind, order 1: ``(1/2pi) sum_n cos(t_n - z sin t_n)`` over 96 nodes."""
    t = jnp.arange(_J1_NODES, dtype=jnp.float32) * (2 * math.pi / _J1_NODES)
    z = jnp.asarray(z, jnp.float32)
    return jnp.mean(jnp.cos(t - z[..., None] * jnp.sin(t)), axis=-1)


def _grid(max_size: int) -> tuple[jax.Array, jax.Array]:
    ax = jnp.arange(max_size, dtype=jnp.float32) - (max_size - 1) / 2
    xx, yy = jnp.meshgrid(ax, ax)  # xx varies along columns, yy along rows (BasicSR mesh_grid)
    return xx, yy


def _support(size: jax.Array, max_size: int) -> jax.Array:
    """``[max_size, max_size]`` mask of the centred ``size x size`` window."""
    xx, yy = _grid(max_size)
    r = (size - 1) / 2
    return (jnp.abs(xx) <= r) & (jnp.abs(yy) <= r)


def _normalise(k: jax.Array, mask: jax.Array) -> jax.Array:
    k = jnp.where(mask, k, 0.0)
    return k / jnp.sum(k)


def circular_lowpass_kernel(omega_c: jax.Array, size: jax.Array, max_size: int = 21) -> jax.Array:
    """2-D sinc of cutoff ``omega_c`` (radians) and odd ``size``, zero-padded to ``[max_size, max_size]``."""
    xx, yy = _grid(max_size)
    r = jnp.sqrt(xx**2 + yy**2)
    safe_r = jnp.where(r > 0, r, 1.0)
    k = jnp.where(r > 0, omega_c * bessel_j1(omega_c * safe_r) / (2 * math.pi * safe_r), omega_c**2 / (4 * math.pi))
    return _normalise(k, _support(size, max_size))


def pulse_kernel(max_size: int = 21) -> jax.Array:
    """The identity kernel (1 at the centre)."""
    return jnp.zeros((max_size, max_size), jnp.float32).at[max_size // 2, max_size // 2].set(1.0)


def _quadratic_form(sx: jax.Array, sy: jax.Array, theta: jax.Array, max_size: int) -> jax.Array:
    """``q = p^T Sigma^-1 p`` on the grid for ``Sigma = R diag(sx^2, sy^2) R^T`` (BasicSR sigma_matrix2)."""
    xx, yy = _grid(max_size)
    c, s = jnp.cos(theta), jnp.sin(theta)
    # Sigma^-1 = R diag(1/sx^2, 1/sy^2) R^T; p^T Sigma^-1 p = (R^T p)_1^2 / sx^2 + (R^T p)_2^2 / sy^2
    u = c * xx + s * yy
    v = -s * xx + c * yy
    return u**2 / sx**2 + v**2 / sy**2


def kernel_from_params(kind: jax.Array, size: jax.Array, sx: jax.Array, sy: jax.Array, theta: jax.Array,
                       beta: jax.Array, omega_c: jax.Array, max_size: int = 21) -> jax.Array:
    """The kernel of type index ``kind`` (into ``KERNEL_TYPES``; ``SINC`` = 6) with the given parameters
    (isotropic types use ``sx`` only; ``beta`` only for generalized/plateau; ``omega_c`` only for sinc)."""
    iso = (kind == 0) | (kind == 2) | (kind == 4)
    sy = jnp.where(iso, sx, sy)
    theta = jnp.where(iso, 0.0, theta)
    q = _quadratic_form(sx, sy, theta, max_size)
    q_beta = jnp.power(jnp.maximum(q, 0.0), beta)
    gaussian = jnp.exp(-0.5 * q)
    generalized = jnp.exp(-0.5 * q_beta)
    plateau = 1.0 / (q_beta + 1.0)
    family = jnp.where(kind < 2, gaussian, jnp.where(kind < 4, generalized, plateau))
    blur = _normalise(family, _support(size, max_size))
    return jnp.where(kind == SINC, circular_lowpass_kernel(omega_c, size, max_size), blur)


def sample_kernel_params(key: jax.Array, spec: KernelSpec) -> dict[str, jax.Array]:
    """One kernel's random parameters ``{kind, size, sx, sy, theta, beta, omega_c}`` (scalars), drawn as
    ``RealESRGANDataset`` draws them (module docstring). One uniform draw of 9 numbers (cheap to compile)."""
    u = jax.random.uniform(key, (9,), jnp.float32)
    sizes = jnp.asarray(spec.sizes, jnp.int32)
    size = sizes[jnp.minimum(jnp.floor(u[0] * len(spec.sizes)).astype(jnp.int32), len(spec.sizes) - 1)]
    is_sinc = u[1] < spec.sinc_prob
    probs = np.asarray(spec.kernel_prob, np.float64)
    cdf = jnp.asarray(np.cumsum(probs / probs.sum())[:-1], jnp.float32)
    type_ids = jnp.asarray([KERNEL_TYPES.index(k) for k in spec.kernel_list], jnp.int32)
    kind = type_ids[jnp.sum(u[2] >= cdf)]
    lo_s, hi_s = spec.blur_sigma
    sx = lo_s + u[3] * (hi_s - lo_s)
    sy = lo_s + u[4] * (hi_s - lo_s)
    theta = -math.pi + u[5] * (2 * math.pi)
    plateau = kind >= 4
    lo = jnp.where(plateau, spec.betap_range[0], spec.betag_range[0])
    hi = jnp.where(plateau, spec.betap_range[1], spec.betag_range[1])
    below = u[7] < 0.5
    beta = jnp.where(below, lo + u[6] * (1.0 - lo), 1.0 + u[6] * (hi - 1.0))
    omega_lo = jnp.where(size < 13, math.pi / 3, math.pi / 5)
    omega_c = omega_lo + u[8] * (math.pi - omega_lo)
    return {"kind": jnp.where(is_sinc, SINC, kind), "size": size, "sx": sx, "sy": sy, "theta": theta,
            "beta": beta, "omega_c": omega_c}


def sample_kernel(key: jax.Array, spec: KernelSpec) -> jax.Array:
    """A random blur kernel ``[max_size, max_size]`` float32 summing to 1 (module docstring)."""
    p = sample_kernel_params(key, spec)
    return kernel_from_params(p["kind"], p["size"], p["sx"], p["sy"], p["theta"], p["beta"], p["omega_c"],
                              spec.max_size)


def sample_final_sinc(key: jax.Array, prob: float, max_size: int = 21) -> jax.Array:
    """The final sinc filter: w.p. ``prob`` a sinc (size ``U{7..max_size}``, ``omega_c ~ U[pi/3, pi]``), else
    the pulse."""
    u = jax.random.uniform(key, (3,), jnp.float32)
    sizes = jnp.arange(7, max_size + 1, 2)
    size = sizes[jnp.minimum(jnp.floor(u[0] * sizes.shape[0]).astype(jnp.int32), sizes.shape[0] - 1)]
    omega_c = math.pi / 3 + u[1] * (2 * math.pi / 3)
    return jnp.where(u[2] < prob, circular_lowpass_kernel(omega_c, size, max_size), pulse_kernel(max_size))
