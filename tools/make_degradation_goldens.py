"""Goldens of PyTorch's resampling and BasicSR's filtering for ``tests/test_degradations.py``.

Regenerate (PyTorch only here, never in the tests): ``/work/torchvenv/bin/python tools/make_degradation_goldens.py``
-> ``tests/goldens/degradations/torch_ops.npz``. ``F.interpolate`` is PyTorch itself (``align_corners=False``, no
antialias; Real-ESRGAN's calls); ``filter2D`` and ``USMSharp`` are re-created here from BasicSR's
``basicsr/utils/img_process_util.py`` layout (reflect pad, grouped conv; OpenCV's Gaussian kernel with sigma 0).
"""

import numpy as np
import torch
import torch.nn.functional as F

OUT = "tests/goldens/degradations/torch_ops.npz"


def filter2d(img, kernel):  # BasicSR filter2D: (b,c,h,w), kernel (b,k,k)
    k = kernel.size(-1)
    b, c, h, w = img.size()
    img = F.pad(img, (k // 2, k // 2, k // 2, k // 2), mode="reflect")
    ph, pw = img.size()[-2:]
    img = img.view(1, b * c, ph, pw)
    kernel = kernel.view(b, 1, k, k).repeat(1, c, 1, 1).view(b * c, 1, k, k)
    return F.conv2d(img, kernel, groups=b * c).view(b, c, h, w)


def usm(img, radius=51, weight=0.5, threshold=10):
    sigma = 0.3 * ((radius - 1) * 0.5 - 1) + 0.8
    x = np.arange(radius) - (radius - 1) / 2
    g = np.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    kernel = torch.tensor(np.outer(g, g), dtype=torch.float32)[None].repeat(img.size(0), 1, 1)
    blur = filter2d(img, kernel)
    residual = img - blur
    mask = (torch.abs(residual) * 255 > threshold).float()
    soft = filter2d(mask, kernel)
    sharp = torch.clip(img + weight * residual, 0, 1)
    return soft * sharp + (1 - soft) * img


def main():
    rng = np.random.default_rng(0)
    img = rng.random((2, 3, 37, 29)).astype(np.float32)  # NCHW
    t = torch.from_numpy(img)
    out = {"img": img.transpose(0, 2, 3, 1)}
    for mode in ("area", "bilinear", "bicubic"):
        for scale in (0.37, 0.8, 1.0, 1.43):
            out[f"scale_{mode}_{scale}"] = F.interpolate(t, scale_factor=scale, mode=mode).numpy().transpose(0, 2, 3, 1)
        for size in ((11, 9), (50, 41)):
            out[f"size_{mode}_{size[0]}x{size[1]}"] = F.interpolate(t, size=size, mode=mode).numpy().transpose(0, 2, 3, 1)
    kernels = rng.random((2, 7, 7)).astype(np.float32)
    kernels /= kernels.sum(axis=(1, 2), keepdims=True)
    out["kernels"] = kernels
    out["filter2d"] = filter2d(t, torch.from_numpy(kernels)).numpy().transpose(0, 2, 3, 1)
    big = rng.random((1, 3, 64, 60)).astype(np.float32)
    big = np.clip(big * 0.3 + np.linspace(0, 0.7, 60)[None, None, None, :], 0, 1).astype(np.float32)
    out["usm_in"] = big.transpose(0, 2, 3, 1)
    out["usm"] = usm(torch.from_numpy(big)).numpy().transpose(0, 2, 3, 1)
    np.savez_compressed(OUT, **out)
    print("wrote", OUT, {k: v.shape for k, v in out.items()})


if __name__ == "__main__":
    main()
