"""Compile time, cold and warm: what a user waits for before the first step / the first picture.

    .venv/bin/python benchmarks/compile_time.py [--out F.json] [--unrolled] [--skip-upscale]

Writes one flat JSON object:

* ``train_cold_s`` / ``train_warm_s``: RRDBNet x4 (23 RRDBs, 64 features; ``sr`` task, batch 4 of 32x32 LR
  patches, Adam) -- from building the task to the end of the first train step (init + compile + one step), in a
  fresh process with an empty / a filled persistent compilation cache (``xla_setup.configure_compilation_cache``,
  as every ``jaxgen`` command sets it). ``--unrolled`` adds ``train_cold_unrolled_s``: the same without
  ``scan_blocks`` (23 copies of the block in the program).
* ``upscale_cold_s`` / ``upscale_warm_s``: the whole ``jaxgen upscale --model realesrgan-x4plus --tile 128``
  command on a photo (wall time of the process), with an empty cache, and then on a photo of a size not seen
  before with the cache the first run filled (fixed tile shapes: nothing to compile).
  ``upscale_{cold,warm}_compiles``: programs each run compiled (new cache entries; every compile is cached here).
* ``train_{cold,warm}_stages_s``: the same runs' stages timed apart (``jax.jit(...).trace / .lower / .compile``;
  the init dispatched on one device and copied to the mesh -- ``parallel.init_sharding``, as
  ``jaxgen.train.loop`` -- and not waited for, so ``step_run`` holds what is left of its run; the first step's
  run; after the timed first step, a second step's run and ``init_run``, the init program alone) and the number
  of fusions in the compiled step: where the cold first step goes and what a warm one still pays.
* the machine (``lscpu`` model and flags), the load, jax's version.
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.cpuinfo import cpu_info  # noqa: E402
from jaxgen import xla_setup  # noqa: E402  (imports no JAX)

TRAIN_CHILD = r"""
import sys, time, json
t0 = time.perf_counter()
from jaxgen import xla_setup
xla_setup.configure_process()
import jax, ml_collections, numpy as np
from jaxgen.config import optim_config
from jaxgen.tasks import base_config
from jaxgen.tasks import get_task
from jaxgen.train import parallel
t_import = time.perf_counter() - t0
stages, t = {}, time.perf_counter()
def lap(name):
    global t
    stages[name] = round(time.perf_counter() - t, 2)
    t = time.perf_counter()
c = base_config("sr")
c.scale, c.batch_size, c.data.patch_size = 4, 4, 32
c.model = ml_collections.ConfigDict(dict(name="rrdbnet", num_feat=64, num_blocks=23, num_grow_ch=32,
                                         scan_blocks=sys.argv[1] == "scan"))
c.optim = optim_config(lr=1e-4)
t1 = time.perf_counter()
task = get_task("sr")(c)
mesh = parallel.make_mesh()
repl = parallel.replicated(mesh)
lap("build")
init = jax.jit(task.init, out_shardings=parallel.init_sharding(mesh)).trace().lower()  # as jaxgen.train.loop
lap("init_trace_lower")
init = init.compile()
lap("init_compile")
state = jax.device_put(init(), repl)  # not waited for (as the loop): the init runs while the step compiles
lap("init_dispatch")
options = xla_setup.prepare_training(4 // mesh.devices.size, networks=["rrdbnet"], devices=mesh.devices.size)
step = jax.jit(task.step, in_shardings=(repl, parallel.batch_sharding(mesh), repl), out_shardings=(repl, repl),
               donate_argnums=(0,), compiler_options=options or None)
rng = np.random.default_rng(0)
batch = parallel.global_batch({"lr": rng.random((4, 32, 32, 3), dtype=np.float32),
                               "hr": rng.random((4, 128, 128, 3), dtype=np.float32)}, mesh)
traced = step.trace(state, batch, {})
lap("step_trace")
lowered = traced.lower()
lap("step_lower")
compiled = lowered.compile()
lap("step_compile")
state, m = jax.block_until_ready(compiled(state, batch, {}))
lap("step_run")
first = time.perf_counter() - t1
state, m2 = jax.block_until_ready(compiled(state, batch, {}))
lap("step_run2")
jax.block_until_ready(jax.device_put(init(), repl))
lap("init_run")  # the init program alone, after the timed first step
stages["step_fusions"] = compiled.as_text().count(" fusion(")
print(json.dumps({"first_step_s": first, "import_s": t_import, "loss": float(m["loss"]), "stages": stages}))
"""


def _env(cache: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_COMPILATION_CACHE")}
    env[xla_setup.CACHE_ENV] = cache if cache else "0"
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def train_first_step(cache: str | None, variant: str = "scan") -> dict:
    env = _env(cache)
    xla_setup.configure_compilation_cache(env)
    out = subprocess.run([sys.executable, "-c", TRAIN_CHILD, variant], env=env, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"train child failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _photo(path: Path, h: int, w: int, y: int, x: int) -> None:
    from PIL import Image
    from skimage import data

    Image.fromarray(data.astronaut()[y : y + h, x : x + w]).save(path)


def upscale_wall(cache: str | None, src: Path, dst: Path) -> float:
    env = _env(cache)
    env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"  # every compile leaves an entry: new entries = compiles
    cmd = [sys.executable, "-c", "import sys; from jaxgen.cli import main; sys.exit(main())", "upscale", "--model", "realesrgan-x4plus", "--tile", "128", str(src),
           "-o", str(dst)]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if out.returncode:
        raise SystemExit(f"upscale failed:\n{out.stderr[-3000:]}")
    return wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--out", help="write the JSON object here too")
    ap.add_argument("--unrolled", action="store_true", help="also time the cold first step without scan_blocks")
    ap.add_argument("--skip-upscale", action="store_true")
    ap.add_argument("--skip-train", action="store_true")
    args = ap.parse_args()
    result: dict = {"benchmark": "compile_time", **cpu_info()}
    import jax

    result["jax"] = jax.__version__
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_train:
            cache = str(Path(tmp) / "train_cache")
            cold = train_first_step(cache)
            warm = train_first_step(cache)
            result.update(train_cold_s=round(cold["first_step_s"], 2), train_warm_s=round(warm["first_step_s"], 2),
                          train_import_s=round(cold["import_s"], 2), train_loss_cold=cold["loss"],
                          train_loss_warm=warm["loss"], train_cold_stages_s=cold["stages"],
                          train_warm_stages_s=warm["stages"])
            print(json.dumps(result), flush=True)
        if args.unrolled:
            result["train_cold_unrolled_s"] = round(train_first_step(str(Path(tmp) / "unrolled"), "unrolled")
                                                    ["first_step_s"], 2)
        if not args.skip_upscale:
            a, b = Path(tmp) / "a.png", Path(tmp) / "b.png"
            _photo(a, 200, 300, 40, 100)
            _photo(b, 170, 230, 150, 200)  # a size the first run never saw
            cache = str(Path(tmp) / "upscale_cache")
            result["upscale_cold_s"] = round(upscale_wall(cache, a, Path(tmp) / "a_x4.png"), 2)
            entries = len(list(Path(cache).rglob("*-cache")))
            result["upscale_warm_s"] = round(upscale_wall(cache, b, Path(tmp) / "b_x4.png"), 2)
            result["upscale_cold_compiles"] = entries
            result["upscale_warm_compiles"] = len(list(Path(cache).rglob("*-cache"))) - entries
            result["upscale_photos"] = ["200x300", "170x230"]
    result["load_1min_end"] = os.getloadavg()[0]
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
