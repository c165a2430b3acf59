"""The acceptance interface end to end: ``jaxgen train --config configs/{cyclegan,pix2pix}.py:tiny`` trains on the
built-in photos and resumes bitwise-exactly (all players, optimizer states and the image pools), and
``jaxgen translate`` uses G_A for AtoB and G_B for BtoA.

The straight run (20 steps) writes checkpoints at 10 and 20; the split run starts from a copy of the step-10
checkpoint (same config, so the linear-decay schedule is the same) and continues to 20. Both CLI runs share a
persistent XLA compilation cache, so the second one does not compile again.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from jaxgen import image
from jaxgen.train.checkpoint import restore_numpy

REPO = Path(__file__).resolve().parents[1]
QUIET = ["--config.progress_bar=False"]


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
    cache = tmp_path_factory.mktemp("xla_cache")
    return dict(os.environ, JAX_COMPILATION_CACHE_DIR=str(cache), JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
                JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")


def cli(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "jaxgen.cli", *args], capture_output=True, text=True, timeout=900,
                          cwd=REPO, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"jaxgen {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return proc


def restored_state(workdir: Path, step: int) -> dict[str, np.ndarray]:
    state = restore_numpy(workdir / "checkpoints", step)  # any device count
    flat = jax.tree_util.tree_flatten_with_path(state)[0]
    return {jax.tree_util.keystr(p): np.asarray(x) for p, x in flat}


def train_straight_and_split(env: dict[str, str], config: str, tmp: Path) -> tuple[Path, dict, dict]:
    spec = f"{REPO / 'configs' / config}:tiny"
    straight, split = tmp / "straight", tmp / "split"
    out = cli(env, "train", f"--config={spec}", f"--workdir={straight}", *QUIET)
    assert "validation: val_mae" in out.stdout
    (split / "checkpoints").mkdir(parents=True)
    shutil.copy(straight / "config.json", split / "config.json")
    shutil.copytree(straight / "checkpoints" / "10", split / "checkpoints" / "10")
    out = cli(env, "train", f"--config={spec}", f"--workdir={split}", *QUIET)
    assert "steps 10 -> 20" in out.stdout
    return straight, restored_state(straight, 20), restored_state(split, 20)


def assert_bitwise_equal(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]), f"{k} differs"


@pytest.mark.slow
def test_cyclegan_tiny_resumes_bitwise_and_translates_both_ways(env, tmp_path):
    straight, a, b = train_straight_and_split(env, "cyclegan.py", tmp_path)
    for player in ("G_A", "G_B", "D_A", "D_B"):
        assert any(k.startswith(f"['players']['{player}']['params']") for k in a), player
        assert any(k.startswith(f"['players']['{player}']['opt_state']") for k in a), player
    pools = [k for k in a if k.startswith("['buffers']")]
    assert sorted(pools) == ["['buffers']['fake_A_pool']['count']", "['buffers']['fake_A_pool']['images']",
                             "['buffers']['fake_B_pool']['count']", "['buffers']['fake_B_pool']['images']"]
    assert int(a["['buffers']['fake_B_pool']['count']"]) == 12  # full since step 2: the swap rule ran 18 steps
    assert int(a["['step']"]) == 20
    assert_bitwise_equal(a, b)

    src = tmp_path / "in.png"
    image.write_image(src, np.random.default_rng(0).integers(0, 256, (30, 41, 3), dtype=np.uint8))
    out_ab, out_ba = tmp_path / "ab.png", tmp_path / "ba.png"
    cli(env, "translate", "--workdir", str(straight), "--direction", "AtoB", str(src), "-o", str(out_ab))
    cli(env, "translate", "--workdir", str(straight), "--direction", "BtoA", str(src), "-o", str(out_ba))
    ab, ba = image.read_image(out_ab), image.read_image(out_ba)
    assert ab.shape == ba.shape == (30, 41, 3) and not np.array_equal(ab, ba)
    # AtoB is G_A: the same as the restored G_A params through the export module (padded 30x41 -> 32x44).
    from jaxgen.commands.translate import load_translator, pad_to_multiple

    _, module, params, step, multiple = load_translator(straight, "AtoB")
    assert step == 20 and multiple == 4
    x = pad_to_multiple(image.to_float(image.read_image(src)), multiple)
    expected = image.to_uint8(np.clip(np.asarray(module.apply({"params": params}, x[None]))[0, :30, :41], 0, 1))
    assert np.abs(expected.astype(int) - ab.astype(int)).max() <= 1


@pytest.mark.slow
def test_pix2pix_tiny_resumes_bitwise(env, tmp_path):
    straight, a, b = train_straight_and_split(env, "pix2pix.py", tmp_path)
    assert {k.split("]")[1] for k in a if k.startswith("['players']")} == {"['G'", "['D'"}
    assert_bitwise_equal(a, b)
    bad = cli(env, "translate", "--workdir", str(straight), "--direction", "BtoA", str(REPO / "README.md"), "-o",
              str(tmp_path / "x.png"), check=False)
    assert bad.returncode == 2 and "trained AtoB" in bad.stderr and "Traceback" not in bad.stderr
