"""Config helpers shared by the files in ``configs/`` and the command line.

A config file defines ``get_config(arg=None) -> ml_collections.ConfigDict``. ``arg`` is the text after the
colon in ``--config configs/edsr.py:x2,tiny`` and is parsed big_vision-style by :func:`parse_arg`:
comma-separated ``key`` (a boolean flag set to True), ``key=value`` (cast to the default's type) or ``xN``
(shorthand for ``scale=N``).

Layout: :func:`run_config` holds the run-level keys (seed, steps, batch, logging, checkpointing, ``task``);
``jaxgen.tasks.base_config(task)`` adds the task's own section (``TASKS[task].default_config``), e.g. the SR
tasks' ``scale``, ``model``, ``losses``, ``optim``, ``data``, and its ``open_sections``: the dotted paths (model
kwargs, loss entries, discriminator kwargs) that accept new keys. :func:`load_config` locks the result so a
mistyped ``--config.key=value`` is an error naming the close match, except in the open sections and every
``optim.kwargs``. Recipes shared by the files in ``configs/`` (DIV2K, T91, ``tiny``) are in ``configs/common.py``.

This module imports nothing of jaxgen: the task registry (``jaxgen.tasks``) builds on it, not the other way.

Overrides: ``--config.a.b=value`` (:func:`apply_override`): the value is cast to the type of the existing
key (``true/false/1/0`` for booleans; Python literals for tuples); a new key in an open section takes a
Python literal or else the plain string.
"""

from __future__ import annotations

import ast
import difflib
import hashlib
import importlib.machinery
import importlib.util
import json
import math
import os
import re
import sys
from pathlib import Path
from typing import Any

import ml_collections

__all__ = [
    "CONV_BACKENDS",
    "CONV_BACKEND_ENV",
    "ConfigError",
    "apply_override",
    "check_conv_backend",
    "check_finite",
    "check_run_config",
    "config_from_json",
    "default_conv_backend",
    "exec_python_file",
    "load_config",
    "lock",
    "optim_config",
    "parse_arg",
    "parse_literal",
    "run_config",
    "shared_data_dir",
]

# Keys of an ``optim`` section; anything else given to :func:`optim_config` goes to its open ``kwargs``.
_OPTIM_KEYS = ("name", "lr", "schedule", "milestones", "gamma", "warmup_steps", "min_lr", "decay_start", "grad_clip")


class ConfigError(ValueError):
    """A user mistake in a config file, variant or override (one line; the CLI exits with status 2)."""


# The convolution backends (jaxgen.models.onednn_conv): "xla", "onednn" (CPU only) or "auto" (config.conv_backend's
# default: oneDNN where jaxgen measured it faster for float32 training and it is installed, else XLA;
# onednn_conv.resolve). The environment variable sets the default of config.conv_backend and of the inference
# commands' --conv-backend (whose own default is "auto" too).
CONV_BACKENDS = ("auto", "xla", "onednn")
CONV_BACKEND_ENV = "JAXGEN_CONV_BACKEND"


def default_conv_backend(environ: Any = None) -> str:
    """``$JAXGEN_CONV_BACKEND`` (lower-cased), else ``"auto"`` (validated where it is used)."""
    environ = os.environ if environ is None else environ
    return environ.get(CONV_BACKEND_ENV, "").strip().lower() or "auto"


def check_conv_backend(value: Any, what: str) -> str:
    """``value`` when it is one of :data:`CONV_BACKENDS`, else :class:`ConfigError` naming ``what``."""
    if value not in CONV_BACKENDS:
        raise ConfigError(f"{what}={value!r}: expected one of {', '.join(map(repr, CONV_BACKENDS))} ('onednn': "
                          f"oneDNN convolutions on CPU, pip install 'jaxgen[onednn]'; 'auto': oneDNN where "
                          f"measured faster, else XLA; {CONV_BACKEND_ENV} sets the default)")
    return value


