"""Adversarial SR ablation at equal steps: L1 only / L1 + perceptual / L1 + perceptual + GAN, 3 seeds.

The controlled version of ``experiments/adversarial_sr_study.py`` (whose GAN model had more steps than its
baseline, no "perceptual, no GAN" arm and one seed). Per seed: one L1 pretrain (``sr`` task, SRResNet 32 features,
4 blocks, x2 on T91; the study's ``psnr_config``), then three arms, each ``--arm-steps`` further steps from that
pretrain's weights (``init_from``) through the SAME task (``sr_gan``: same generator, discriminator, optimisers,
lr, patch, batch, seed and hence data order). The arm configs differ only in ``config.losses`` weights:

* ``l1``: L1 1.0, perceptual 0, GAN 0 (the discriminator still trains beside it and never reaches the generator);
* ``l1_percep``: L1 0.01 + perceptual 1.0, GAN 0;
* ``esrgan``: L1 0.01 + perceptual 1.0 + RaGAN 0.005 (``ragan_basicsr``): BasicSR ``train_ESRGAN_x4.yml``'s
  weights and layer (VGG19 ``conv5_4`` before ReLU, L1 criterion; ``weights='auto'``: torchvision's file or the
  Caffe VGG19 rescaled per layer to its scale, the run prints which).

Seeds differ in the initialisation (G and D) and the data order. Held-out evaluation on Set5/Set14 x2 with the
study's ``evaluate`` (Y-PSNR/SSIM crop 2 on full images; LPIPS v0.1 VGG and AlexNet on the central 128 px crop).
Each term of the generator objective is reported at the end of each arm: its value (mean over the last logged
steps, ``metrics.jsonl``) and the norm of its gradient w.r.t. the generator on one training batch, as shares.

Run (needs ../shared/data; the budget in experiments/README.md):
``python experiments/sr_ablation.py [--pretrain-steps 400 --arm-steps 100 --seeds 0,1,2 --workdir /work/runs/ablation]``
-> ``experiments/results/sr_ablation.{json,md}``, ``experiments/results/sr_ablation_grid.png``. Every stage resumes
its workdir (finished stages are not retrained; their first training time is kept in ``ablation_time.json``).
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
sys.path.insert(0, str(REPO / "experiments"))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import ml_collections  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from adversarial_sr_study import LPIPS_CROP, MODEL, SCALE, evaluate, gan_config, psnr_config, run  # noqa: E402
from jaxgen import evaluation, image  # noqa: E402
from jaxgen import losses as losses_lib  # noqa: E402
from jaxgen.config import shared_data_dir  # noqa: E402
from jaxgen.evaluation import comparison_grid  # noqa: E402
from jaxgen.metrics import default_lpips_params  # noqa: E402
from jaxgen.tasks import get_task  # noqa: E402

RESULTS = REPO / "experiments" / "results"
ARMS = ("l1", "l1_percep", "esrgan")
ARM_LABELS = {"l1": "(a) L1 only", "l1_percep": "(b) L1 + perceptual", "esrgan": "(c) L1 + perceptual + GAN"}
PERCEPTUAL = dict(weight=1.0, vgg_type="vgg19", layer_weights={"conv5_4": 1.0}, criterion="l1", weights="auto")
GAN = dict(kind="ragan_basicsr", real_label=1.0, fake_label=0.0, gp_weight=0.0, r1_gamma=0.0)
ARM_WEIGHTS = {  # (l1, perceptual, gan)
    "l1": (1.0, 0.0, 0.0),
    "l1_percep": (0.01, 1.0, 0.0),
    "esrgan": (0.01, 1.0, 5e-3),
}
PAIRS = (("l1", "pretrain"), ("l1_percep", "l1"), ("esrgan", "l1_percep"))  # what each step of the ablation adds
SHORT = {"pretrain": "pretrain", "l1": "(a)", "l1_percep": "(b)", "esrgan": "(c)"}
TERM_TAIL = 0.2  # term values: mean over the logged steps of the last 20% of an arm


def pretrain_config(shared: str, steps: int, seed: int) -> ml_collections.ConfigDict:
    """The study's L1 stage (Adam 1e-3, cosine to 1e-5, LR patch 32, batch 8), with a seed."""
    c = psnr_config(shared, steps)
    c.seed = seed
    return c


