"""``jaxgen demo``: the main job on an embedded default, offline, in a few minutes on 2 CPU cores.

Trains ``configs/edsr.py:x2,demo`` (a small EDSR) on the scikit-image sample photos (two held out), then
evaluates model vs bicubic on the held-out photos (Y-PSNR, crop = scale) and writes comparison grids.
``--config.data.train_dir=DIR`` trains on your own folder instead; any other ``--config.*`` override works too.
Rerunning on the same workdir resumes (or just re-evaluates a finished run).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from absl import app, flags, logging
from ml_collections import config_flags

REPO_CONFIGS = Path(__file__).resolve().parents[2] / "configs"

_CONFIG = config_flags.DEFINE_config_file(
    "config", f"{REPO_CONFIGS / 'edsr.py'}:x2,demo", "config file[:args]", lock_config=True
)
_WORKDIR = flags.DEFINE_string("workdir", "workdirs/demo", "run folder")


def _summary_table(rows: list[tuple[str, float, float]]) -> str:
    lines = [f"{'held-out image':<22}{'bicubic':>10}{'model':>10}{'gain':>9}"]
    lines += [f"{name:<22}{b:>8.2f}dB{m:>8.2f}dB{m - b:>+8.2f}" for name, b, m in rows]
    return "\n".join(lines)


def _main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    from jaxgen import evaluation, image, inference
    from jaxgen.commands.common import print_train_summary, run_guarded
    from jaxgen.train import loop, setup, validate

    config = _CONFIG.value
    workdir = Path(_WORKDIR.value)
    t0 = time.perf_counter()
    summary = run_guarded(lambda: loop.train(config, workdir))
    config = loop.resolve_data_config(config)
    state = summary["state"]
    generator = setup.build_generator(config)
    sr_fn = inference.make_sr_fn(inference.make_apply(generator), state.eval_params, config.scale)
    rows = []
    for directory in config.data.val_dirs:
        for pair in evaluation.load_sr_pairs(directory, config.scale):
            model = evaluation.evaluate_pairs(sr_fn, [pair], config.scale)
            bicubic = evaluation.evaluate_pairs(lambda lr: evaluation.bicubic_upscale(lr, config.scale), [pair], config.scale)
            rows.append((pair.name, bicubic["psnr"], model["psnr"]))
            grid = validate.comparison_grid(pair.lr, sr_fn(pair.lr), pair.hr, config.scale)
            image.write_image(workdir / "comparisons" / f"{Path(pair.name).stem}_lr_bicubic_sr_hr.png", grid)
    print("\n" + "=" * 60)
    print(f"jaxgen demo: {config.model.name} x{config.scale}, workdir {workdir}")
    print_train_summary(summary)
    if rows:
        print(_summary_table(rows))
        mean_gain = sum(m - b for _, b, m in rows) / len(rows)
        print(f"mean gain over bicubic: {mean_gain:+.2f} dB (Y channel, crop = {config.scale})")
    print(f"comparison grids (LR | bicubic | model | HR): {workdir / 'comparisons'}")
    print(f"TensorBoard: tensorboard --logdir {workdir / 'tensorboard'}    total time {time.perf_counter() - t0:.0f} s")
    print("=" * 60)


def run(argv: list[str]) -> int:
    logging.set_verbosity(logging.WARNING)
    app.run(_main, argv=argv)
    return 0


if __name__ == "__main__":
    sys.exit(run(sys.argv))
