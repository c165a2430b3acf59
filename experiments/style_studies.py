"""CPU studies of the trained stylisers: fast_style (candy) without and with the adversarial PatchGAN player,
and AdaIN on the shared content photos and styles, each for a wall-clock budget on this CPU.

Run: ``PYTHONPATH=$PWD /work/main/.venv/bin/python experiments/style_studies.py [--budget 240]``. Uses
``configs/fast_style.py:study`` / ``study,gan`` and ``configs/adain.py:study`` (real VGG weights; needs
``../shared/data/style``). Writes ``experiments/results/style_studies.{json,md}`` and the final validation grids
``style_study_<name>.png`` (content | style | result), plus ``style_demo.png`` (``jaxgen.style.demo_picture``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "experiments" / "results"
STUDIES = {
    "fast_style_candy": "configs/fast_style.py:study,style=candy",
    "fast_style_candy_gan": "configs/fast_style.py:study,style=candy,gan",
    "adain": "configs/adain.py:study",
}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--budget", type=float, default=600.0, help="training seconds per study")
    p.add_argument("--only", nargs="*", default=list(STUDIES))
    args = p.parse_args()
    from jaxgen.config import load_config
    from jaxgen.style import demo_picture
    from jaxgen.tasks import get_task
    from jaxgen.train import train

    RESULTS.mkdir(parents=True, exist_ok=True)
    report = {"budget_s": args.budget, "cpus": os.cpu_count(), "studies": {}}
    for name in args.only:
        config = load_config(str(REPO / STUDIES[name]), [("time_budget_s", str(args.budget)), ("progress_bar", "false")])
        with tempfile.TemporaryDirectory() as workdir:
            load = os.getloadavg()
            t0 = time.perf_counter()
            summary = train(config, workdir, get_task(config.task)(config))
            grids = sorted(Path(workdir, "images").glob("content_style_result_*.png"))
            if grids:
                shutil.copy(grids[-1], RESULTS / f"style_study_{name}.png")
            metrics = [json.loads(l) for l in Path(workdir, "metrics.jsonl").read_text().splitlines() if l.strip()]
        report["studies"][name] = {
            "config": STUDIES[name], "steps": summary["final_step"], "train_seconds": summary["train_seconds"],
            "wall_seconds": time.perf_counter() - t0, "val": summary["val"], "last_train": summary.get("last_train"),
            "load_before": load, "load_after": os.getloadavg(), "params": summary["params"],
            "val_history": [m for m in metrics if any(k.startswith("val_") for k in m)],
        }
        print(name, report["studies"][name]["steps"], summary["val"], flush=True)
        (RESULTS / "style_studies.json").write_text(json.dumps(report, indent=1, default=float))
    path, seconds = demo_picture(RESULTS / "style_demo.png")
    report["demo_picture_seconds"] = seconds
    (RESULTS / "style_studies.json").write_text(json.dumps(report, indent=1, default=float))
    lines = ["# Style-transfer studies on this CPU", "",
             f"Each trained for {args.budget:.0f} s of wall time on {os.cpu_count()} CPU cores (load averages in the table).", "",
             "| study | steps | val_loss | val_content | val_style | load (1 min) before/after |", "|---|---|---|---|---|---|"]
    for name, r in report["studies"].items():
        v = r["val"]
        lines.append(f"| {name} | {r['steps']} | {v.get('val_loss', float('nan')):.4g} | {v.get('val_content', float('nan')):.4g} "
                     f"| {v.get('val_style', float('nan')):.4g} | {r['load_before'][0]:.1f} / {r['load_after'][0]:.1f} |")
    pair = [report["studies"].get(n) for n in ("fast_style_candy", "fast_style_candy_gan")]
    if all(pair):  # the discriminator's effect at equal steps (equal wall time favours the cheaper step)
        hist = [{h["step"]: h for h in r["val_history"] if "step" in h} for r in pair]
        common = sorted(set(hist[0]) & set(hist[1]))
        if common:
            lines += ["", "Fast style with and without the PatchGAN player at equal steps (validation):", "",
                      "| step | content (no D) | style (no D) | content (+D) | style (+D) |", "|---|---|---|---|---|"]
            for t in common:
                a, b = hist[0][t], hist[1][t]
                lines.append(f"| {t} | {a.get('val_content', float('nan')):.4g} | {a.get('val_style', float('nan')):.4g} "
                             f"| {b.get('val_content', float('nan')):.4g} | {b.get('val_style', float('nan')):.4g} |")
    lines.append(f"\n`make demo` picture (Gatys, 128 px, 60 L-BFGS steps): {seconds:.0f} s.")
    (RESULTS / "style_studies.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