def arm_config(shared: str, arm: str, steps: int, seed: int, init_from: str) -> ml_collections.ConfigDict:
    """The study's GAN stage (Adam 1e-4 for G and D, LR patch 24, batch 8, PatchGAN D) with ``arm``'s loss weights
    (``ARM_WEIGHTS``); everything but ``losses`` is the same for every arm."""
    l1, percep, gan = ARM_WEIGHTS[arm]
    c = gan_config(shared, steps, init_from)
    c.seed = seed
    c.log_every = 10
    c.losses = ml_collections.ConfigDict(dict(l1=l1, perceptual=dict(PERCEPTUAL, weight=percep),
                                              gan=dict(GAN, weight=gan)))
    return c


def term_grad_norms(task, state, batch, consts) -> dict[str, float]:  # noqa: ANN001 (the sr_gan task's own types)
    """Norm of each weighted generator term's gradient (``loss_l1``, ``loss_perceptual``, ``loss_gan``) on one
    batch at the state's generator weights: the generator objective of ``SRGANTask.step`` split by term."""
    g, d = state.players["generator"], state.players["discriminator"]
    lr, targets, _ = task.pairs(state, batch)

    def parts(params, consts):
        sr = task.generator.apply({"params": params}, lr).astype(jnp.float32)
        out = task.content(sr, targets, consts)
        real = jax.lax.stop_gradient(task.d_apply(d.params, d.collections, targets["gan"], update=False)[0])
        fake = task.d_apply(d.params, d.collections, sr, update=False)[0]
        out["gan"] = task.gan_weight * losses_lib.gan_g_loss(fake, kind=task.gan_kind, real_logits=real,
                                                             **task.labels)
        return out

    jac = jax.jit(jax.jacrev(parts))(g.params, consts)
    return {f"loss_{n}": float(optax.tree.norm(j)) for n, j in sorted(jac.items())}


def logged_terms(workdir: Path) -> dict[str, float]:
    """Mean of each ``loss_*`` metric over the logged steps of the run's last ``TERM_TAIL``."""
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    rows = [r for r in rows if "loss" in r]
    last = max(r["step"] for r in rows)
    tail = [r for r in rows if r["step"] > last * (1 - TERM_TAIL)]
    return {k: float(np.mean([r[k] for r in tail])) for k in sorted(tail[-1]) if k.startswith("loss_")}


def shares(values: dict[str, float]) -> dict[str, float]:
    total = sum(abs(v) for v in values.values())
    return {k: (abs(v) / total if total else 0.0) for k, v in values.items()}


def train_stage(config: ml_collections.ConfigDict, workdir: Path) -> tuple[dict, float]:
    """``run`` (the study's) with the first training's wall time kept in ``workdir/ablation_time.json``."""
    record = workdir / "ablation_time.json"
    summary, seconds = run(config, workdir)
    if summary.get("preempted"):  # checkpointed on a signal: the next run resumes here
        sys.exit(f"stopped by {summary['preempted']} in {workdir} at step {summary['final_step']}; run again to resume")
    if summary["start_step"] < config.total_steps:
        record.write_text(json.dumps({"train_s": seconds, "steps": config.total_steps - summary["start_step"]}))
    return summary, json.loads(record.read_text())["train_s"] if record.is_file() else seconds


def spread(values: list[float]) -> dict[str, float]:
    v = np.asarray(values, np.float64)
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if v.size > 1 else 0.0,
            "min": float(v.min()), "max": float(v.max()), "n": int(v.size)}


def table(summary: dict) -> list[str]:
    lines = ["| set | method | PSNR (Y) | SSIM | LPIPS-VGG | LPIPS-Alex |", "|---|---|---|---|---|---|"]
    for set_name, rows in summary.items():
        for method, r in rows.items():
            cells = []
            for key, fmt in (("psnr", "{:.2f} ± {:.2f}"), ("ssim", "{:.4f} ± {:.4f}"),
                             ("lpips_vgg", "{:.4f} ± {:.4f}"), ("lpips_alex", "{:.4f} ± {:.4f}")):
                s = r[key]
                cells.append(fmt.format(s["mean"], s["std"]) if s["n"] > 1 else fmt.split(" ±")[0].format(s["mean"]))
            lines.append(f"| {set_name} | {method} | " + " | ".join(cells) + " |")
    return lines