def _cast(value: str, default: Any, what: str = "config arg") -> Any:
    if isinstance(default, bool):
        if value.lower() in ("1", "true", "yes", "y"):
            return True
        if value.lower() in ("0", "false", "no", "n"):
            return False
        raise ConfigError(f"{what} expects a boolean (true/false), got {value!r}")
    if default is None:
        return _finite_literal(parse_literal(value), what)
    if isinstance(default, int):
        try:
            number = float(value) if re.fullmatch(r"[-+]?\d+(\.0*)?[eE][-+]?\d+", value) else None
            result = int(number) if number is not None and number == int(number) else int(value)
        except ValueError:
            raise ConfigError(f"{what} expects an integer, got {value!r}") from None
        except OverflowError:  # 1e400 -> inf
            raise ConfigError(f"{what} expects a finite integer, got {value!r}") from None
        return check_finite(result, what)
    if isinstance(default, float):
        try:
            return check_finite(float(value), what)
        except ValueError as e:
            if isinstance(e, ConfigError):
                raise
            raise ConfigError(f"{what} expects a number, got {value!r}") from None
    if isinstance(default, (tuple, list)):
        parsed = parse_literal(value)
        if isinstance(parsed, str):  # a bare comma list: "1,2,3"
            parsed = tuple(parse_literal(v.strip()) for v in value.split(",") if v.strip())
        return _finite_literal(tuple(parsed) if isinstance(parsed, (tuple, list)) else (parsed,), what)
    if isinstance(default, str):
        return value
    return type(default)(value)


# Largest magnitude of a number given on the command line: beyond it a float32 run overflows at once (3.4e38)
# and an integer is no count or size anyone means.
OVERRIDE_MAX = 1e30


def check_finite(number: Any, what: str) -> Any:
    """``number`` itself when it is a finite number of magnitude <= :data:`OVERRIDE_MAX` (else ``ConfigError``)."""
    if isinstance(number, bool) or not isinstance(number, (int, float)):
        return number
    if not math.isfinite(number) or abs(number) > OVERRIDE_MAX:
        raise ConfigError(f"{what}={number!r}: expected a finite number of magnitude <= {OVERRIDE_MAX:g}")
    return number


def parse_literal(value: str) -> Any:
    """A Python literal (``1``, ``0.5``, ``(1, 2)``, ``'x'``, ``True``) or else the string itself."""
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    try:
        parsed = ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return value
    return tuple(parsed) if isinstance(parsed, list) else parsed


def parse_arg(arg: str | None, **spec: Any) -> ml_collections.ConfigDict:
    """Parses ``"x2,tiny,steps=100"`` against ``spec`` (name -> default); unknown names are an error.

    ``xN`` sets ``scale=N`` when ``spec`` has a ``scale`` entry.
    """
    result = ml_collections.ConfigDict(dict(spec))
    for token in filter(None, (t.strip() for t in (arg or "").split(","))):
        match = re.fullmatch(r"x(\d+)", token)
        if match and "scale" in spec:
            result.scale = int(match.group(1))
            continue
        key, sep, value = token.partition("=")
        if key not in spec:
            close = difflib.get_close_matches(key, list(spec), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"unknown config variant {key!r}{hint}; known: {sorted(spec)} (and xN for the scale)")
        result[key] = _cast(value, spec[key], f"config variant {key}") if sep else True
    return result


