"""Helpers of the tests that train in subprocesses on a chosen number of CPU devices/processes
(``test_multiprocess.py``, ``test_portable_checkpoints.py``); in-process runs are ``tests/inprocess_cli.py``'s."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np

REPO = Path(__file__).resolve().parents[1]
TINY = f"{REPO / 'configs' / 'edsr.py'}:x2,tiny"


def device_flags(devices: int) -> str:
    """``XLA_FLAGS`` for a subprocess with ``devices`` host devices: the inherited flags (the suite's codegen,
    conftest.py, and the user's) plus the device count."""
    return f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={devices}".strip()


def cpu_env(devices: int, cache: Path) -> dict[str, str]:
    """The environment of a CPU-only JAX subprocess with ``devices`` host devices, importing this checkout's
    ``jaxgen``, with a persistent compilation cache in ``cache`` (runs of one test module compile the same
    programs; the cache only saves time) and the suite's XLA flags (conftest.py's codegen)."""
    return dict(
        os.environ,
        JAX_PLATFORMS="cpu",
        XLA_FLAGS=device_flags(devices),
        PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        JAX_COMPILATION_CACHE_DIR=str(cache),
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
        JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0",
    )


def jaxgen_cli(env: dict[str, str], *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    """``python -m jaxgen.cli ARGS`` in ``env``; a non-zero exit fails with the end of stderr."""
    proc = subprocess.run([sys.executable, "-m", "jaxgen.cli", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"jaxgen {' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return proc


def small_val_dir(folder: Path) -> Path:
    """A validation folder with one 96x96 HR crop of a held-out built-in photo, so the evaluation that the loop
    runs at every stop stays cheap."""
    from jaxgen import data, image

    _, val = data.write_sample_images(data.cache_root() / "samples")
    photo = image.read_image(sorted(val.glob("*.png"))[0])
    folder.mkdir(parents=True)
    image.write_image(folder / "crop.png", photo[100:196, 100:196])
    return folder


def checkpoint_steps(workdir: Path) -> list[int]:
    ckpts = workdir / "checkpoints"
    return sorted(int(p.name) for p in ckpts.iterdir() if p.name.isdigit()) if ckpts.is_dir() else []


def generator_params(workdir: Path, step: int) -> dict[str, np.ndarray]:
    """``{'['body_0']['conv1']['kernel']': array}`` of the generator at ``step`` (host arrays, any device count)."""
    from jaxgen.train.checkpoint import restore_player

    params = restore_player(workdir / "checkpoints", step, "generator")["params"]
    return {jax.tree_util.keystr(p): np.asarray(x) for p, x in jax.tree_util.tree_flatten_with_path(params)[0]}
