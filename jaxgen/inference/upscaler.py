"""Library-level image upscaling with a super-resolution network, following Real-ESRGAN's ``RealESRGANer``
(github.com/xinntao/Real-ESRGAN ``realesrgan/utils.py``, ``inference_realesrgan.py``).

Pipeline of :meth:`Upscaler.upscale` for one :class:`jaxgen.image.ImageData`:

1. gray ``[H,W,1]`` -> 3 equal channels; the output goes back to gray with BT.601 luma (``0.299 R + 0.587 G +
   0.114 B``, Real-ESRGAN's ``cv2.COLOR_BGR2GRAY``), so gray stays gray with no tint;
2. ``pre_pad``: reflect-pad the LR input by ``pre_pad`` pixels, crop ``pre_pad * scale`` off the output. Real-ESRGAN
   pads the bottom and right only; jaxgen pads all four sides, so every border gets the same treatment (and the
   pad commutes with the flips/rotations of the self-ensemble). Default 0, as Real-ESRGAN's CLI
   (``inference_realesrgan.py --pre_pad 0``; its ``RealESRGANer`` class defaults to 10): it removes the rim a
   zero-padded network leaves on flat borders, but for the Real-ESRGAN models measured here the outermost 4 HR
   pixels move *further* from a larger-context run with ``pre_pad=10`` (see ``benchmarks/upscale_memory.py``);
3. inputs whose sides must divide by ``size_multiple`` (RRDBNet x2/x1 pixel-unshuffle) are reflect-padded at the
   bottom/right and cropped after, as Real-ESRGAN's ``mod_pad``; tiles and overlaps are rounded to multiples of it;
4. ``ensemble``: the x8 geometric self-ensemble (Lim et al., EDSR, CVPR-W 2017 ``forward_x8``): the 8 flips /
   90-degree rotations of the input, each upscaled and transformed back, averaged;
5. ``tile`` > 0: :func:`jaxgen.inference.tiling.upscale_tiled` -- one window (``[1,tile,tile,3]``) per device is on the
   devices at a time and the output is assembled in host memory, so a 4000x3000 photo never sits whole on a device;
   with several devices (``devices``; ``jaxgen upscale --tile`` splits a CPU host in two, ``jaxgen.xla_setup``) the
   windows go to them in groups, one window each, as one program sharded on the batch (the last group filled up
   with copies of its last window);
   with ``fixed_tile_shape`` (``jaxgen upscale --tile``'s default) a side shorter than the tile is reflect-padded
   to it, so every window of every image has the one shape and the network compiles once (and, with the
   persistent compilation cache, not at all in the next command);
6. the model output is clamped to ``[0,1]`` (Real-ESRGAN ``clamp_(0, 1)``);
7. alpha (RGBA / LA): ``alpha_upsampler='realesrgan'`` (Real-ESRGAN's default) runs the alpha through the same
   pipeline as a 3-channel gray image and takes its luma; ``'bilinear'`` resizes it (Real-ESRGAN: cv2
   ``INTER_LINEAR``; here Pillow ``BILINEAR``);
8. ``outscale`` != the model scale: the output is resized to ``(int(H * outscale), int(W * outscale))`` (Real-ESRGAN
   sizes) with Pillow's Lanczos (``Image.Resampling.LANCZOS``, a = 3, float32 per channel; Real-ESRGAN uses
   cv2 ``INTER_LANCZOS4``, a = 4) and clamped again;
9. the result keeps the input's bit depth (8 or 16), gray-ness, alpha and ICC profile.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
from PIL import Image

from jaxgen import image
from jaxgen.inference import tiling
from jaxgen.inference.apply import ApplyFn
from jaxgen.models import RRDBNet

__all__ = [
    "ALPHA_UPSAMPLERS",
    "SRModel",
    "Upscaler",
    "d4_transforms",
    "model_from_module",
    "resize_lanczos",
]

ALPHA_UPSAMPLERS = ("realesrgan", "bilinear")


@dataclasses.dataclass(frozen=True)
class SRModel:
    """A super-resolution network ready to run.

    ``apply(params, x)``: pure and jittable, ``[B,h,w,3]`` float32 in ``[0,1]`` -> ``[B,h*scale,w*scale,3]``
    float32; ``size_multiple``: h and w must divide by it (padded by :class:`Upscaler`); ``name`` for messages.
    """

    apply: ApplyFn
    params: Any
    scale: int
    name: str = "model"
    size_multiple: int = 1


def model_from_module(
    module: Any, params: Any, scale: int, *, name: str = "model", compute_dtype: Any = None,
    output_fn: Callable[[jax.Array], jax.Array] | None = None,
) -> SRModel:
    """:class:`SRModel` from a Flax generator and its params. ``compute_dtype`` (e.g. ``jnp.bfloat16``) replaces
    the module's ``dtype`` field (params stay as given); ``output_fn`` post-processes the module output (e.g. a
    resize). RRDBNet at scale 2 / 1 gets ``size_multiple`` 2 / 4."""
    if compute_dtype is not None:
        if not hasattr(module, "dtype"):
            raise ValueError(f"{name}: module {type(module).__name__} has no dtype field to set to {compute_dtype}")
        module = module.clone(dtype=compute_dtype)

    def apply(p: Any, x: jax.Array) -> jax.Array:
        y = module.apply({"params": p}, x)
        return (y if output_fn is None else output_fn(y)).astype(jnp.float32)

    multiple = 4 // module.scale if isinstance(module, RRDBNet) and module.scale < 4 else 1
    return SRModel(apply, params, int(scale), name, multiple)


# --------------------------------------------------------------------------------------------- pieces


def d4_transforms() -> list[tuple[Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray]]]:
    """The 8 ``(forward, inverse)`` pairs of the dihedral group on ``[H,W,...]`` arrays: ``rot90^k``, optionally
    after a left-right flip."""
    pairs = []
    for flip in (False, True):
        for k in range(4):
            def fwd(a: np.ndarray, k: int = k, flip: bool = flip) -> np.ndarray:
                return np.rot90(a[:, ::-1] if flip else a, k)

            def inv(a: np.ndarray, k: int = k, flip: bool = flip) -> np.ndarray:
                b = np.rot90(a, -k)
                return b[:, ::-1] if flip else b

            pairs.append((fwd, inv))
    return pairs


def resize_lanczos(x: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """float32 ``[H,W]`` / ``[H,W,C]`` -> ``out_hw`` with Pillow's Lanczos (a = 3; antialiased when shrinking),
    each channel as a float32 (mode ``F``) image, so no quantisation happens here."""
    if x.ndim == 2:
        return resize_lanczos(x[..., None], out_hw)[..., 0]
    size = (out_hw[1], out_hw[0])
    chans = [
        np.asarray(Image.fromarray(np.ascontiguousarray(x[..., c], np.float32)).resize(
            size, Image.Resampling.LANCZOS))
        for c in range(x.shape[-1])
    ]
    return np.stack(chans, axis=-1)


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}")
    return int(value)


# --------------------------------------------------------------------------------------------- upscaler


class Upscaler:
    """Upscales images with an :class:`SRModel` (see the module docstring for the pipeline).

    ``tile``: LR window side (0 = whole image); ``tile_overlap``: LR context pixels around each kept part
    (Real-ESRGAN's ``tile_pad``, default 10); ``pre_pad``: reflect padding (default 0, as Real-ESRGAN's CLI);
    ``ensemble``: x8 self-ensemble; ``alpha_upsampler``: ``'realesrgan'`` or ``'bilinear'``; ``outscale``: final
    scale (``None`` = the model's); ``fixed_tile_shape``: pad sides shorter than ``tile`` (step 5); ``devices``:
    where a tiled upscale's windows run, one each (default ``jax.local_devices()``; the whole image runs on the
    default device). The jitted network is compiled once per input shape and reused.
    """

    def __init__(
        self,
        model: SRModel,
        *,
        tile: int = 0,
        tile_overlap: int = 10,
        pre_pad: int = 0,
        ensemble: bool = False,
        alpha_upsampler: str = "realesrgan",
        outscale: float | None = None,
        fixed_tile_shape: bool = False,
        devices: Sequence[jax.Device] | None = None,
    ) -> None:
        self.model = model
        self.fixed_tile_shape = bool(fixed_tile_shape)
        self.tile = _check_int("tile", tile, 0)
        self.tile_overlap = _check_int("tile_overlap", tile_overlap, 0)
        if self.tile and 2 * self.tile_overlap >= self.tile:
            raise ValueError(f"tile_overlap must be < tile / 2; got tile={tile}, tile_overlap={tile_overlap}")
        self.pre_pad = _check_int("pre_pad", pre_pad, 0)
        self.ensemble = bool(ensemble)
        if alpha_upsampler not in ALPHA_UPSAMPLERS:
            raise ValueError(f"alpha_upsampler must be one of {ALPHA_UPSAMPLERS}; got {alpha_upsampler!r}")
        self.alpha_upsampler = alpha_upsampler
        if outscale is not None:
            outscale = float(outscale)
            if not (np.isfinite(outscale) and outscale > 0):
                raise ValueError(f"outscale must be a positive number; got {outscale}")
        self.outscale = outscale
        self._jitted = jax.jit(model.apply)
        self.devices = list(jax.local_devices() if devices is None else devices)
        if not self.devices:
            raise ValueError("devices must name at least one device")
        self._window_mesh = Mesh(np.array(self.devices), ("data",))
        replicated, windows = NamedSharding(self._window_mesh, P()), NamedSharding(self._window_mesh, P("data"))
        self._windows_jitted = jax.jit(model.apply, in_shardings=(replicated, windows), out_shardings=windows)
        self._replicated_params: Any = None

    @property
    def scale(self) -> int:
        return self.model.scale

    def _batch(self, x: np.ndarray) -> np.ndarray:
        """``[1,h,w,3]`` host array -> host output on the default device."""
        return np.asarray(self._jitted(self.model.params, x))

    def _windows(self, x: np.ndarray) -> np.ndarray:
        """``[len(devices),h,w,3]`` host windows -> host outputs, one window per device."""
        if self._replicated_params is None:  # once, not a copy to every device per call
            self._replicated_params = jax.device_put(self.model.params, NamedSharding(self._window_mesh, P()))
        return np.asarray(self._windows_jitted(self._replicated_params, x))

    def _net(self, lr: np.ndarray) -> np.ndarray:
        """float32 ``[H,W,3]`` -> ``[H*s,W*s,3]``: size-multiple padding and tiling, unclamped."""
        s, m = self.scale, self.model.size_multiple
        h, w, _ = lr.shape
        ph, pw = (-h) % m, (-w) % m
        if ph or pw:
            lr = np.pad(lr, ((0, ph), (0, pw), (0, 0)), mode="reflect")
        tile, overlap = self.tile, self.tile_overlap
        if m > 1 and tile:  # windows on the model's pixel-unshuffle grid, so tiles see the untiled phase
            tile, overlap = tile - tile % m, -(-overlap // m) * m
            if 2 * overlap >= tile:
                raise ValueError(f"{self.model.name}: tile {self.tile} / overlap {self.tile_overlap} rounded to "
                                 f"multiples of {m} leave no kept part (need overlap < tile / 2)")
        if tile and len(self.devices) > 1:
            out = tiling.upscale_tiled(self._windows, lr, s, tile=tile, overlap=overlap,
                                       fixed_shape=self.fixed_tile_shape, batch=len(self.devices))
        else:
            out = tiling.upscale_tiled(self._batch, lr, s, tile=tile, overlap=overlap,
                                       fixed_shape=self.fixed_tile_shape)
        return out[: h * s, : w * s]

    def upscale_rgb(self, lr: np.ndarray) -> np.ndarray:
        """float ``[H,W,3]`` in ``[0,1]`` -> float32 ``[H*s,W*s,3]`` clamped to ``[0,1]`` (steps 2-6), at the model
        scale (no ``outscale``)."""
        lr = np.asarray(lr, np.float32)
        if lr.ndim != 3 or lr.shape[-1] != 3:
            raise ValueError(f"{self.model.name}: expected an [H,W,3] image; got shape {lr.shape}")
        p, s = self.pre_pad, self.scale
        h, w, _ = lr.shape
        if p:
            lr = np.pad(lr, ((p, p), (p, p), (0, 0)), mode="reflect")
        if self.ensemble:
            acc = None
            for fwd, inv in d4_transforms():
                y = inv(self._net(np.ascontiguousarray(fwd(lr))))
                acc = y.astype(np.float32) if acc is None else acc + y
            out = acc / 8.0
        else:
            out = self._net(lr)
        out = out[p * s : (p + h) * s, p * s : (p + w) * s]
        # in place when we own the buffer (tiled / ensemble): the output is the largest array here
        return np.clip(out, 0.0, 1.0, out=out if out.flags.writeable else None)

    def _out_hw(self, h: int, w: int) -> tuple[int, int] | None:
        if self.outscale is None or self.outscale == self.scale:
            return None
        out = (int(h * self.outscale), int(w * self.outscale))
        if min(out) < 1:
            raise ValueError(f"outscale {self.outscale} makes a {h}x{w} image empty")
        return out

    def upscale(self, data: image.ImageData) -> image.ImageData:
        """Upscale an :class:`~jaxgen.image.ImageData` -> same kind (gray/colour, alpha, bit depth, ICC)."""
        arr = np.asarray(data.array, np.float32)
        h, w = arr.shape[:2]
        out_hw = self._out_hw(h, w)
        rgb = np.repeat(arr, 3, axis=-1) if data.is_gray else arr
        out = self.upscale_rgb(rgb)
        if data.is_gray:
            out = image.rgb_to_gray(out)
        alpha = None
        if data.alpha is not None:
            a = np.asarray(data.alpha, np.float32)
            if self.alpha_upsampler == "realesrgan":
                alpha = image.rgb_to_gray(self.upscale_rgb(np.repeat(a[..., None], 3, axis=-1)))[..., 0]
            else:
                pil = Image.fromarray(np.ascontiguousarray(a))  # float32 -> mode F
                alpha = np.asarray(pil.resize((w * self.scale, h * self.scale), Image.Resampling.BILINEAR))
        if out_hw is not None:
            out = np.clip(resize_lanczos(out, out_hw), 0.0, 1.0)
            if alpha is not None:
                alpha = np.clip(resize_lanczos(alpha, out_hw), 0.0, 1.0)
        return dataclasses.replace(data, array=np.ascontiguousarray(out, np.float32),
                                   alpha=None if alpha is None else np.clip(alpha, 0.0, 1.0).astype(np.float32))

    def upscale_file(self, src: str | Path, dst: str | Path) -> Path:
        """Read ``src`` with :func:`~jaxgen.image.read_image_full`, upscale, write ``dst`` (format from its
        extension) with :func:`~jaxgen.image.write_image_full`."""
        return image.write_image_full(dst, self.upscale(image.read_image_full(src)))
