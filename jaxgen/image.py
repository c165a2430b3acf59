"""The one home for images: MATLAB-exact bicubic ``imresize``, BT.601 luma, uint8 <-> float (``to_uint8`` is the
only float -> uint8 conversion: round half away from zero), reading / writing files, listing image folders,
float-RGB helpers (``as_float_rgb``, ``read_rgb``, ``resize_to``, ``resize_long_side``) and the one picture-grid
maker (``grid``).

Layout conventions (every function here): ``[H,W]``, ``[H,W,C]`` or ``[B,H,W,C]``; a 3-D array is always
``[H,W,C]``. Float images are in ``[0,1]``; uint8 images in ``[0,255]``. Functions taking arrays accept numpy
(returning numpy) and JAX arrays (returning JAX arrays, usable under ``jax.jit``).
"""

from __future__ import annotations

import dataclasses
import functools
import io
import math
import os
from pathlib import Path
from typing import Any, BinaryIO, Callable, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image, ImageOps

from jaxgen import storage
from jaxgen.atomic_file import write_atomic

Array = Union[np.ndarray, jax.Array]

# ITU-R BT.601 luma for RGB in [0,1] -> Y in [16,235], as MATLAB ``rgb2ycbcr`` (and BasicSR's ``rgb2ycbcr``).
_BT601_Y_OFFSET = 16.0
_BT601_Y_COEFFS = (65.481, 128.553, 24.966)  # sum 219 = 235 - 16
# Full-range luma weights (the same BT.601 coefficients / 219): 0.299 R + 0.587 G + 0.114 B.
_BT601_GRAY_COEFFS = (0.299, 0.587, 0.114)


# --------------------------------------------------------------------------------------------- helpers


def _is_jax(x: Any) -> bool:
    return isinstance(x, jax.Array)  # concrete arrays and tracers


def _xp(x: Any) -> Any:
    return jnp if _is_jax(x) else np


def _spatial_axes(ndim: int) -> tuple[int, int]:
    """Axes of H and W: ``(0, 1)`` for ``[H,W]`` / ``[H,W,C]``, ``(1, 2)`` for ``[B,H,W,C]``."""
    if ndim in (2, 3):
        return 0, 1
    if ndim == 4:
        return 1, 2
    raise ValueError(f"expected an image [H,W], [H,W,C] or [B,H,W,C]; got {ndim} dims")


def _round_half_away(x: Array) -> Array:
    """MATLAB ``round``: halves go away from zero (numpy/JAX ``round`` goes to even)."""
    xp = _xp(x)
    return xp.sign(x) * xp.floor(xp.abs(x) + 0.5)


# --------------------------------------------------------------------------------------------- dtype


def to_float(x: Array) -> Array:
    """uint8 ``[...]`` in ``[0,255]`` -> float32 in ``[0,1]`` (``x / 255``, MATLAB ``im2double`` up to dtype)."""
    if x.dtype != np.uint8:
        raise ValueError(f"to_float expects a uint8 image; got dtype {x.dtype} with shape {tuple(x.shape)}")
    return x.astype(_xp(x).float32) / 255.0


def to_uint8(x: Array) -> Array:
    """Float in ``[0,1]`` -> uint8: clip to ``[0,1]``, ``* 255``, round half away from zero (MATLAB ``im2uint8``).

    A uint8 input is returned unchanged. NaN is not allowed (it has no uint8 value; result undefined).
    """
    if x.dtype == np.uint8:
        return x
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"to_uint8 expects a float image in [0,1] or uint8; got dtype {x.dtype}")
    xp = _xp(x)
    return xp.floor(xp.clip(x, 0.0, 1.0) * 255.0 + 0.5).astype(xp.uint8)


def mod_crop(x: Array, scale: int) -> Array:
    """Crop bottom/right so H and W are multiples of ``scale`` (the SR benchmark convention).

    ``[H,W]`` / ``[H,W,C]`` crop axes 0, 1; ``[B,H,W,C]`` crops axes 1, 2.
    """
    if not isinstance(scale, (int, np.integer)) or scale < 1:
        raise ValueError(f"mod_crop scale must be a positive integer; got {scale!r}")
    ah, aw = _spatial_axes(x.ndim)
    h, w = x.shape[ah], x.shape[aw]
    index = [slice(None)] * x.ndim
    index[ah], index[aw] = slice(0, h - h % scale), slice(0, w - w % scale)
    return x[tuple(index)]


