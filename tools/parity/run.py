"""Step-by-step training parity of jaxgen's trainers with the official PyTorch code (issue 17).

    python tools/parity/run.py --torch-python /work/torchvenv/bin/python [--trainers sr,sr_gan] [--steps 20]
                               [--seed 0] [--write-goldens] [--keep DIR]

For each trainer plug-in (``tools/parity/trainer_NAME.py`` + ``torch_NAME.py``; interface in ``common.py``):
make the case (jaxgen's initial weights in PyTorch naming, the batches, the hyper-parameters), run the official
step re-created in PyTorch (a subprocess with ``--torch-python``) and jaxgen's task on it, and print one row:

    trainer  steps  max rel loss diff (term@step)  max rel param diff (tensor)  update rel diff  ok

``ok``: ``yes`` within tolerance (``common.LOSS_RTOL``/``PARAM_RTOL``); ``floor``: out of it, but within the
measured float32 noise floor of the official code itself (a second torch run on weights x (1 + 1e-7 N), done
automatically for such a trainer and printed below its row; rule in ``common.py``); ``NO`` otherwise.
Exit 0 when every trainer is ``yes`` or ``floor``, 1 otherwise, 2 on a usage error. ``--write-goldens`` also saves ``tests/goldens/parity/NAME.npz`` from the torch side (for ``make test``).
Run it with jaxgen's venv python from the repository root (PyTorch only in ``--torch-python``'s venv).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402  (tools/parity is not a package)


def noise_floor(torch_python: str, name: str, case: dict, folder: Path, seed: int,
                kind: str = "perturb") -> dict | None:
    """The torch side again with every initial float weight times ``1 + 1e-7 N(0,1)`` (``kind='perturb'``), or on
    the same case in float64 (``kind='float64'``: a plug-in's ``NOISE_FLOOR``, for torch scripts with ``--dtype``;
    the official code's own float32 error); ``None`` if it fails."""
    if kind == "float64":
        res, why = common.run_torch(torch_python, name, case, folder, "_noisy", ("--dtype", "float64"))
    else:
        res, why = common.run_torch(torch_python, name, common.perturbed_case(case, seed), folder, "_noisy")
    if res is None:
        print(f"    noise-floor run failed: {why[-500:]}", flush=True)
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--torch-python", required=True, help="python of a venv with torch (+ torchvision)")
    ap.add_argument("--trainers", default="", help="comma-separated names (default: every plug-in found)")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--write-goldens", action="store_true", help="save tests/goldens/parity/NAME.npz")
    ap.add_argument("--keep", default="", help="folder to keep the case/torch/jax .npz files in")
    ap.add_argument("--noise-floor", action="store_true",
                    help="also run the torch side on the initial weights times (1 + 1e-7 N(0,1)) (float32 rounding "
                         "size) and print torch-vs-torch differences: the drift float32 alone produces")
    args = ap.parse_args(argv)
    known = common.discover()
    names = [n for n in args.trainers.split(",") if n] or known
    unknown = [n for n in names if n not in known]
    if status := common.usage_error(
            (bool(unknown), f"--trainers: no plug-in for {unknown}; found: {known}"),
            (args.steps < 1, f"--steps={args.steps}: expected >= 1"),
            (not Path(args.torch_python).exists(), f"--torch-python {args.torch_python}: no such file")):
        return status
    keep = Path(args.keep) if args.keep else None
    if keep:
        keep.mkdir(parents=True, exist_ok=True)
    header = f"{'trainer':<14}{'steps':>6}  {'max rel loss diff':>17}  {'at':<22}{'max rel param diff':>18}  " \
             f"{'at':<34}{'upd rel':>9}  {'ok':<6}{'secs':>6}"
    print(header, flush=True)
    all_ok = True
    for name in names:
        t0 = time.time()
        trainer = common.load_trainer(name)
        case = {k: np.asarray(v) for k, v in trainer.make_case(args.steps, args.seed).items()}
        with tempfile.TemporaryDirectory() as tmp:
            folder = keep or Path(tmp)
            torch_res, why = common.run_torch(args.torch_python, name, case, folder)
            if torch_res is None:
                print(f"{name:<14}{args.steps:>6}  torch side failed ({why})", flush=True)
                all_ok = False
                continue
            jax_res = trainer.run_jax(case)
            r = common.compare(torch_res, jax_res, common.initial_params(case))
            floor = None
            if args.noise_floor or not r["ok"]:  # measure the official code's own float32 spread
                floor = noise_floor(args.torch_python, name, case, folder, args.seed,
                                    getattr(trainer, "NOISE_FLOOR", "perturb"))
        if keep:
            common.save_flat(keep / f"{name}_jax.npz", common.flatten_result(jax_res))
        f = None
        if floor is not None:
            f = common.compare(torch_res, floor, common.initial_params(case))
            r = common.compare(torch_res, jax_res, common.initial_params(case), common.loss_rel(torch_res, floor),
                               common.param_rel(torch_res, floor))
        verdict = "yes" if r["ok"] else ("floor" if r["explained"] else "NO")
        all_ok &= r["ok"] or r["explained"]
        print(f"{name:<14}{args.steps:>6}  {r['loss']:>17.3e}  {r['loss_at']:<22}{r['param']:>18.3e}  "
              f"{r['param_at'][:33]:<34}{r['update']:>9.2e}  {verdict:<6}{time.time() - t0:>6.0f}", flush=True)
        for p in r["problems"]:
            print(f"    {p}", flush=True)
        if f is not None:
            print(f"  {'noise floor':<12}{args.steps:>6}  {f['loss']:>17.3e}  {f['loss_at']:<22}{f['param']:>18.3e}  "
                  f"{f['param_at'][:33]:<34}{f['update']:>9.2e}  (torch vs torch, "
                  f"{'float64' if getattr(trainer, 'NOISE_FLOOR', '') == 'float64' else 'init x (1 + 1e-7 N)'}); jax/allowed "
                  f"max {r['worst_excess']:.2f}", flush=True)
        if args.write_goldens:
            path = common.write_golden(name, case, torch_res, tuple(getattr(trainer, "GOLDEN_DROP", ())),
                                       floor=floor if not r["ok"] else None)
            print(f"    golden: {path.relative_to(common.ROOT)} ({path.stat().st_size // 1024} KiB)", flush=True)
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
