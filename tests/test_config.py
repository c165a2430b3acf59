"""Config files: arg parsing, locking, and that every shipped config builds its model."""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
import pytest

from jaxgen.config import base_config, load_config, parse_arg
from jaxgen.train import setup

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_parse_arg_flags_values_and_scale_shorthand():
    a = parse_arg("x4,tiny,steps=7,lr=0.5", scale=2, tiny=False, steps=10, lr=1.0, name="a")
    assert (a.scale, a.tiny, a.steps, a.lr) == (4, True, 7, 0.5)
    assert parse_arg(None, scale=3).scale == 3
    with pytest.raises(ValueError, match="unknown config arg 'tinyy'"):
        parse_arg("tinyy", tiny=False)
    with pytest.raises(ValueError, match="boolean"):
        parse_arg("tiny=maybe", tiny=False)


def test_loaded_configs_are_locked():
    config = load_config(f"{CONFIGS / 'edsr.py'}:x3,tiny")
    assert config.scale == 3 and config.model.name == "edsr"
    with pytest.raises(AttributeError):
        config.optim.lrr = 1.0
    with pytest.raises(ValueError, match="not found"):
        load_config("configs/nope.py")


def test_base_config_has_every_trainer_key():
    c = base_config()
    for key in ("seed", "scale", "total_steps", "batch_size", "model", "losses", "optim", "disc", "ema_decay", "data",
                "log_every", "eval_every", "ckpt_every", "keep_ckpts", "distributed", "time_budget_s"):
        assert key in c, key


def _all_config_specs() -> list[str]:
    specs = []
    for path in sorted(CONFIGS.glob("*.py")):
        for variant in ("", "tiny"):
            specs.append(f"{path}:{variant}" if variant else str(path))
    return specs


@pytest.mark.parametrize("spec", _all_config_specs(), ids=lambda s: Path(s.split(":")[0]).stem + ":" + s.partition(":")[2])
def test_every_config_builds_its_generator(spec):
    config = load_config(spec)
    assert config.batch_size % 8 == 0 or "tiny" not in spec  # tiny variants run unchanged on 8 devices
    model = setup.build_generator(config)
    x = jax.ShapeDtypeStruct((1, 8, 8, 3), np.float32)
    variables = jax.eval_shape(model.init, jax.random.key(0), x)
    out = jax.eval_shape(model.apply, variables, x)
    assert out.shape == (1, 8 * config.scale, 8 * config.scale, 3)
