"""Config files: variants, locking with open sections, overrides, JSON round trip, every config builds."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jax
import ml_collections
import numpy as np
import pytest

from jaxgen.config import ConfigError, apply_override, config_from_json, load_config, parse_arg
from jaxgen.tasks import TASKS, base_config, get_task

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
TINY = f"{CONFIGS / 'edsr.py'}:x2,tiny"


def test_parse_arg_flags_values_and_scale_shorthand():
    a = parse_arg("x4,tiny,steps=7,lr=0.5", scale=2, tiny=False, steps=10, lr=1.0, name="a")
    assert (a.scale, a.tiny, a.steps, a.lr) == (4, True, 7, 0.5)
    assert parse_arg(None, scale=3).scale == 3
    with pytest.raises(ConfigError, match="unknown config variant 'tinyy'.*did you mean 'tiny'"):
        parse_arg("tinyy", tiny=False)
    with pytest.raises(ConfigError, match="boolean"):
        parse_arg("tiny=maybe", tiny=False)


def test_locked_except_open_sections():
    config = load_config(f"{CONFIGS / 'edsr.py'}:x3,tiny")
    assert config.scale == 3 and config.model.name == "edsr" and config.task == "sr"
    with pytest.raises(AttributeError):
        config.optim.lrr = 1.0
    with pytest.raises(AttributeError):
        config.total_stepz = 1
    config.losses.charbonnier = 1.0  # open: loss entries
    config.model.extra_kwarg = 2  # open: model kwargs
    config.optim.kwargs.b2 = 0.99  # open: optimizer kwargs
    with pytest.raises(ConfigError, match="not found"):
        load_config("configs/nope.py")


@pytest.mark.parametrize(
    "key,value,expected",
    [
        ("total_steps", "7", 7),
        ("total_steps", "1e5", 100000),
        ("optim.lr", "3e-4", 3e-4),
        ("progress_bar", "false", False),
        ("data.val_dirs", "('a', 'b')", ("a", "b")),
        ("optim.milestones", "10,20", (10, 20)),
        ("data.train_dir", "/some/where", "/some/where"),
    ],
)
def test_overrides_cast_to_the_existing_type(key, value, expected):
    config = load_config(TINY, [(key, value)])
    node = config
    for part in key.split("."):
        node = node[part]
    assert node == expected and type(node) is type(expected)


def test_new_keys_in_open_sections_from_the_command_line():
    config = load_config(TINY, [("losses.charbonnier", "1"), ("losses.charbonnier.eps", "1e-6"),
                                ("optim.kwargs.b2", "0.99"), ("losses.l1", "0.5")])
    assert config.losses.charbonnier.to_dict() == {"weight": 1.0, "eps": 1e-6}
    assert config.losses.l1 == 0.5 and config.optim.kwargs.b2 == 0.99
    gan = load_config(TINY, [("task", "sr")])  # same task
    assert gan.task == "sr"


def test_sr_gan_discriminator_kwargs_are_open():
    c = base_config("sr_gan")
    from jaxgen.config import lock

    lock(c)
    apply_override(c, "disc.kwargs.ndf", "8")
    apply_override(c, "losses.gan.weight", "0.01")
    apply_override(c, "losses.gan", "0.02")  # a scalar sets the entry's weight
    assert c.disc.kwargs.ndf == 8 and c.losses.gan.weight == 0.02 and c.losses.gan.kind == "nonsaturating"
    with pytest.raises(ConfigError, match="disc has no key 'nam'.*did you mean 'disc.name'"):
        apply_override(c, "disc.nam", "x")


@pytest.mark.parametrize(
    "key,value,message",
    [
        ("optim.lrr", "1", "config.optim has no key 'lrr'; did you mean 'optim.lr'"),
        ("total_stepss", "1", "has no key 'total_stepss'; did you mean 'total_steps'"),
        ("total_steps", "abc", "expects an integer"),
        ("progress_bar", "maybe", "boolean"),
        ("total_steps.x", "1", "is a value"),
        ("optim", "1", "is a section"),
    ],
)
def test_override_mistakes_are_one_line_config_errors(key, value, message):
    with pytest.raises(ConfigError, match=message) as e:
        load_config(TINY, [(key, value)])
    assert "\n" not in str(e.value)


def test_config_json_round_trip_keeps_tuples():
    config = load_config(f"{CONFIGS / 'edsr.py'}:x2", [("optim.milestones", "(10, 20)")])
    back = config_from_json(config.to_json())
    assert back.to_dict() == config.to_dict()
    assert back.optim.milestones == (10, 20) and isinstance(back.data.val_dirs, tuple)
    assert back.is_locked and not back.losses.is_locked
    with pytest.raises(ConfigError, match="not valid JSON"):
        config_from_json("{", "W/config.json")


def test_base_config_has_run_keys_and_the_task_section():
    c = base_config()
    for key in ("task", "seed", "total_steps", "batch_size", "log_every", "eval_every", "ckpt_every", "keep_ckpts",
                "distributed", "time_budget_s", "compute_dtype"):
        assert key in c, key
    for key in ("scale", "model", "losses", "optim", "ema_decay", "data"):
        assert key in c, key
    assert "disc" not in c and "disc" in base_config("sr_gan")
    with pytest.raises(ValueError, match="config.task='nope'"):
        get_task("nope")
    assert set(TASKS) >= {"sr", "sr_gan"}


def _all_config_specs() -> list[str]:
    specs = []
    for path in sorted(CONFIGS.glob("*.py")):
        if path.name == "common.py":  # the recipes the config files share, not a config
            continue
        for variant in ("", "tiny"):
            specs.append(f"{path}:{variant}" if variant else str(path))
    return specs


@pytest.mark.parametrize("spec", _all_config_specs(), ids=lambda s: Path(s.split(":")[0]).stem + ":" + s.partition(":")[2])
def test_every_config_builds_its_task_and_state_shapes(spec):
    config = load_config(spec)
    assert config.batch_size % 8 == 0 or "tiny" not in spec  # tiny variants run unchanged on 8 devices
    task = get_task(config.task)(config)
    state = jax.eval_shape(task.init)
    assert set(state.players) == set(task.players)
    model = task.export_module()
    params = state.players[task.EXPORT_PLAYER].params
    if hasattr(task, "export_example"):  # tasks without a scale (style transfer) say what their export takes
        params, inputs, expected = task.export_example(params)
    else:  # SR (scale) and translation (EXPORT_SCALE = 1, a minimum input size)
        scale, size = getattr(task, "EXPORT_SCALE", None) or config.scale, max(8, getattr(task, "export_min_size", 8))
        inputs, expected = (jax.ShapeDtypeStruct((1, size, size, 3), np.float32),), (1, size * scale, size * scale, 3)
    out = jax.eval_shape(lambda p, *x: model.apply({"params": p}, *x), params, *inputs)
    assert out.shape == expected
    assert isinstance(config, ml_collections.ConfigDict)


def test_config_module_imports_no_other_jaxgen_module():
    code = ("import sys, jaxgen.config; "
            "print(sorted(m for m in sys.modules if m.startswith('jaxgen') and m not in ('jaxgen', 'jaxgen.config')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.strip() == "[]"


def _config_folder(folder: Path, steps: int) -> Path:
    folder.mkdir()
    (folder / "common.py").write_text(f"def set_steps(c):\n    c.total_steps = {steps}\n")
    (folder / "mine.py").write_text("from jaxgen.tasks import base_config\n\nfrom .common import set_steps\n\n\n"
                                    "def get_config(arg=None):\n    c = base_config('sr')\n    set_steps(c)\n    return c\n")
    return folder / "mine.py"


def test_a_config_file_imports_its_siblings(tmp_path):
    # two folders with their own common.py: each config gets its own sibling (no module cache mix-up)
    assert load_config(str(_config_folder(tmp_path / "a", 7))).total_steps == 7
    assert load_config(str(_config_folder(tmp_path / "b", 9))).total_steps == 9
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "bad.py").write_text("from .nope import x\n")
    with pytest.raises(ConfigError, match=r"config file .*bad.py.*nope"):
        load_config(str(tmp_path / "c" / "bad.py"))


def test_open_sections_come_from_the_task_and_survive_json():
    config = load_config(TINY)
    assert tuple(config.open_sections) == ("model", "losses")
    back = config_from_json(config.to_json())
    back.losses.charbonnier = 1.0  # open
    with pytest.raises(AttributeError):
        back.data.new_key = 1  # locked
    legacy = json.loads(config.to_json())
    del legacy["open_sections"]  # a config.json written before the tasks declared them: everything locked
    with pytest.raises(AttributeError):
        config_from_json(json.dumps(legacy)).losses.charbonnier = 1.0