def optim_config(**overrides: Any) -> ml_collections.ConfigDict:
    """An Optax optimizer + schedule section (see ``jaxgen.train.optim``). Keys that are not section keys
    (``b1``, ``b2``, ``eps``, ``weight_decay``, ``momentum``, ...) go to the open ``kwargs`` map."""
    cfg = ml_collections.ConfigDict(
        dict(
            name="adam",  # any optax optimizer: adam | adamw | sgd | lion | ...
            lr=1e-4,
            schedule="constant",  # constant | multistep | cosine | linear_decay
            milestones=(),  # multistep: absolute steps where lr *= gamma
            gamma=0.5,
            warmup_steps=0,  # linear warm-up from 0 (cosine, constant and multistep)
            min_lr=0.0,  # cosine / linear_decay floor
            decay_start=0,  # linear_decay: step where the linear decay starts
            grad_clip=0.0,  # global-norm clip; 0 = off
            kwargs=ml_collections.ConfigDict(dict(b1=0.9, b2=0.999, eps=1e-8)),  # optax.<name>(lr, **kwargs)
        )
    )
    for key, value in overrides.items():
        if key in _OPTIM_KEYS:
            cfg[key] = value
        elif key == "kwargs":
            cfg.kwargs = ml_collections.ConfigDict(dict(value))
        else:
            cfg.kwargs[key] = value
    if cfg.name not in ("adam", "adamw") and "kwargs" not in overrides:
        cfg.kwargs = ml_collections.ConfigDict({k: v for k, v in cfg.kwargs.items() if k not in ("b1", "b2", "eps")})
    return cfg


def run_config(task: str) -> ml_collections.ConfigDict:
    """The run-level keys with defaults (``jaxgen.tasks.base_config`` adds the task's section)."""
    c = ml_collections.ConfigDict()
    c.task = task
    c.seed = 0
    c.total_steps = 1000
    c.batch_size = 16  # global batch size, split over processes and the `data` mesh axis
    c.compute_dtype = "float32"  # float32 | bfloat16 (params stay float32)
    # auto | xla | onednn (CPU: stride-1 convolutions through oneDNN; with bfloat16 only the convolutions multiply
    # in bf16, as torch.autocast; jaxgen.models.onednn_conv, docs/performance.md). auto: oneDNN for float32 on
    # the CPUs where it measured faster (xla_setup.ONEDNN_TRAIN_CPU_FLAGS) when installed, else xla
    c.conv_backend = default_conv_backend()
    # train steps a call of the compiled step runs (a lax.scan over that many batches): XLA:CPU maps each
    # execution's temporaries afresh, so more steps a call fault them in less often (4 steps a call: 8-12% faster
    # steps; docs/performance.md). total_steps, log_every, eval_every, ckpt_every: multiples of it. 0 = auto: on
    # CPU with oneDNN's convolutions the largest of 4, 2 that divides them (and a resumed step), else 1
    c.steps_per_call = 0
    c.log_every = 50
    c.eval_every = 500  # 0 = only at the end
    c.ckpt_every = 500
    c.keep_ckpts = 3  # latest N kept, plus the best by the task's validation metric
    c.eval_max_images = 0  # 0 = all validation images
    c.time_budget_s = 0.0  # > 0: checkpoint and stop after this much training time (studies on a budget)
    c.distributed = False  # call jax.distributed.initialize() (multi-host; env/cluster auto-detection)
    c.progress_bar = True
    return c


RUN_LIMITS = {  # key: minimum
    "seed": 0,
    "total_steps": 1,
    "batch_size": 1,
    "log_every": 1,
    "eval_every": 0,
    "ckpt_every": 1,
    "steps_per_call": 0,
    "keep_ckpts": 1,
    "eval_max_images": 0,
}


def check_run_config(config: ml_collections.ConfigDict) -> None:
    """Range checks of the run-level keys (one clear line each)."""
    for key, minimum in RUN_LIMITS.items():
        value = config.get(key, 1 if key == "steps_per_call" else None)  # a config of before steps_per_call: 1
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise ConfigError(f"config.{key}={value!r}: expected an integer >= {minimum}")
    k = config.get("steps_per_call", 1) or 1  # 0 (auto) picks a divisor (jaxgen.train.loop.steps_per_call)
    off = [key for key in ("total_steps", "log_every", "eval_every", "ckpt_every") if config[key] % k]
    if off:
        must = "must be multiples of it" if len(off) > 1 else "must be a multiple of it"
        raise ConfigError(f"config.steps_per_call={k}: {', '.join(f'config.{key}={config[key]}' for key in off)} "
                          f"{must} (the loop logs, evaluates, saves and stops between calls)")
    if config.time_budget_s < 0:
        raise ConfigError(f"config.time_budget_s={config.time_budget_s}: expected >= 0 (0 = no budget)")
    if config.compute_dtype not in ("float32", "bfloat16", "float16"):
        raise ConfigError(f"config.compute_dtype={config.compute_dtype!r}: expected float32, bfloat16 or float16")
    check_conv_backend(config.get("conv_backend", "xla"), "config.conv_backend")