# --------------------------------------------------------------------------------------------- colour


def rgb_to_y(x: Array) -> Array:
    """ITU-R BT.601 luma as MATLAB ``rgb2ycbcr``'s Y: ``16 + 65.481 R + 128.553 G + 24.966 B``.

    ``x``: float ``[...,3]`` RGB in ``[0,1]`` -> ``[...,1]`` Y in ``[16,235]`` (float, not rounded). For Y in
    ``[0,1]`` units use ``rgb_to_y(x) / 255`` (what the metrics do). A one-channel ``[...,1]`` input is taken to
    be luma already and is returned unchanged, in *its own* range (so ``[0,1]`` in, ``[0,1]`` out): this is
    the SR-benchmark convention of evaluating a grayscale image on its gray values.
    """
    c = x.shape[-1] if x.ndim else 0
    if c == 1:
        return x
    if c != 3:
        raise ValueError(f"rgb_to_y expects [...,3] RGB (or [...,1] gray); got shape {tuple(x.shape)}")
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"rgb_to_y expects float RGB in [0,1]; got dtype {x.dtype} (use to_float first)")
    r, g, b = x[..., 0:1], x[..., 1:2], x[..., 2:3]
    kr, kg, kb = _BT601_Y_COEFFS
    return _BT601_Y_OFFSET + (kr * r + kg * g + kb * b)


def rgb_to_gray(x: Array) -> Array:
    """Full-range BT.601 luma ``0.299 R + 0.587 G + 0.114 B`` (MATLAB ``rgb2gray`` up to rounding of weights).

    ``[...,3]`` float -> ``[...,1]`` in the input's range (``[0,1]`` in, ``[0,1]`` out); ``[...,1]`` passes
    through. Equals ``(rgb_to_y(x) - 16) / 219`` for ``x`` in ``[0,1]``; returns exactly ``R`` when ``R = G = B``.
    """
    c = x.shape[-1] if x.ndim else 0
    if c == 1:
        return x
    if c != 3:
        raise ValueError(f"rgb_to_gray expects [...,3] RGB (or [...,1] gray); got shape {tuple(x.shape)}")
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"rgb_to_gray expects a float image; got dtype {x.dtype} (use to_float first)")
    kr, _, kb = _BT601_GRAY_COEFFS
    r, g, b = x[..., 0:1], x[..., 1:2], x[..., 2:3]
    return g + kr * (r - g) + kb * (b - g)  # = kr R + kg G + kb B (kg = 1 - kr - kb), exact when R = G = B


# --------------------------------------------------------------------------------------------- imresize


def _cubic(x: np.ndarray) -> np.ndarray:
    """Keys (1981) cubic convolution kernel, ``a = -0.5`` (MATLAB ``imresize`` 'bicubic'), support ``[-2,2]``."""
    ax = np.abs(x)
    ax2 = ax * ax
    ax3 = ax2 * ax
    inner = (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1)
    outer = (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2))
    return inner + outer


