"""The adversarial SR configs' tiny variants through the generic loop: a few steps with finite losses, checkpoints
holding both players (+ spectral-norm vectors, + the Real-ESRGAN pair pool), metrics.jsonl with the discriminator
loss and validation LPIPS, and a resume from the middle checkpoint that ends bitwise equal to the straight run.

Each config compiles a G+D(+VGG, +degradation) step: minutes on a loaded 2-core CPU, hence ``slow``. The compile of
the resumed run is served by JAX's persistent compilation cache (same program)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from jaxgen.config import load_config
from jaxgen.tasks import get_task
from jaxgen.train import train
from jaxgen.train.checkpoint import open_manager

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module", autouse=True)
def compilation_cache(tmp_path_factory):
    previous = (jax.config.jax_compilation_cache_dir, jax.config.jax_persistent_cache_min_compile_time_secs)
    jax.config.update("jax_compilation_cache_dir", str(tmp_path_factory.mktemp("xla_cache")))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    yield
    jax.config.update("jax_compilation_cache_dir", previous[0])
    jax.config.update("jax_persistent_cache_min_compile_time_secs", previous[1])


def _state_leaves(workdir: Path, step: int) -> dict[str, np.ndarray]:
    manager = open_manager(workdir / "checkpoints", read_only=True)
    state = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))["state"]
    return {jax.tree_util.keystr(p): np.asarray(x) for p, x in jax.tree_util.tree_flatten_with_path(state)[0]}


def _run(spec: str, workdir: Path, **overrides) -> dict:
    config = load_config(spec, [("progress_bar", "false"), *((k, str(v)) for k, v in overrides.items())])
    return train(config, workdir, get_task(config.task)(config))


@pytest.mark.slow
@pytest.mark.parametrize("spec", ["srgan.py:tiny", "esrgan.py:tiny", "realesrgan.py:tiny"])
def test_tiny_config_trains_checkpoints_and_resumes_exactly(spec, tmp_path):
    spec = str(REPO / "configs" / spec)
    straight = tmp_path / "straight"
    summary = _run(spec, straight)
    assert summary["final_step"] == 6 and set(summary["params"]) == {"generator", "discriminator"}
    records = [json.loads(line) for line in (straight / "metrics.jsonl").read_text().splitlines()]
    train_rows = [r for r in records if "d_loss" in r]
    assert train_rows and all(np.isfinite(r["d_loss"]) and np.isfinite(r["loss"]) for r in train_rows)
    assert any("loss_percep" in r and r["loss_percep"] > 0 for r in train_rows)
    assert any("val_lpips" in r and 0 < r["val_lpips"] < 2 for r in records)  # validation LPIPS recorded
    final = _state_leaves(straight, 6)
    if "realesrgan" in spec:
        assert any("pool" in k for k in final) and any("spectral" in k for k in final)
    meta = json.loads(next((straight / "checkpoints" / "6").glob("meta*")).joinpath("metadata").read_text()) \
        if next((straight / "checkpoints" / "6").glob("meta*")).is_dir() else {}
    if meta:
        assert "vgg" in json.dumps(meta.get("consts", meta))
    # resume: copy the run, drop its last checkpoint, continue from step 3
    resumed = tmp_path / "resumed"
    shutil.copytree(straight, resumed)
    shutil.rmtree(resumed / "checkpoints" / "6")
    summary = _run(spec, resumed)
    assert summary["start_step"] == 3 and summary["final_step"] == 6
    again = _state_leaves(resumed, 6)
    assert again.keys() == final.keys()
    for k in final:
        assert np.array_equal(final[k], again[k]), f"{k} differs after resume"