def open_sections(config: ml_collections.ConfigDict) -> list[str]:
    """Dotted paths of the sections that accept new keys: every ``optim``'s ``kwargs`` and those the task's
    ``default_config`` lists in ``config.open_sections`` (a config of an older jaxgen has none: all locked)."""
    paths = [p for p in _section_paths(config) if p == "optim.kwargs" or p.endswith(".optim.kwargs")]
    return paths + [p for p in config.get("open_sections", ()) if _get_path(config, p) is not None]


def _section_paths(config: ml_collections.ConfigDict, prefix: str = "") -> list[str]:
    paths = []
    for key, value in config.items():
        if isinstance(value, ml_collections.ConfigDict):
            path = f"{prefix}{key}"
            paths.append(path)
            paths += _section_paths(value, path + ".")
    return paths


def _get_path(config: ml_collections.ConfigDict, path: str) -> Any:
    node: Any = config
    for part in path.split("."):
        if not isinstance(node, ml_collections.ConfigDict) or part not in node:
            return None
        node = node[part]
    return node


def lock(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """Locks ``config`` except its open sections (and everything inside them)."""
    config.lock()
    for path in open_sections(config):
        section = _get_path(config, path)
        if isinstance(section, ml_collections.ConfigDict):
            _unlock_all(section)
    return config


def _unlock_all(section: ml_collections.ConfigDict) -> None:
    section.unlock()
    for value in section.values():
        if isinstance(value, ml_collections.ConfigDict):
            _unlock_all(value)


def apply_override(config: ml_collections.ConfigDict, dotted: str, value: str) -> None:
    """Sets ``config.<dotted> = value`` (a command-line string) with the rules of the module docstring."""
    parts = dotted.split(".")
    if not all(parts):
        raise ConfigError(f"--config.{dotted}: malformed key")
    node = config
    for i, part in enumerate(parts[:-1]):
        here = ".".join(parts[: i + 1])
        if part not in node:
            if node.is_locked:
                raise ConfigError(f"--config.{dotted}: {_unknown(node, part, '.'.join(parts[:i]))}")
            node[part] = ml_collections.ConfigDict()
        elif not isinstance(node[part], ml_collections.ConfigDict):
            if _is_weight_entry_scalar(node, part):
                weight = node[part]
                del node[part]  # ConfigDict refuses a change of type in place
                node[part] = ml_collections.ConfigDict({"weight": float(weight)})
            else:
                raise ConfigError(f"--config.{dotted}: config.{here} is a value ({node[part]!r}), not a section")
        node = node[part]
    key = parts[-1]
    what = f"--config.{dotted}"
    if key not in node:
        if node.is_locked:
            raise ConfigError(f"{what}: {_unknown(node, key, '.'.join(parts[:-1]))}")
        node[key] = _finite_literal(parse_literal(value), what)
        return
    current = node[key]
    if isinstance(current, ml_collections.ConfigDict):
        if "weight" in current and not isinstance(parse_literal(value), (dict, tuple)):
            current.weight = _cast(value, float(current.weight), what)
            return
        raise ConfigError(f"{what}: config.{dotted} is a section; set one of its keys ({', '.join(current.keys())})")
    node[key] = _cast(value, current, what)


def _finite_literal(value: Any, what: str) -> Any:
    """A parsed override with every number in it finite and in range (tuples checked item by item)."""
    if isinstance(value, (tuple, list)):
        for item in value:
            _finite_literal(item, what)
        return value
    return check_finite(value, what)


def _is_weight_entry_scalar(node: ml_collections.ConfigDict, key: str) -> bool:
    return not node.is_locked and isinstance(node[key], (int, float)) and not isinstance(node[key], bool)


def _unknown(node: ml_collections.ConfigDict, key: str, parent: str) -> str:
    where = f"config.{parent}" if parent else "the config"
    close = difflib.get_close_matches(key, list(node.keys()), n=1, cutoff=0.6)
    hint = f"; did you mean {(parent + '.' if parent else '') + close[0]!r}?" if close else ""
    return f"{where} has no key {key!r}{hint} (known: {', '.join(sorted(node.keys()))})"


def exec_python_file(path: str, kind: str, error: type[Exception] = ValueError) -> Any:
    """Runs the Python file ``path`` (a config or sweep file) as a fresh module and returns it; a missing file, a
    syntax error or a failed import raises ``error`` naming the ``kind`` of file, the path (and the line).

    The file is loaded as a module of a package made for its folder, so it imports its siblings relatively:
    ``from .common import make_tiny`` in ``configs/edsr.py`` is ``configs/common.py``."""
    if not Path(path).is_file():
        raise error(f"{kind} file {path!r} not found")
    folder = Path(path).resolve().parent
    package = f"jaxgen_{kind}_dir_{hashlib.sha1(str(folder).encode()).hexdigest()[:12]}"
    if package not in sys.modules:
        package_spec = importlib.machinery.ModuleSpec(package, None, is_package=True)
        package_spec.submodule_search_locations = [str(folder)]
        sys.modules[package] = importlib.util.module_from_spec(package_spec)
    module_spec = importlib.util.spec_from_file_location(f"{package}.{Path(path).stem}", path)
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except SyntaxError as e:
        raise error(f"{kind} file {path!r} has a syntax error at line {e.lineno}: {e.msg}") from None
    except ImportError as e:
        raise error(f"{kind} file {path!r}: {e}") from None
    return module


def load_config(spec: str, overrides: list[tuple[str, str]] | None = None) -> ml_collections.ConfigDict:
    """Loads ``'configs/edsr.py:x2,tiny'`` as ``--config`` does, locks it (open sections stay open), then
    applies ``(dotted key, value string)`` overrides. Every mistake raises :class:`ConfigError`."""
    path, _, arg = spec.partition(":")
    module = exec_python_file(path, "config", ConfigError)
    if not hasattr(module, "get_config"):
        raise ConfigError(f"config file {path!r} has no get_config(arg) function")
    try:
        config = module.get_config(arg or None)
    except ConfigError:
        raise
    except Exception as e:  # a user's config file failing: one line naming it, not a traceback
        raise ConfigError(f"config file {path!r}: get_config({arg or None!r}) failed: {type(e).__name__}: "
                          f"{' '.join(str(e).split())}") from None
    if not isinstance(config, ml_collections.ConfigDict) or not isinstance(config.get("task"), str):
        raise ConfigError(f"config file {path!r}: get_config(arg) must return a ConfigDict with a 'task' key "
                          "(start from jaxgen.tasks.base_config(task))")
    lock(config)
    for dotted, value in overrides or []:
        apply_override(config, dotted, value)
    return config


def _tuples(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _tuples(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return tuple(_tuples(v) for v in value)
    return value


def config_from_json(text: str, where: str = "config.json") -> ml_collections.ConfigDict:
    """A config written by ``config.to_json()`` (``W/config.json``), with JSON lists back to tuples, locked
    like a loaded one. A config of an older jaxgen without ``task`` is taken as ``sr``."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{where}: not valid JSON ({e})") from None
    raw.setdefault("task", "sr_gan" if (raw.get("disc") or {}).get("name") else "sr")
    return lock(ml_collections.ConfigDict(_tuples(raw)))


def shared_data_dir() -> str:
    """Public benchmark data: ``$JAXGEN_SHARED_DATA`` or ``../shared/data`` (relative to the working dir)."""
    return os.environ.get("JAXGEN_SHARED_DATA", "../shared/data")
