"""Benchmark evaluation for SR, the one home for it: training validation (:func:`validate`), ``jaxgen eval``
(:func:`evaluate_folders`, :func:`markdown_table`) and the comparison pictures (:func:`comparison_grid`) share
the pair loading and :func:`evaluate_pairs`: Y-PSNR/SSIM with crop = scale.

Protocol (reproduces the bicubic rows of EDSR Table 4 / the SRCNN-VDSR MATLAB scripts): HR cropped to a
multiple of ``s``; LR = MATLAB ``imresize(HR, 1/s, 'bicubic')`` on uint8; the SR output is quantised to uint8
(as the papers save PNGs); PSNR/SSIM on the BT.601 Y channel (float) of the uint8 images, ``s`` pixels cropped
from every side.

Grayscale: a single-channel image (Set14 ``img_003``) is held as 3 identical channels in ``SRPair.hr``/``.lr``
(so RGB models run on it) with ``SRPair.gray = True``; it is evaluated on its gray values themselves (the
MATLAB scripts' ``if size(im,3) == 1`` branch), *not* on ``rgb2ycbcr`` of the replicated channels (which maps
gray to ``16 + 219 g``, +1.32 dB on that image). A 3-channel SR output for a gray pair is reduced with the
full-range BT.601 luma ``0.299 R + 0.587 G + 0.114 B`` (exact for a gray output). This convention reproduces
the published Set14 numbers; the replicated-Y alternative is ~0.09 dB higher on the Set14 mean.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from jaxgen import image, metrics
from jaxgen.image import list_image_files

_HR_LR = re.compile(r"^(?P<stem>.*)_(?P<kind>HR|LR)$")


@dataclasses.dataclass(frozen=True, eq=False)  # arrays: compare fields explicitly
class SRPair:
    """One benchmark image: ``hr`` uint8 ``[H,W,3]``, ``lr`` uint8 ``[H/s,W/s,3]``; ``gray``: single-channel source.

    ``name`` is the HR file name. For a gray source both arrays hold 3 identical channels.
    """

    name: str
    hr: np.ndarray
    lr: np.ndarray
    gray: bool = False


# --------------------------------------------------------------------------------------------- loading


def _check_scale(scale: int) -> int:
    if not isinstance(scale, (int, np.integer)) or isinstance(scale, bool) or scale < 1:
        raise ValueError(f"scale must be a positive integer; got {scale!r}")
    return int(scale)


def _read(path: Path) -> tuple[np.ndarray, bool]:
    """uint8 ``[H,W,C]`` as stored (C = 1 for single-channel files) and whether it is gray."""
    img = image.read_image(path, keep_gray=True)
    return img, img.shape[-1] == 1


def _to_rgb(img: np.ndarray) -> np.ndarray:
    return np.repeat(img, 3, axis=-1) if img.shape[-1] == 1 else img


def resolve_data_dir(data_dir: str | Path, scale: int) -> Path:
    """``data_dir`` itself, or its ``image_SRF_{scale}`` subfolder when it has ``image_SRF_*`` subfolders."""
    folder = Path(data_dir)
    if not folder.is_dir():
        raise ValueError(f"benchmark folder {folder} does not exist or is not a folder")
    sub = folder / f"image_SRF_{scale}"
    if sub.is_dir():
        return sub
    others = sorted(p.name for p in folder.glob("image_SRF_*") if p.is_dir())
    if others:
        raise ValueError(f"{folder} has {others} but no image_SRF_{scale} for scale {scale}")
    return folder


def pair_from_hr(name: str, hr: np.ndarray, scale: int, *, gray: bool = False) -> SRPair:
    """HR uint8 ``[H,W,C]`` -> pair with HR mod-cropped to ``scale`` and LR = ``imresize(HR, 1/scale)`` (uint8)."""
    scale = _check_scale(scale)
    if hr.dtype != np.uint8 or hr.ndim != 3 or hr.shape[-1] not in (1, 3):
        raise ValueError(f"{name}: expected HR uint8 [H,W,1|3]; got {hr.dtype} {hr.shape}")
    hr = image.mod_crop(hr, scale)
    if min(hr.shape[:2]) < 1:
        raise ValueError(f"{name}: image smaller than the scale {scale}")
    gray = gray or hr.shape[-1] == 1
    lr = image.imresize(hr, 1.0 / scale)
    return SRPair(name=name, hr=_to_rgb(hr), lr=_to_rgb(lr), gray=gray)


def _load_hr_only(files: list[Path], scale: int) -> list[SRPair]:
    pairs = []
    for path in files:
        hr, gray = _read(path)
        pairs.append(pair_from_hr(path.name, hr, scale, gray=gray))
    return pairs


def _load_paired(files: list[Path], scale: int) -> list[SRPair]:
    """``<stem>_HR.<ext>`` + ``<stem>_LR.<ext>`` files -> pairs; orphans and size mismatches raise."""
    by_kind: dict[str, dict[str, Path]] = {"HR": {}, "LR": {}}
    for path in files:
        m = _HR_LR.match(path.stem)
        if m is None:
            raise ValueError(f"{path}: neither *_HR nor *_LR in a folder of HR/LR pairs")
        if m["stem"] in by_kind[m["kind"]]:
            raise ValueError(f"{path}: duplicate of {by_kind[m['kind']][m['stem']].name}")
        by_kind[m["kind"]][m["stem"]] = path
    for kind, other in (("HR", "LR"), ("LR", "HR")):
        for stem, path in by_kind[kind].items():
            if stem not in by_kind[other]:
                raise ValueError(f"{path}: no matching {stem}_{other} file")
    pairs = []
    for stem in sorted(by_kind["HR"]):
        hr_path, lr_path = by_kind["HR"][stem], by_kind["LR"][stem]
        (hr, hr_gray), (lr, lr_gray) = _read(hr_path), _read(lr_path)
        expected = (lr.shape[0] * scale, lr.shape[1] * scale)
        if hr.shape[:2] != expected or hr_gray != lr_gray:
            raise ValueError(f"{hr_path}: HR {hr.shape} does not match LR {lr_path.name} {lr.shape} x{scale} "
                             f"(expected HR [{expected[0]},{expected[1]},{lr.shape[2]}])")
        pairs.append(SRPair(name=hr_path.name, hr=_to_rgb(hr), lr=_to_rgb(lr), gray=hr_gray))
    return pairs


def load_sr_pairs(data_dir: str | Path, scale: int) -> list[SRPair]:
    """Benchmark folder -> pairs sorted by name.

    * ``image_SRF_s/<stem>_HR.png`` + ``<stem>_LR.png`` (the Set5/Set14 layout; ``data_dir`` may be the set
      folder holding ``image_SRF_*``): those pairs, checking ``HR = LR x scale``.
    * otherwise every image file (png/jpg/jpeg/bmp/tif/tiff/webp) is an HR image: mod-cropped, LR made with
      MATLAB-exact ``imresize(HR, 1/scale)`` on uint8.

    A missing or empty folder raises ``ValueError`` naming it. Gray files: see the module docstring.
    """
    scale = _check_scale(scale)
    folder = resolve_data_dir(data_dir, scale)
    files = list_image_files(folder, "benchmark folder")
    if any(p.stem.endswith("_LR") for p in files):
        return _load_paired(files, scale)
    return _load_hr_only(files, scale)


# --------------------------------------------------------------------------------------------- evaluation


def bicubic_upscale(lr_u8: np.ndarray, scale: int) -> np.ndarray:
    """LR uint8 ``[h,w,C]`` -> uint8 ``[h*s,w*s,C]``: MATLAB ``imresize(lr, s, 'bicubic')``."""
    scale = _check_scale(scale)
    lr_u8 = np.asarray(lr_u8)
    if lr_u8.dtype != np.uint8:
        raise ValueError(f"bicubic_upscale expects uint8 LR; got {lr_u8.dtype} {lr_u8.shape}")
    return image.imresize(lr_u8, scale)


def _metric_inputs(sr_u8: np.ndarray, pair: SRPair, y_channel: bool) -> tuple[np.ndarray, np.ndarray]:
    """float32 ``[1,H,W,C]`` in ``[0,1]`` for the metrics; gray pairs on Y become their gray values ``[...,1]``."""
    sr, hr = image.to_float(sr_u8), image.to_float(pair.hr)
    if pair.gray and y_channel:
        sr, hr = image.rgb_to_gray(sr), hr[..., :1]
    return sr[None], hr[None]


def evaluate_pairs(
    sr_fn: Callable[[np.ndarray], Any],
    pairs: list[SRPair],
    scale: int,
    *,
    y_channel: bool = True,
    crop_border: int | None = None,
) -> dict[str, Any]:
    """Mean PSNR (dB) / SSIM of ``sr_fn`` over ``pairs``: ``{'psnr', 'ssim', 'per_image': [{name, psnr, ssim}]}``.

    ``sr_fn(lr uint8 [h,w,3]) -> [H,W,3]`` uint8, or float in ``[0,1]`` which is quantised with
    ``image.to_uint8`` (clip, round) before the metric, as the papers evaluate saved PNGs. Y channel by default,
    ``crop_border`` defaults to ``scale``. A 1-channel output is accepted for gray pairs on Y. The metrics are
    ``metrics.psnr_ssim_any_size``: a few compiled programs for a benchmark of many image sizes.
    """
    scale = _check_scale(scale)
    crop = scale if crop_border is None else crop_border
    if not pairs:
        raise ValueError("evaluate_pairs got no pairs")
    per_image = []
    for pair in pairs:
        sr = np.asarray(sr_fn(pair.lr))
        if sr.shape != pair.hr.shape and not (pair.gray and y_channel and sr.shape == pair.hr.shape[:2] + (1,)):
            raise ValueError(f"{pair.name}: sr_fn returned {sr.shape} {sr.dtype}; expected {pair.hr.shape}")
        pred, target = _metric_inputs(image.to_uint8(sr), pair, y_channel)
        p, s = (float(v[0]) for v in metrics.psnr_ssim_any_size(pred, target, crop_border=crop, y_channel=y_channel))
        per_image.append({"name": pair.name, "psnr": p, "ssim": s})
    return {
        "psnr": float(np.mean([r["psnr"] for r in per_image])),
        "ssim": float(np.mean([r["ssim"] for r in per_image])),
        "per_image": per_image,
    }


def evaluate_bicubic(data_dir: str | Path, scale: int, **kwargs: Any) -> dict[str, Any]:
    """``evaluate_pairs`` of MATLAB bicubic upscaling on ``load_sr_pairs(data_dir, scale)``."""
    pairs = load_sr_pairs(data_dir, scale)
    return evaluate_pairs(lambda lr: bicubic_upscale(lr, scale), pairs, scale, **kwargs)


def evaluate_folders(
    methods: dict[str, Callable[[np.ndarray], Any] | None], data_dirs: Sequence[str | Path], scale: int
) -> dict[str, Any]:
    """``{'scale', 'methods', 'datasets': {folder name: {method: evaluate_pairs(...)}}}`` for every benchmark
    folder (:func:`load_sr_pairs`) and method (an ``sr_fn``; ``None`` = MATLAB bicubic)."""
    results: dict[str, Any] = {"scale": scale, "methods": list(methods), "datasets": {}}
    for directory in data_dirs:
        pairs = load_sr_pairs(directory, scale)
        per_method = {}
        for name, fn in methods.items():
            fn = fn or (lambda lr: bicubic_upscale(lr, scale))
            per_method[name] = evaluate_pairs(fn, pairs, scale)
        results["datasets"][Path(directory).name] = per_method
    return results


def markdown_table(results: dict[str, Any]) -> str:
    """``| method | <set> PSNR / SSIM | ...`` rows of :func:`evaluate_folders` results."""
    sets = list(results["datasets"])
    head = "| method | " + " | ".join(f"{s} PSNR / SSIM" for s in sets) + " |"
    rule = "|---|" + "---|" * len(sets)
    rows = []
    for method in results["methods"]:
        cells = [f"{results['datasets'][s][method]['psnr']:.2f} / {results['datasets'][s][method]['ssim']:.4f}"
                 for s in sets]
        rows.append(f"| {method} | " + " | ".join(cells) + " |")
    note = f"\nY channel (BT.601), border crop = {results['scale']}, x{results['scale']}.\n"
    return "\n".join([head, rule, *rows]) + "\n" + note


# --------------------------------------------------------------------------------------------- validation


def validate(
    sr_fn: Callable[[np.ndarray], np.ndarray],
    val_sets: dict[str, list[SRPair]],
    scale: int,
) -> dict[str, float]:
    """``{'<set>/psnr', '<set>/ssim', 'val_psnr'}``; ``val_psnr`` is the mean over sets (drives best-ckpt)."""
    out: dict[str, float] = {}
    for name, pairs in val_sets.items():
        result = evaluate_pairs(sr_fn, pairs, scale)
        out[f"{name}/psnr"], out[f"{name}/ssim"] = float(result["psnr"]), float(result["ssim"])
    if val_sets:
        out["val_psnr"] = float(np.mean([out[f"{n}/psnr"] for n in val_sets]))
    return out


def center_crop(img: np.ndarray, side: int, multiple: int = 1) -> np.ndarray:
    """The central ``side x side`` window (a multiple of ``multiple``; the whole image when ``side`` is 0 or
    larger than it)."""
    h, w = img.shape[:2]
    if not side:
        return img
    ch, cw = min(side, h) // multiple * multiple, min(side, w) // multiple * multiple
    top, left = (h - ch) // 2 // multiple * multiple, (w - cw) // 2 // multiple * multiple
    return img[top:top + ch, left:left + cw]


def comparison_grid(
    lr_u8: np.ndarray, sr: np.ndarray | Sequence[np.ndarray], hr_u8: np.ndarray, scale: int, *, crop: int = 0
) -> np.ndarray:
    """``uint8 [h, (n+3) w, C]``: LR (nearest-upsampled) | bicubic | each SR output (one array or a list, float
    in [0,1] or uint8) | HR side by side, on the same central crop of HR side ``crop`` (0 = whole image)."""
    h, w = hr_u8.shape[:2]
    near = np.repeat(np.repeat(lr_u8, scale, axis=0), scale, axis=1)[:h, :w]
    bicubic = bicubic_upscale(lr_u8, scale)[:h, :w]
    srs = [sr] if isinstance(sr, np.ndarray) or hasattr(sr, "shape") else list(sr)
    cols = [near, bicubic] + [image.to_uint8(np.asarray(c))[:h, :w] for c in srs] + [hr_u8]
    return image.grid([[center_crop(c, crop, scale) for c in cols]], gutter=0)
