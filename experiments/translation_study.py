"""Translation study with a known truth (CPU): CycleGAN (unpaired) and pix2pix (paired) learning a fixed colour
transform of natural photos, measured instead of eyeballed.

Data: the 200 BSD training photos (``../shared/data/sr-train/BSD200``). Domain A = photos, domain B = the same kind
of photos under ``--transform`` (default ``invert``: the photo negative, ``255 - x``). CycleGAN trains *unpaired*
(A = the even-indexed photos, B = transform(odd-indexed photos): no photo appears in both domains); pix2pix trains
on aligned pairs (photo, transform(photo)). Evaluation: the 10 photos of ``style/contents`` (never trained on), central square at
``--eval-size`` px: ``val_mae_AtoB`` = mean |G(A) - transform(A)| in [0, 1] against the identity baseline
mean |A - transform(A)| (what doing nothing scores), every ``--eval-every`` steps.

Official protocols (LSGAN + cycle 10 + identity 0.5 + pools of 50; vanilla GAN + L1 x 100, U-Net with batch norm
and dropout; Adam 2e-4 / 0.5, constant then linear decay to 0 over the second half) on small networks and crops so
that each run fits a few CPU minutes.

Run: ``PYTHONPATH=. python experiments/translation_study.py`` -> ``experiments/results/translation_study.{json,md}``
and ``translation_{cyclegan,pix2pix}_grid.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "experiments" / "results"


def study_config(task: str, args: argparse.Namespace, steps: int):
    from jaxgen.config import load_config

    shared = Path(args.shared)
    common = [("total_steps", str(steps)), ("batch_size", str(args.batch)), ("log_every", "25"),
              ("eval_every", str(args.eval_every)), ("ckpt_every", str(steps)), ("progress_bar", "false"),
              ("optim.decay_start", str(steps // 2)), ("data.source", "folder"),
              ("data.dir_a", str(shared / "sr-train" / "BSD200")), ("data.val_dir_a", str(shared / "style" / "contents")),
              ("data.synthetic", args.transform), ("data.preprocess", "scale_width_and_crop"),
              ("data.load_size", str(args.load)), ("data.eval_size", str(args.eval_size)), ("data.num_eval", "10"),
              ("data.num_threads", "2"), ("disc.ndf", str(args.ndf))]
    if task == "cyclegan":
        spec = f"{REPO / 'configs' / 'cyclegan.py'}"
        extra = [("data.crop_size", str(args.crop)), ("model.ngf", str(args.ngf)), ("model.n_blocks", str(args.blocks)),
                 ("losses.lambda_identity", str(args.identity))]
    else:
        spec = f"{REPO / 'configs' / 'pix2pix.py'}:direction=AtoB"
        extra = [("data.crop_size", str(args.p2p_crop)), ("model.ngf", str(args.ngf)), ("model.num_downs", "5")]
    return load_config(spec, common + extra)


def run(task: str, args: argparse.Namespace, steps: int) -> dict:
    from jaxgen.tasks import get_task
    from jaxgen.train import train

    config = study_config(task, args, steps)
    workdir = Path(args.workdir) / task
    shutil.rmtree(workdir, ignore_errors=True)
    t0 = time.time()
    summary = train(config, workdir, get_task(config.task)(config))
    wall = time.time() - t0
    records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    key = "val_mae_AtoB" if task == "cyclegan" else "val_mae"
    curve = [{k: r[k] for k in r if k.startswith("val_") or k == "step"} for r in records if key in r]
    grids = sorted((workdir / "images").glob("*.png"))
    for g in grids:
        if g.stem.endswith(f"{steps:07d}"):
            shutil.copy(g, RESULTS / f"translation_{task}_{g.stem.rsplit('_', 1)[0]}_grid.png")
    params = {k: int(v) for k, v in summary["params"].items()}
    return {"task": task, "steps": steps, "wall_s": wall, "train_s": summary["train_seconds"], "params": params,
            "curve": curve, "final": curve[-1] if curve else {}, "config": json.loads(config.to_json())}


def write_md(results: dict, path: Path) -> None:
    lines = ["# Translation study: a colour transform with known truth (CPU)", "",
             f"Transform: `{results['transform']}`; evaluation: the 10 style/contents photos, central squares at {results['eval_size']} px; "
             "MAE in [0, 1] (lower is better). The identity baseline is the MAE of returning the input unchanged.",
             f"CPU: {results['cpu']} (shared with other jobs while it ran, so wall times are inflated).", ""]
    for r in results["runs"]:
        key = "val_mae_AtoB" if r["task"] == "cyclegan" else "val_mae"
        base = "val_mae_identity_AtoB" if r["task"] == "cyclegan" else "val_mae_identity"
        lines += [f"## {r['task']} ({r['steps']} steps, {r['wall_s']:.0f} s wall; params "
                  + ", ".join(f"{k} {v:,}" for k, v in r["params"].items()) + ")", "",
                  "| step | MAE A->B | identity baseline |" + (" MAE B->A |" if r["task"] == "cyclegan" else ""),
                  "|---:|---:|---:|" + ("---:|" if r["task"] == "cyclegan" else "")]
        for c in r["curve"]:
            row = f"| {c['step']} | {c[key]:.4f} | {c[base]:.4f} |"
            if r["task"] == "cyclegan":
                row += f" {c['val_mae_BtoA']:.4f} |"
            lines.append(row)
        lines.append("")
    path.write_text("\n".join(lines))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shared", default=str(REPO.parent / "shared" / "data"))
    p.add_argument("--workdir", default="/tmp/jaxgen_translation_study")
    p.add_argument("--transform", default="invert")
    p.add_argument("--cyclegan-steps", type=int, default=600)
    p.add_argument("--pix2pix-steps", type=int, default=400)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--crop", type=int, default=48)
    p.add_argument("--p2p-crop", type=int, default=64)
    p.add_argument("--load", type=int, default=128)
    p.add_argument("--eval-size", type=int, default=128)
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument("--ngf", type=int, default=16)
    p.add_argument("--ndf", type=int, default=16)
    p.add_argument("--blocks", type=int, default=3)
    p.add_argument("--identity", type=float, default=0.5)
    p.add_argument("--tasks", default="cyclegan,pix2pix")
    p.add_argument("--tag", default="")
    args = p.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    steps = {"cyclegan": args.cyclegan_steps, "pix2pix": args.pix2pix_steps}
    runs = [run(t, args, steps[t]) for t in args.tasks.split(",")]
    results = {"transform": args.transform, "eval_size": args.eval_size, "cpu": f"{os.cpu_count()} cores",
               "args": vars(args), "runs": runs}
    name = f"translation_study{args.tag}"
    (RESULTS / f"{name}.json").write_text(json.dumps(results, indent=1))
    write_md(results, RESULTS / f"{name}.md")
    print((RESULTS / f"{name}.md").read_text())


if __name__ == "__main__":
    main()
