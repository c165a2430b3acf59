"""Reproduction study: SRCNN x3 trained on T91 for a fixed time budget, evaluated on Set5/Set14.

    .venv/bin/python experiments/srcnn_t91.py [--minutes 15] [--workdir workdirs/srcnn_t91] [--config ...]

Trains ``configs/srcnn.py:x3`` on ``../shared/data/sr-train/T91`` until the time budget is spent
(checkpoint + stop; rerunning resumes), then evaluates the final generator and bicubic on full Set5/Set14 x3
images from the provided MATLAB LR files (Y channel, crop = 3) and writes
``experiments/results/srcnn_t91.{json,md}`` next to the paper's numbers. The budget is far below the paper's
(~1e8 backprops / 3 days on a GPU): the result is what a session's CPU budget buys, recorded honestly.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from jaxgen import evaluation, inference
from jaxgen.config import load_config, shared_data_dir
from jaxgen.train import train

REPO = Path(__file__).resolve().parents[1]
# Dong et al., TPAMI 2016, Table 4/5: SRCNN (9-5-5, ImageNet) Set5 x3 32.75 dB, Set14 x3 29.30 dB;
# trained on the 91 images (9-1-5): Set5 x3 32.39 dB (ECCV 2014 / TPAMI Fig. 1 setting).
PAPER = {"srcnn_955_imagenet": {"Set5": 32.75, "Set14": 29.30}, "srcnn_915_t91": {"Set5": 32.39}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--minutes", type=float, default=15.0)
    ap.add_argument("--workdir", default="workdirs/srcnn_t91")
    ap.add_argument("--config", default=f"{REPO / 'configs' / 'srcnn.py'}:x3")
    ap.add_argument("--out", default=str(REPO / "experiments" / "results" / "srcnn_t91"))
    args = ap.parse_args()

    shared = Path(shared_data_dir())
    config = load_config(args.config)
    config.time_budget_s = args.minutes * 60
    config.progress_bar = False
    t0 = time.time()
    summary = train(config, args.workdir)
    params = summary["state"].eval_params

    from jaxgen.train import setup

    sr_fn = inference.make_sr_fn(inference.make_apply(setup.build_generator(config)), params, config.scale)
    rows = {}
    for name in ("Set5", "Set14"):
        pairs = evaluation.load_sr_pairs(shared / "sr-benchmarks" / name / f"image_SRF_{config.scale}", config.scale)
        model = evaluation.evaluate_pairs(sr_fn, pairs, config.scale)
        bicubic = evaluation.evaluate_pairs(lambda lr: evaluation.bicubic_upscale(lr, config.scale), pairs, config.scale)
        rows[name] = {"model": {k: model[k] for k in ("psnr", "ssim")}, "bicubic": {k: bicubic[k] for k in ("psnr", "ssim")}}
    result = {
        "config": args.config, "steps": summary["final_step"], "train_seconds": summary["train_seconds"],
        "wall_seconds": time.time() - t0, "images_per_s": (summary.get("last_train") or {}).get("images_per_s"),
        "params": summary["params"], "results": rows, "paper": PAPER,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2))
    lines = [
        f"SRCNN x3 on T91, {summary['final_step']} steps in {summary['train_seconds'] / 60:.1f} min "
        f"({summary['params']:,} params). Y channel, crop 3, full images.",
        "",
        "| | Set5 PSNR / SSIM | Set14 PSNR / SSIM |",
        "|---|---|---|",
        "| bicubic | " + " | ".join(f"{rows[s]['bicubic']['psnr']:.2f} / {rows[s]['bicubic']['ssim']:.4f}" for s in rows) + " |",
        "| ours (budget) | " + " | ".join(f"{rows[s]['model']['psnr']:.2f} / {rows[s]['model']['ssim']:.4f}" for s in rows) + " |",
        "| paper 9-1-5 T91 | 32.39 | - |",
        "| paper 9-5-5 ImageNet | 32.75 | 29.30 |",
    ]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