def write_report(record: dict, results_dir: Path) -> str:
    """``sr_ablation.md`` from the run's record (the metrics table and the objective's terms); returns its text."""
    p = record["protocol"]
    lines = [f"Mean ± std over seeds {p['seeds']} (min-max in sr_ablation.json); equal arm steps: "
             f"{p['arms']['steps_each']} each after a {p['pretrain']['steps']}-step L1 pretrain.", ""]
    lines += table(record["summary"])
    lines += ["", "Generator objective at the end of each arm (mean over seeds): each weighted term's value (mean over "
              f"the last {TERM_TAIL:.0%} of logged steps) and the norm of its gradient w.r.t. the generator (one "
              "training batch, final weights), with their shares of the sums:",
              "", "| arm | term | value | value share | gradient norm | gradient-norm share |",
              "|---|---|---|---|---|---|"]
    for arm in ARMS:
        t = record["terms"][arm]
        for k in t["value"]:
            lines.append(f"| {ARM_LABELS[arm]} | {k[5:]} | {t['value'][k]['mean']:.3g} | "
                         f"{100 * t['value_share'][k]['mean']:.3g}% | {t['grad_norm'][k]['mean']:.3g} | "
                         f"{100 * t['grad_share'][k]['mean']:.3g}% |")
    lines += ["", "Paired differences (same seed, same pretrain, same batches), per seed:", "",
              "| set | difference | PSNR (Y) | SSIM | LPIPS-VGG | LPIPS-Alex |", "|---|---|---|---|---|---|"]
    per_model = record["per_model"]
    for set_name, rows in per_model.items():
        for x, y in PAIRS:
            cells = [", ".join(f"{rows[f'{x}/{s}'][k] - rows[f'{y}/{s}'][k]:+.{d}f}" for s in p["seeds"])
                     for k, d in (("psnr", 3), ("ssim", 4), ("lpips_vgg", 4), ("lpips_alex", 4))]
            lines.append(f"| {set_name} | {SHORT[x]} - {SHORT[y]} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    (results_dir / "sr_ablation.md").write_text(text)
    return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pretrain-steps", type=int, default=400)
    ap.add_argument("--arm-steps", type=int, default=100)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--workdir", default="/work/runs/ablation")
    ap.add_argument("--results", default=str(RESULTS), help="folder of sr_ablation.{json,md} and the grid")
    a = ap.parse_args()
    seeds = [int(s) for s in a.seeds.split(",")]
    shared = shared_data_dir() if Path(shared_data_dir()).is_dir() else str(REPO.parent / "shared" / "data")
    if not Path(shared, "sr-train", "T91").is_dir():
        sys.exit(f"needs {shared}/sr-train/T91 and sr-benchmarks (set JAXGEN_SHARED_DATA)")
    work, results_dir = Path(a.workdir), Path(a.results)
    t_all, load0, cpu0 = time.perf_counter(), os.getloadavg(), time.process_time()

    sets = {name: evaluation.load_sr_pairs(f"{shared}/sr-benchmarks/{name}", SCALE) for name in ("Set5", "Set14")}
    lpips_params = {"vgg": default_lpips_params("vgg"), "alex": default_lpips_params("alex")}
    eval_task = get_task("sr_gan")(arm_config(shared, "esrgan", 1, 0, ""))  # one jitted generator for every model
    fns = {"bicubic": lambda lr: evaluation.bicubic_upscale(lr, SCALE)}
    timing, terms = {}, {}
    for seed in seeds:
        sw = work / f"seed{seed}"
        pre_summary, timing[f"seed{seed}/pretrain"] = train_stage(pretrain_config(shared, a.pretrain_steps, seed),
                                                                  sw / "pretrain")
        fns[f"pretrain/{seed}"] = eval_task.sr_fn(pre_summary["state"].players["generator"].eval_params)
        for arm in ARMS:
            config = arm_config(shared, arm, a.arm_steps, seed, str(sw / "pretrain"))
            summary, timing[f"seed{seed}/{arm}"] = train_stage(config, sw / arm)
            state = summary["state"]
            fns[f"{arm}/{seed}"] = eval_task.sr_fn(state.players["generator"].eval_params)
            task = get_task("sr_gan")(config)
            task.prepare(sw / arm)
            consts, sources = task.consts()
            batch = jax.tree.map(jnp.asarray, next(iter(task.make_data(0, 1))))
            values, grads = logged_terms(sw / arm), term_grad_norms(task, state, batch, consts)
            terms.setdefault(arm, {})[seed] = {"value": values, "value_share": shares(values),
                                               "grad_norm": grads, "grad_share": shares(grads), "vgg": sources}
            print(seed, arm, "value shares", {k: round(v, 3) for k, v in shares(values).items()},
                  "gradient shares", {k: round(v, 3) for k, v in shares(grads).items()}, flush=True)
    t0 = time.perf_counter()
    per_model = evaluate(fns, sets, lpips_params)  # one call: LPIPS compiled once for all models
    eval_s = time.perf_counter() - t0

    summary = {}
    for set_name in sets:
        rows = {"bicubic": {k: spread([v]) for k, v in per_model[set_name]["bicubic"].items()}}
        for method in ("pretrain",) + ARMS:
            label = f"pretrain only ({a.pretrain_steps} L1 steps)" if method == "pretrain" else ARM_LABELS[method]
            by_seed = [per_model[set_name][f"{method}/{s}"] for s in seeds]
            rows[label] = {k: spread([r[k] for r in by_seed]) for k in by_seed[0]}
        summary[set_name] = rows

    pair = sets["Set5"][2]  # butterfly
    grid = comparison_grid(pair.lr, [fns[f"{arm}/{seeds[0]}"](pair.lr) for arm in ARMS], pair.hr, SCALE, crop=96)
    results_dir.mkdir(parents=True, exist_ok=True)
    image.write_image(results_dir / "sr_ablation_grid.png", np.repeat(np.repeat(grid, 2, 0), 2, 1))
    term_summary = {arm: {kind: {k: spread([terms[arm][s][kind][k] for s in seeds]) for k in terms[arm][seeds[0]][kind]}
                          for kind in ("value", "value_share", "grad_norm", "grad_share")} for arm in ARMS}
    record = {
        "protocol": {
            "scale": SCALE, "generator": MODEL, "train": "T91 (folder), batch 8", "seeds": seeds,
            "pretrain": {"steps": a.pretrain_steps, "task": "sr", "lr_patch": 32, "loss": "l1",
                         "optim": "adam 1e-3 cosine to 1e-5"},
            "arms": {"steps_each": a.arm_steps, "task": "sr_gan", "init_from": "the seed's pretrain", "lr_patch": 24,
                     "disc": "patchgan ndf 32, 2 layers, no norm (trained in every arm)",
                     "optim": "adam 1e-4 constant (G and D)",
                     "losses": {arm: arm_config(shared, arm, 1, 0, "").losses.to_dict() for arm in ARMS}},
            "eval": f"Set5/Set14 x2, Y-PSNR/SSIM crop 2 on 8-bit output (full images); LPIPS v0.1 (vgg, alex) RGB on "
                    f"the central {LPIPS_CROP}x{LPIPS_CROP} crop",
            "spread": "std over seeds (ddof 1); min/max also given"},
        "summary": summary,
        "per_model": per_model,
        "terms": term_summary,
        "terms_per_seed": {arm: {str(s): v for s, v in d.items()} for arm, d in terms.items()},
        "budget": {"stage_train_s": timing, "eval_s": eval_s, "wall_s_this_run": time.perf_counter() - t_all,
                   "process_cpu_s_this_run": time.process_time() - cpu0, "load_avg_start": load0,
                   "load_avg_end": os.getloadavg(), "cores": os.cpu_count(), "devices": jax.device_count(),
                   "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime())},
    }
    (results_dir / "sr_ablation.json").write_text(json.dumps(record, indent=1))
    print(write_report(record, results_dir))
    print(json.dumps(record["budget"], indent=1))


if __name__ == "__main__":
    main()
