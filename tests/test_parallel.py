"""1 device vs 8 fake CPU devices: the same global batch gives the same loss and params after 3 steps. The
8-device run is a fresh process (the device count is fixed when jax starts); the 1-device run is this process on a
mesh of its first device."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from tests import parallel_equivalence
from tests.cli_runs import device_flags

SCRIPT = Path(__file__).with_name("parallel_equivalence.py")


def _run(tmp_path: Path, devices: int) -> dict[str, np.ndarray]:
    out = tmp_path / f"run_{devices}.npz"
    env = dict(os.environ, XLA_FLAGS=device_flags(devices), JAX_PLATFORMS="cpu")
    subprocess.run([sys.executable, str(SCRIPT), str(out)], check=True, env=env, timeout=300)
    return dict(np.load(out))


def _run_here(tmp_path: Path) -> dict[str, np.ndarray]:
    out = tmp_path / "run_here_1.npz"
    parallel_equivalence.main(str(out), n_devices=1)
    return dict(np.load(out))


def test_one_vs_eight_devices_match(tmp_path):
    one, eight = _run_here(tmp_path), _run(tmp_path, 8)
    assert int(one.pop("devices")) == 1 and int(eight.pop("devices")) == 8
    # the fresh state: computed on one device of the eight (parallel.init_sharding), then replicated
    assert int(one.pop("init_devices")) == 1 and int(eight.pop("init_devices")) == 1
    np.testing.assert_allclose(eight.pop("losses"), one.pop("losses"), rtol=1e-5, atol=1e-6)
    assert set(one) == set(eight) and len(one) > 4
    for name in one:
        np.testing.assert_allclose(eight[name], one[name], rtol=1e-5, atol=1e-5, err_msg=name)
