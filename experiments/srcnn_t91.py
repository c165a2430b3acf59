"""Reproduction study as a sweep: SRCNN x3 on T91 (9-1-5 and 9-5-5 filters) for a fixed time budget each,
scored on Set5/Set14 next to bicubic and the paper.

    jaxgen sweep experiments/srcnn_t91.py:minutes=15 --workdir workdirs/srcnn_t91     # the trials (resumable)
    python experiments/srcnn_t91.py --workdir workdirs/srcnn_t91 --minutes 15           # the same, then the table

Each trial trains ``configs/srcnn.py:x3`` (T91 from ``../shared/data/sr-train/T91``, LR by MATLAB-exact
bicubic, 11x11 LR patches, MSE, Adam) until ``time_budget_s`` is spent, evaluating the full Set5/Set14 x3
images from the provided MATLAB LR files at the end (Y channel, crop = 3; the trainer's validation). The
script form then writes ``experiments/results/srcnn_t91.md`` with bicubic (computed here, same protocol) and
the paper's numbers. The budget is far below the paper's (~1e8 backprops / 3 days on a GPU): the result is
what a CPU budget buys, recorded honestly.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from jaxgen.config import parse_arg
from jaxgen.sweeps import product, sweep

BASE_CONFIG = "configs/srcnn.py:x3"
BASE_OVERRIDES = {"eval_every": 0}  # evaluate once, when the budget is spent
METRIC, MODE = "val_psnr", "max"
REPO = Path(__file__).resolve().parents[1]
# Dong et al., TPAMI 2016: SRCNN 9-5-5 (ImageNet) Set5 x3 32.75 dB, Set14 x3 29.30 dB; 9-1-5 trained on the
# 91 images: Set5 x3 32.39 dB (ECCV 2014 / TPAMI Fig. 1 setting).
PAPER = {"9-1-5 (T91)": {"Set5": 32.39}, "9-5-5 (ImageNet)": {"Set5": 32.75, "Set14": 29.30}}


def get_sweep(arg=None):
    """``minutes`` of training per trial (default 15); ``only915`` keeps the paper's T91 network only."""
    a = parse_arg(arg, minutes=15.0, only915=False)
    kernels = [(9, 1, 5)] if a.only915 else [(9, 1, 5), (9, 5, 5)]
    return product(sweep("model.kernel_sizes", kernels), sweep("time_budget_s", [float(a.minutes) * 60]))


def bicubic_rows(scale: int = 3) -> dict[str, dict[str, float]]:
    from jaxgen import evaluation
    from jaxgen.config import shared_data_dir

    rows = {}
    for name in ("Set5", "Set14"):
        pairs = evaluation.load_sr_pairs(Path(shared_data_dir()) / "sr-benchmarks" / name, scale)
        rows[name] = evaluation.evaluate_pairs(lambda lr: evaluation.bicubic_upscale(lr, scale), pairs, scale)
    return rows


def write_table(workdir: Path, out: Path) -> str:
    from jaxgen.sweeps.results import write_results

    trials = write_results(workdir)
    bicubic = bicubic_rows()
    lines = ["SRCNN x3 on T91 through `jaxgen sweep` (Y channel, crop 3, full images, MATLAB LR).", "",
             "| | steps | minutes | Set5 PSNR / SSIM | Set14 PSNR / SSIM |", "|---|---|---|---|---|",
             "| bicubic | | | " + " | ".join(f"{bicubic[s]['psnr']:.2f} / {bicubic[s]['ssim']:.4f}" for s in bicubic) + " |"]
    for row in trials:
        kernels = "-".join(str(k) for k in row.get("model.kernel_sizes") or ())
        sets = " | ".join(f"{row.get(f'final_{s}/psnr', float('nan')):.2f} / {row.get(f'final_{s}/ssim', float('nan')):.4f}"
                          for s in ("Set5", "Set14"))
        lines.append(f"| ours {kernels} ({row['status']}) | {row.get('steps')} | {row['wall_s'] / 60:.1f} | {sets} |")
    for name, sets in PAPER.items():
        lines.append(f"| paper {name} | | | {sets.get('Set5', '-')} | {sets.get('Set14', '-')} |")
    text = "\n".join(lines) + "\n"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text(text)
    out.with_suffix(".json").write_text(json.dumps({"trials": trials, "bicubic": bicubic, "paper": PAPER},
                                                   indent=2, default=str))
    return text


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=15.0)
    ap.add_argument("--workdir", default="workdirs/srcnn_t91")
    ap.add_argument("--out", default=str(REPO / "experiments" / "results" / "srcnn_t91"))
    ap.add_argument("--parallel", type=int, default=1)
    args = ap.parse_args()
    from jaxgen.commands import sweep as sweep_command

    code = sweep_command.run(["jaxgen sweep", f"{__file__}:minutes={args.minutes}", "--workdir", args.workdir,
                              "--parallel", str(args.parallel)])
    print(write_table(Path(args.workdir), Path(args.out)))
    return code


if __name__ == "__main__":
    sys.exit(main())
