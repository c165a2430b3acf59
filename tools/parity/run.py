"""Step-by-step training parity of jaxgen's trainers with the official PyTorch code (issue 17).

    python tools/parity/run.py --torch-python /work/torchvenv/bin/python [--trainers sr,sr_gan] [--steps 20]
                               [--seed 0] [--write-goldens] [--keep DIR]

For each trainer plug-in (``tools/parity/trainer_NAME.py`` + ``torch_NAME.py``; interface in ``common.py``):
make the case (jaxgen's initial weights in PyTorch naming, the batches, the hyper-parameters), run the official
step re-created in PyTorch (a subprocess with ``--torch-python``) and jaxgen's task on it, and print one row:

    trainer  steps  max rel loss diff (term@step)  max rel param diff (tensor)  update rel diff  ok

Exit 0 when every trainer is within tolerance (``common.LOSS_RTOL``/``PARAM_RTOL``), 1 otherwise, 2 on a usage
error. ``--write-goldens`` also saves ``tests/goldens/parity/NAME.npz`` from the torch side (for ``make test``).
Run it with jaxgen's venv python from the repository root (PyTorch only in ``--torch-python``'s venv).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402  (tools/parity is not a package)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--torch-python", required=True, help="python of a venv with torch (+ torchvision)")
    ap.add_argument("--trainers", default="", help="comma-separated names (default: every plug-in found)")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--write-goldens", action="store_true", help="save tests/goldens/parity/NAME.npz")
    ap.add_argument("--keep", default="", help="folder to keep the case/torch/jax .npz files in")
    args = ap.parse_args(argv)
    known = common.discover()
    names = [n for n in args.trainers.split(",") if n] or known
    unknown = [n for n in names if n not in known]
    if unknown:
        print(f"jaxgen: error: --trainers: no plug-in for {unknown}; found: {known}", file=sys.stderr)
        return 2
    if args.steps < 1:
        print(f"jaxgen: error: --steps={args.steps}: expected >= 1", file=sys.stderr)
        return 2
    if not Path(args.torch_python).exists():
        print(f"jaxgen: error: --torch-python {args.torch_python}: no such file", file=sys.stderr)
        return 2
    keep = Path(args.keep) if args.keep else None
    if keep:
        keep.mkdir(parents=True, exist_ok=True)
    header = f"{'trainer':<14}{'steps':>6}  {'max rel loss diff':>17}  {'at':<22}{'max rel param diff':>18}  " \
             f"{'at':<34}{'upd rel':>9}  {'ok':<3}{'secs':>6}"
    print(header, flush=True)
    all_ok = True
    for name in names:
        t0 = time.time()
        trainer = common.load_trainer(name)
        case = {k: np.asarray(v) for k, v in trainer.make_case(args.steps, args.seed).items()}
        with tempfile.TemporaryDirectory() as tmp:
            folder = keep or Path(tmp)
            case_path, out_path = folder / f"{name}_case.npz", folder / f"{name}_torch.npz"
            common.save_flat(case_path, case)
            script = common.HERE / f"torch_{name}.py"
            proc = subprocess.run([args.torch_python, str(script), "--case", str(case_path), "--out", str(out_path)],
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                print(f"{name:<14}{args.steps:>6}  torch side failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}",
                      flush=True)
                all_ok = False
                continue
            torch_res = common.unflatten_result(common.load_flat(out_path))
        jax_res = trainer.run_jax(case)
        if keep:
            common.save_flat(keep / f"{name}_jax.npz", common.flatten_result(jax_res))
        r = common.compare(torch_res, jax_res, common.initial_params(case))
        all_ok &= r["ok"]
        print(f"{name:<14}{args.steps:>6}  {r['loss']:>17.3e}  {r['loss_at']:<22}{r['param']:>18.3e}  "
              f"{r['param_at'][:33]:<34}{r['update']:>9.2e}  {'yes' if r['ok'] else 'NO':<3}{time.time() - t0:>6.0f}",
              flush=True)
        for p in r["problems"]:
            print(f"    {p}", flush=True)
        if args.write_goldens:
            path = common.write_golden(name, case, torch_res, tuple(getattr(trainer, "GOLDEN_DROP", ())))
            print(f"    golden: {path.relative_to(common.ROOT)} ({path.stat().st_size // 1024} KiB)", flush=True)
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