@functools.lru_cache(maxsize=256)
def _contributions(in_len: int, out_len: int, scale: float, antialias: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per-output-pixel weights and 0-based source indices, ``[out_len, P]`` each (float64, int64).

    As MATLAB ``imresize``'s ``contributions``: output pixel ``x`` (1-based) maps to input coordinate
    ``u = x / scale + 0.5 (1 - 1/scale)``; when downscaling with antialiasing the kernel is stretched by
    ``1/scale`` (``h(t) = scale * cubic(scale t)``, width ``4/scale``); weights are normalised to sum to 1;
    taps whose weight is 0 for every output are dropped. Out-of-range taps take the *edge pixel* (indices
    clamped = edge replication), which is what the reference MATLAB LR images of Set5/Set14 show
    bit-exactly (a mirrored border does not reproduce them).
    """
    kernel_width = 4.0
    if scale < 1 and antialias:
        weights_fn = lambda t: scale * _cubic(scale * t)  # noqa: E731
        kernel_width = kernel_width / scale
    else:
        weights_fn = _cubic
    x = np.arange(1, out_len + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    left = np.floor(u - kernel_width / 2.0)
    taps = int(math.ceil(kernel_width)) + 2
    indices = left[:, None] + np.arange(taps, dtype=np.float64)[None, :]
    weights = weights_fn(u[:, None] - indices)
    weights = weights / np.sum(weights, axis=1, keepdims=True)
    indices = np.clip(indices, 1, in_len).astype(np.int64) - 1
    keep = np.any(weights != 0, axis=0)
    weights, indices = weights[:, keep], indices[:, keep]
    weights.setflags(write=False)
    indices.setflags(write=False)
    return weights, indices


def _resize_axis(x: Array, axis: int, weights: np.ndarray, indices: np.ndarray) -> Array:
    """``out[i] = sum_p weights[i,p] * x[indices[i,p]]`` along ``axis``, taps accumulated left to right."""
    xp = _xp(x)
    shape = [1] * x.ndim
    shape[axis] = weights.shape[0]
    out = None
    for p in range(weights.shape[1]):
        w = xp.asarray(weights[:, p].reshape(shape), dtype=x.dtype)
        term = w * xp.take(x, xp.asarray(indices[:, p]), axis=axis)
        out = term if out is None else out + term
    return out


def _output_shape(
    in_hw: tuple[int, int], scale: float | None, output_shape: tuple[int, int] | None
) -> tuple[tuple[int, int], tuple[float, float]]:
    """(output (H, W), per-axis scale). MATLAB: ``ceil(scale * in)`` from a scale; ``out / in`` from a size."""
    if (scale is None) == (output_shape is None):
        raise ValueError("imresize needs exactly one of `scale` or `output_shape`")
    if scale is not None:
        scale = float(scale)
        if not (scale > 0 and math.isfinite(scale)):
            raise ValueError(f"imresize scale must be a positive finite number; got {scale!r}")
        out = tuple(int(math.ceil(scale * n)) for n in in_hw)
        return (out[0], out[1]), (scale, scale)
    if len(output_shape) != 2 or any(not isinstance(n, (int, np.integer)) or n < 1 for n in output_shape):
        raise ValueError(f"imresize output_shape must be two positive ints (H, W); got {output_shape!r}")
    out = (int(output_shape[0]), int(output_shape[1]))
    return out, (out[0] / in_hw[0], out[1] / in_hw[1])


def imresize(
    x: Array,
    scale: float | None = None,
    *,
    output_shape: tuple[int, int] | None = None,
    antialias: bool = True,
) -> Array:
    """MATLAB-compatible bicubic resize (``imresize(x, scale, 'bicubic')``).

    ``x``: ``[H,W]``, ``[H,W,C]`` or ``[B,H,W,C]``, uint8 or float. Give ``scale`` (output ``ceil(scale * in)``
    per side, as MATLAB) or ``output_shape=(H', W')``. Keys cubic (a = -0.5); when downscaling and
    ``antialias`` the kernel is widened by ``1/scale`` (MATLAB's antialiasing). Axes are resized one at a time,
    smallest scale first (rows first on a tie), as MATLAB.

    * uint8 -> uint8, rounded (half away from zero) and clipped to ``[0,255]`` after *each* axis pass, as
      MATLAB: byte-exact with MATLAB on the Set5/Set14 LR files for numpy input (computed in float64). JAX
      uint8 input is computed in float32 (float64 with ``jax_enable_x64``), so a value within float32
      rounding of a .5 tie may differ by 1.
    * float -> same float dtype, neither rounded nor clipped (numpy computes in float64, JAX in the input dtype
      promoted to at least float32).

    numpy in -> numpy out; JAX in -> JAX out, jittable (``scale``/``output_shape`` static): the weights are
    computed with numpy at trace time and applied as ``P`` gathers of kernel taps per axis.
    """
    if not _is_jax(x):
        x = np.asarray(x)
    is_uint8 = x.dtype == np.uint8
    if not (is_uint8 or np.issubdtype(x.dtype, np.floating)):
        raise ValueError(f"imresize expects uint8 or float images; got dtype {x.dtype} with shape {tuple(x.shape)}")
    axes = _spatial_axes(x.ndim)
    in_hw = (int(x.shape[axes[0]]), int(x.shape[axes[1]]))
    if min(in_hw) < 1:
        raise ValueError(f"imresize got an empty image of shape {tuple(x.shape)}")
    out_hw, scales = _output_shape(in_hw, scale, output_shape)

    xp = _xp(x)
    if xp is np:
        work_dtype = np.float64
    else:  # uint8: JAX's default float (float32, or float64 under jax_enable_x64); floats: at least float32
        work_dtype = jnp.promote_types(jnp.result_type(float) if is_uint8 else x.dtype, jnp.float32)
    y = x.astype(work_dtype)
    order = sorted(range(2), key=lambda k: scales[k])  # stable: rows first on equal scales
    for k in order:
        weights, indices = _contributions(in_hw[k], out_hw[k], scales[k], bool(antialias))
        y = _resize_axis(y, axes[k], weights, indices)
        if is_uint8:
            y = xp.clip(_round_half_away(y), 0, 255)
    return y.astype(x.dtype)


# --------------------------------------------------------------------------------------------- I/O

_16BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")
_WRITE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP", ".tif": "TIFF",
                  ".tiff": "TIFF", ".webp": "WEBP"}


def _composite_on_white(im: Image.Image) -> Image.Image:
    """RGBA -> RGB by alpha-compositing over an opaque white background."""
    background = Image.new("RGBA", im.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, im.convert("RGBA")).convert("RGB")


def _sixteen_bit_to_uint8(im: Image.Image, path: Path) -> np.ndarray:
    """16-bit gray (``I;16*`` or ``I`` holding 0..65535) -> uint8 ``round(v / 257)`` (exact: 65535 -> 255)."""
    v = np.asarray(im).astype(np.int64)
    if v.size and (v.min() < 0 or v.max() > 65535):
        raise ValueError(f"{path}: mode {im.mode} values span [{v.min()}, {v.max()}]; expected 16-bit 0..65535")
    return ((v * 255 + 32767) // 65535).astype(np.uint8)


def _pil_to_array(im: Image.Image, path: Path, keep_gray: bool) -> np.ndarray:
    """Decoded Pillow image -> uint8 ``[H,W,3]`` (or ``[H,W,1]`` for gray sources when ``keep_gray``)."""
    mode = im.mode
    if mode in _16BIT_MODES:
        gray = _sixteen_bit_to_uint8(im, path)
    elif mode in ("1", "L"):
        gray = np.asarray(im.convert("L"))
    elif mode in ("LA", "La"):
        if keep_gray:
            gray = np.asarray(_composite_on_white(im.convert("RGBA")))[..., 0]
        else:
            return np.asarray(_composite_on_white(im.convert("RGBA")))
    elif mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in im.info
        rgb = _composite_on_white(im) if has_alpha else im.convert("RGB")
        return np.asarray(rgb)
    elif mode in ("RGBA", "RGBa"):
        return np.asarray(_composite_on_white(im))
    elif mode == "F":
        raise ValueError(f"{path}: float (mode F) images are not supported; expected an 8/16-bit image")
    else:  # RGB, CMYK, YCbCr, LAB, HSV, ...
        return np.asarray(im.convert("RGB"))
    gray = gray[..., None]
    return gray if keep_gray else np.repeat(gray, 3, axis=-1)


def read_image(path: str | os.PathLike, *, keep_gray: bool = False) -> np.ndarray:
    """Read an image file -> uint8 ``[H,W,3]`` RGB (``[H,W,1]`` for single-channel sources if ``keep_gray``).

    EXIF orientation is applied. Gray (``L``/``1``) is replicated to 3 channels unless ``keep_gray``; 16-bit gray
    (``I;16``/``I``) is scaled to 8 bits with rounding (``round(v / 257)``); alpha (RGBA, LA, palette with
    transparency) is composited over white; palette (always RGB) and CMYK are converted with Pillow. 16-bit
    RGB PNGs are reduced to 8 bits by Pillow itself (high byte). ``keep_gray`` keeps ``L``/``1``/``I;16``/``LA``
    sources as ``[H,W,1]``.
    A missing, truncated, corrupt or non-image file raises ``ValueError`` naming the file.
    """
    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()
            im = ImageOps.exif_transpose(im)
    except FileNotFoundError as e:
        raise ValueError(f"{path}: no such image file") from e
    except IsADirectoryError as e:
        raise ValueError(f"{path}: is a directory, not an image file") from e
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:  # unreadable/truncated/corrupt
        raise ValueError(f"{path}: cannot read as an image ({type(e).__name__}: {e})") from e
    return np.ascontiguousarray(_pil_to_array(im, path, keep_gray))


def _image_to_write(img: Array, path: Path) -> np.ndarray:
    """Validate and convert to uint8 ``[H,W]`` or ``[H,W,3]`` for Pillow."""
    img = np.asarray(img)
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    if not (img.ndim == 2 or (img.ndim == 3 and img.shape[-1] == 3)):
        raise ValueError(f"write_image({path}): expected [H,W], [H,W,1] or [H,W,3]; got shape {img.shape}")
    if img.dtype != np.uint8 and not np.issubdtype(img.dtype, np.floating):
        raise ValueError(f"write_image({path}): expected uint8 or float in [0,1]; got dtype {img.dtype}")
    return to_uint8(img)


def write_image(path: str | os.PathLike, img: Array, **save_kwargs: Any) -> Path:
    """Write uint8 ``[H,W,3|1]`` / ``[H,W]`` or float in ``[0,1]`` (via ``to_uint8``) to ``path``.

    The format follows the extension (png, jpg/jpeg, bmp, tif/tiff, webp). Parent folders are created; the file
    is written to a temporary name in the same folder and renamed into place (atomic on POSIX; a gs:// URL: one
    upload, jaxgen.atomic_file). Returns the path.
    """
    path = storage.as_path(path)  # a gs:// URL stays one (jaxgen.storage)
    fmt = _WRITE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"write_image({path}): unknown extension; expected one of {sorted(_WRITE_FORMATS)}")
    pil = Image.fromarray(_image_to_write(img, path))
    return write_atomic(path, lambda f: pil.save(f, format=fmt, **save_kwargs))




# --------------------------------------------------------------------------------------------- full-fidelity I/O

# EXIF orientation (tag 0x0112) -> numpy op undoing it (same result as ``ImageOps.exif_transpose``).
_EXIF_ORIENTATION = 0x0112
_ORIENT_OPS: dict[int, Callable[[np.ndarray], np.ndarray]] = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: np.swapaxes(a, 0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: np.rot90(a, 2).swapaxes(0, 1),
    8: lambda a: np.rot90(a, 1),
}
_CONVERTED_COLOUR_MODES = ("CMYK", "LAB", "HSV")  # converted to RGB: their ICC profile would not apply


@dataclasses.dataclass(frozen=True)
class ImageData:
    """A decoded image with what writing it back needs.

    ``array``: float32 ``[H,W,C]`` in ``[0,1]``, ``C = 3`` (RGB) or ``1`` (gray); ``alpha``: float32 ``[H,W]``
    in ``[0,1]`` or ``None``; ``bit_depth``: 8 or 16 (of the source samples); ``mode``: the source's Pillow mode
    (informational); ``icc_profile``: the embedded ICC profile bytes or ``None``.
    """

    array: np.ndarray
    alpha: np.ndarray | None = None
    bit_depth: int = 8
    mode: str = "RGB"
    icc_profile: bytes | None = None

    @property
    def is_gray(self) -> bool:
        return self.array.shape[-1] == 1


def _png_header(path: Path) -> tuple[int, int] | None:
    """``(bit_depth, colour_type)`` from a PNG's IHDR, or ``None`` if ``path`` is not a PNG."""
    with open(path, "rb") as f:
        head = f.read(26)
    if len(head) < 26 or head[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    return head[24], head[25]


def _read_png16(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """16-bit PNG (any colour type) -> (uint16 ``[H,W,C]`` with C 1 or 3, alpha uint16 ``[H,W]`` or None), via
    pypng (Pillow decodes 16-bit RGB PNGs to 8 bits)."""
    import png

    w, h, rows, info = png.Reader(filename=str(path)).asDirect()
    planes = info["planes"]
    arr = np.vstack([np.asarray(r, np.uint16) for r in rows]).reshape(h, w, planes)
    if info["alpha"]:
        return arr[..., :-1], arr[..., -1]
    return arr, None


def _decode_pil(im: Image.Image, path: Path) -> tuple[np.ndarray, np.ndarray | None, int]:
    """Decoded Pillow image -> (float32 ``[H,W,C]`` in [0,1], alpha or None, bit depth)."""
    mode = im.mode
    if mode in _16BIT_MODES:
        v = np.asarray(im).astype(np.int64)
        if v.size and (v.min() < 0 or v.max() > 65535):
            raise ValueError(f"{path}: mode {mode} values span [{v.min()}, {v.max()}]; expected 16-bit 0..65535")
        return (v / 65535.0).astype(np.float32)[..., None], None, 16
    if mode == "F":
        raise ValueError(f"{path}: float (mode F) images are not supported; expected an 8/16-bit image")
    if mode in ("P", "PA"):
        im = im.convert("RGBA" if (mode == "PA" or "transparency" in im.info) else "RGB")
    elif mode in ("1", "L"):
        im = im.convert("L")
    elif mode == "La":
        im = im.convert("LA")
    elif mode == "RGBa":
        im = im.convert("RGBA")
    elif mode not in ("L", "LA", "RGB", "RGBA"):
        im = im.convert("RGB")
    a = np.asarray(im).astype(np.float32) / 255.0
    if a.ndim == 2:
        return a[..., None], None, 8
    if im.mode in ("LA", "RGBA"):
        return a[..., :-1], a[..., -1], 8
    return a, None, 8


def read_image_full(path: str | os.PathLike) -> ImageData:
    """Read an image keeping what :func:`read_image` drops: alpha, gray, 16-bit depth and the ICC profile.

    -> :class:`ImageData`: float32 ``[H,W,3]`` (colour) or ``[H,W,1]`` (``1``/``L``/``LA``/16-bit gray) in
    ``[0,1]`` (``v / 255`` or ``v / 65535``), alpha ``[H,W]`` when the file has one (RGBA, LA, palette
    transparency), ``bit_depth`` 16 for 16-bit PNGs (decoded with pypng, any colour type) and 16-bit gray
    TIFFs. EXIF orientation is applied (as ``ImageOps.exif_transpose``). CMYK/LAB/HSV are converted to RGB by
    Pillow and their ICC profile dropped. Unreadable files -> ``ValueError`` naming the file.
    """
    path = Path(path)
    try:
        with Image.open(path) as im:
            icc = im.info.get("icc_profile") or None
            orientation = int(im.getexif().get(_EXIF_ORIENTATION, 1) or 1)
            source_mode = im.mode
            header = _png_header(path) if im.format == "PNG" else None
            if header is not None and header[0] == 16:
                arr16, alpha16 = _read_png16(path)
                array = (arr16 / 65535.0).astype(np.float32)
                alpha = None if alpha16 is None else (alpha16 / 65535.0).astype(np.float32)
                depth = 16
            else:
                im.load()
                array, alpha, depth = _decode_pil(im, path)
    except FileNotFoundError as e:
        raise ValueError(f"{path}: no such image file") from e
    except IsADirectoryError as e:
        raise ValueError(f"{path}: is a directory, not an image file") from e
    except (OSError, SyntaxError, Image.DecompressionBombError) as e:
        raise ValueError(f"{path}: cannot read as an image ({type(e).__name__}: {e})") from e
    except Exception as e:  # pypng's FormatError and similar decoder failures
        if isinstance(e, ValueError) and str(e).startswith(str(path)):
            raise
        raise ValueError(f"{path}: cannot read as an image ({type(e).__name__}: {e})") from e
    op = _ORIENT_OPS.get(orientation)
    if op is not None:
        array = op(array)
        alpha = None if alpha is None else op(alpha)
    if source_mode in _CONVERTED_COLOUR_MODES:
        icc = None
    return ImageData(
        np.ascontiguousarray(array),
        None if alpha is None else np.ascontiguousarray(alpha),
        depth,
        source_mode,
        icc,
    )


def _quantise(x: np.ndarray, bit_depth: int) -> np.ndarray:
    """Float in ``[0,1]`` -> uint8 / uint16: clip, ``* (2^bits - 1)``, round half away from zero."""
    top, dtype = (255.0, np.uint8) if bit_depth == 8 else (65535.0, np.uint16)
    return np.floor(np.clip(x, 0.0, 1.0) * top + 0.5).astype(dtype)


def _iccp_chunk(profile: bytes) -> tuple[bytes, bytes]:
    import zlib

    return b"iCCP", b"ICC profile\x00\x00" + zlib.compress(profile)


def _write_png16(f: BinaryIO, planes: np.ndarray, gray: bool, has_alpha: bool, icc: bytes | None) -> None:
    import png  # pypng: 16-bit PNG files only

    h, w, c = planes.shape
    buf = io.BytesIO()
    png.Writer(w, h, greyscale=gray, alpha=has_alpha, bitdepth=16).write_array(buf, planes.reshape(-1))
    chunks = list(png.Reader(bytes=buf.getvalue()).chunks())
    if icc:
        chunks.insert(1, _iccp_chunk(icc))  # iCCP must precede IDAT; right after IHDR
    png.write_chunks(f, chunks)


def write_image_full(path: str | os.PathLike, data: ImageData) -> Path:
    """Write an :class:`ImageData` (colour or gray, with or without alpha) to ``path``, keeping its ICC profile.

    ``bit_depth`` 16 is written as a 16-bit PNG (pypng) when ``path`` ends in ``.png``; other formats store
    8 bits. Values are clipped to ``[0,1]`` and rounded (half away from zero) to the depth. Alpha needs a
    format that stores it (png, tif, webp): JPEG/BMP with alpha -> ``ValueError``. Atomic, like
    :func:`write_image`. Returns the path.
    """
    path = storage.as_path(path)
    fmt = _WRITE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"write_image_full({path}): unknown extension; expected one of {sorted(_WRITE_FORMATS)}")
    arr = np.asarray(data.array)
    if arr.ndim != 3 or arr.shape[-1] not in (1, 3):
        raise ValueError(f"write_image_full({path}): array must be [H,W,1] or [H,W,3]; got shape {arr.shape}")
    alpha = None if data.alpha is None else np.asarray(data.alpha)
    if alpha is not None and alpha.shape != arr.shape[:2]:
        raise ValueError(f"write_image_full({path}): alpha shape {alpha.shape} != image size {arr.shape[:2]}")
    if alpha is not None and fmt in ("JPEG", "BMP"):
        raise ValueError(f"write_image_full({path}): {fmt} cannot store the alpha channel; write a .png instead")
    if data.bit_depth not in (8, 16):
        raise ValueError(f"write_image_full({path}): bit_depth must be 8 or 16; got {data.bit_depth}")
    planes = arr if alpha is None else np.concatenate([arr, alpha[..., None]], axis=-1)
    gray = arr.shape[-1] == 1
    if data.bit_depth == 16 and fmt == "PNG":
        q16 = _quantise(planes, 16)
        return write_atomic(path, lambda f: _write_png16(f, q16, gray, alpha is not None, data.icc_profile))
    q = _quantise(planes, 8)
    pil = Image.fromarray(q[..., 0] if q.shape[-1] == 1 else q)  # L, LA, RGB or RGBA
    kwargs: dict[str, Any] = {}
    if data.icc_profile and fmt != "BMP":
        kwargs["icc_profile"] = data.icc_profile
    if fmt == "WEBP":
        kwargs["lossless"] = True
    return write_atomic(path, lambda f: pil.save(f, format=fmt, **kwargs))


# --------------------------------------------------------------------------------------------- image folders

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def list_image_files(folder: str | Path, what: str = "image folder") -> list[Path]:
    """Image files directly in ``folder`` (by extension, case-insensitive; hidden files ignored), sorted by name.

    A missing folder or one without image files is a ``ValueError`` naming it (``what`` says which folder).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{what} {folder} does not exist or is not a directory")
    files = sorted(
        p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS
    )
    if not files:
        raise ValueError(f"{what} {folder} has no image files (expected one of {', '.join(IMAGE_EXTENSIONS)})")
    return files


def expand_image_inputs(items: list[str], what: str = "input") -> list[Path]:
    """Command-line inputs -> image files: a file stays itself, a folder gives its image files
    (:func:`list_image_files`), in the given order. A missing path is a ``ValueError`` naming it."""
    files: list[Path] = []
    for item in map(Path, items):
        if item.is_dir():
            files += list_image_files(item, f"{what} folder")
        elif item.is_file():
            files.append(item)
        else:
            raise ValueError(f"{what} {item}: no such file or folder")
    return files


# --------------------------------------------------------------------------------------------- float RGB

def as_float_rgb(img: np.ndarray, what: str = "image") -> np.ndarray:
    """uint8 or float ``[H,W,3]`` (gray ``[H,W]``/``[H,W,1]`` repeated; alpha dropped) -> float32 in ``[0,1]``."""
    img = np.asarray(img)
    if img.ndim == 2:
        img = img[..., None]
    if img.ndim != 3 or img.shape[-1] not in (1, 3, 4):
        raise ValueError(f"{what}: expected an [H,W,3] RGB image; got shape {img.shape}")
    img = img[..., :3] if img.shape[-1] == 4 else np.repeat(img, 3, axis=-1) if img.shape[-1] == 1 else img
    if img.dtype == np.uint8:
        return to_float(img)
    if not np.issubdtype(img.dtype, np.floating):
        raise ValueError(f"{what}: expected uint8 or float pixels; got {img.dtype}")
    return img.astype(np.float32)


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """An image file -> ``[H,W,3]`` float32 in ``[0,1]`` (:func:`read_image`; a missing file is a ``ValueError``
    naming it)."""
    if not os.path.isfile(path):
        raise ValueError(f"image file {path} not found")
    return as_float_rgb(read_image(path), str(path))


def resize_to(img: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Float ``[H,W,3]`` -> ``[h,w,3]`` float32 (MATLAB-exact antialiased bicubic, :func:`imresize`)."""
    img = as_float_rgb(img)
    if tuple(img.shape[:2]) == tuple(hw):
        return img
    return np.asarray(imresize(img.astype(np.float64), output_shape=(int(hw[0]), int(hw[1]))), np.float32)


def resize_long_side(img: np.ndarray, long_side: int) -> np.ndarray:
    """Resize so that the longer side is ``long_side`` pixels (aspect kept, each side at least 1); float32 [0,1]."""
    if not isinstance(long_side, (int, np.integer)) or long_side < 1:
        raise ValueError(f"size must be a positive number of pixels; got {long_side!r}")
    img = as_float_rgb(img)
    h, w = img.shape[:2]
    s = long_side / max(h, w)
    return resize_to(img, (max(1, round(h * s)), max(1, round(w * s))))


# --------------------------------------------------------------------------------------------- grid

def grid(rows: Sequence[Sequence[Array]], *, gutter: int = 2, height: int = 0) -> np.ndarray:
    """uint8 ``[H,W,3]`` picture: ``rows`` of images side by side, white gutters of ``gutter`` pixels between
    images and between rows. Images are uint8 (kept) or float in ``[0,1]`` (:func:`to_uint8`); gray is repeated
    to RGB, alpha dropped. ``height`` > 0 resizes every image to that height first (aspect kept,
    :func:`resize_to`); otherwise the images of a row must share their height (rows may differ in width: each
    row is padded with white on the right to the widest)."""
    if not rows or any(len(r) == 0 for r in rows):
        raise ValueError("grid: expected at least one row, each with at least one image")
    lines = []
    for row in rows:
        cells = []
        for img in row:
            img = np.asarray(img)
            if height:
                img = as_float_rgb(img)
                img = resize_to(img, (height, max(1, round(img.shape[1] * height / img.shape[0]))))
            cells.append(as_rgb_uint8(to_uint8(img)))
        if len({c.shape[0] for c in cells}) != 1:
            raise ValueError(f"grid: the images of a row differ in height: {[c.shape[0] for c in cells]}")
        gap = np.full((cells[0].shape[0], gutter, 3), 255, np.uint8)
        lines.append(np.concatenate(sum(([c, gap] for c in cells), [])[:-1], axis=1))
    width = max(line.shape[1] for line in lines)
    lines = [np.pad(line, ((0, 0), (0, width - line.shape[1]), (0, 0)), constant_values=255) for line in lines]
    gap = np.full((gutter, width, 3), 255, np.uint8)
    return np.concatenate(sum(([line, gap] for line in lines), [])[:-1], axis=0)


def as_rgb_uint8(img: np.ndarray) -> np.ndarray:
    """uint8 ``[H,W]`` / ``[H,W,1]`` / ``[H,W,3]`` / ``[H,W,4]`` -> ``[H,W,3]`` (gray repeated, alpha dropped)."""
    if img.ndim == 2:
        img = img[..., None]
    if img.ndim != 3 or img.shape[-1] not in (1, 3, 4):
        raise ValueError(f"expected an [H,W,3] RGB image; got shape {img.shape}")
    return img[..., :3] if img.shape[-1] == 4 else np.repeat(img, 3, axis=-1) if img.shape[-1] == 1 else img
