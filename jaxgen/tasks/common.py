"""What every task shares and nothing task-specific: the :class:`Task` protocol the training loop is typed with,
the batch type, the compute dtype, building a network from a config section and the step-metric names.

Step metrics (``task.step`` returns them; the loop logs them to ``metrics.jsonl`` and TensorBoard):
``loss`` (the total the trained -- or first -- player minimised), ``g_grad_norm`` (the global norm of its
gradient; the generator, or AdaIN's decoder), ``lr`` (its learning rate), ``finite`` (false stops the run), and
for a second player ``d_loss``/``d_grad_norm``; each loss term as ``loss_<term>``. Runs of jaxgen before
architecture v3 logged AdaIN's gradient norm as ``grad_norm`` (:data:`OLD_METRIC_NAMES`); nothing reads step
metrics back into a run, so their files stay as they are.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Protocol

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

from jaxgen import models
from jaxgen.config import ConfigError
from jaxgen.train.state import TrainState

__all__ = ["Batch", "DTYPES", "METRIC_FINITE", "METRIC_G_GRAD_NORM", "METRIC_D_GRAD_NORM", "METRIC_LOSS",
           "METRIC_LR", "OLD_METRIC_NAMES", "Task", "TaskVariant", "build_model", "compute_dtype", "float32_logits",
           "mean_logit", "section_kwargs"]

Batch = dict[str, jax.Array]
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}

METRIC_LOSS = "loss"
METRIC_G_GRAD_NORM = "g_grad_norm"
METRIC_D_GRAD_NORM = "d_grad_norm"
METRIC_LR = "lr"
METRIC_FINITE = "finite"
OLD_METRIC_NAMES = {"grad_norm": METRIC_G_GRAD_NORM}  # AdaIN runs written before architecture v3


class Task(Protocol):
    """What ``jaxgen.train.loop.train`` needs of a task (``jaxgen.tasks`` module docstring: the table)."""

    config: ml_collections.ConfigDict
    EXPORT_PLAYER: str
    best_metric: str
    best_mode: str

    @property
    def players(self) -> dict[str, tuple[nn.Module, optax.GradientTransformation]]: ...

    @staticmethod
    def architecture(config: ml_collections.ConfigDict) -> dict[str, Any]: ...

    def init(self) -> TrainState: ...

    def step(self, state: TrainState, batch: Batch, consts: Any) -> tuple[TrainState, dict[str, jax.Array]]: ...

    def consts(self) -> tuple[Any, dict[str, str]]: ...

    def make_data(self, process_index: int, process_count: int) -> Any: ...

    def prepare(self, workdir: Path) -> None: ...

    def evaluate(self, state: TrainState) -> tuple[dict[str, float], dict[str, Any]]: ...

    def export_module(self) -> nn.Module: ...


@dataclasses.dataclass(frozen=True)
class TaskVariant:
    """A registry entry that is a task class with another default config (``real_sr`` is ``SRTask`` with a
    ``degradation`` section): called with a config it builds ``task(config)``; any other attribute is the class's."""

    task: type
    default_config: Callable[[ml_collections.ConfigDict], None]

    def __call__(self, config: ml_collections.ConfigDict) -> Any:
        return self.task(config)

    def __getattr__(self, name: str) -> Any:
        if name == "task":  # not yet set (copy/unpickle)
            raise AttributeError(name)
        return getattr(self.task, name)


def compute_dtype(config: ml_collections.ConfigDict) -> Any:
    """``config.compute_dtype`` as a JAX dtype: the modules' dtype (params stay float32). With
    ``config.conv_backend = "onednn"`` bfloat16 is autocast-style: the modules stay float32 and only the oneDNN
    convolutions multiply in bf16 (``jaxgen.models.onednn_conv``; bf16 activations measured slower there)."""
    if config.compute_dtype not in DTYPES:
        raise ConfigError(f"config.compute_dtype={config.compute_dtype!r}; expected one of {sorted(DTYPES)}")
    if config.get("conv_backend", "xla") == "onednn" and config.compute_dtype == "bfloat16":
        return jnp.float32
    return DTYPES[config.compute_dtype]


def section_kwargs(section: ml_collections.ConfigDict, where: str, skip: tuple[str, ...] = ("name",)) -> dict[str, Any]:
    """A model section's keys except ``skip`` as kwargs (nested sections as dicts, JSON lists back to tuples);
    a negative integer is a ``ConfigError`` naming ``config.<where>.<key>``."""
    kwargs = {}
    for key, value in section.items():
        if key in skip:
            continue
        value = value.to_dict() if isinstance(value, ml_collections.ConfigDict) else value
        value = tuple(value) if isinstance(value, list) else value
        ints = value if isinstance(value, tuple) else (value,)
        if any(isinstance(v, int) and not isinstance(v, bool) and v < 0 for v in ints):
            raise ConfigError(f"config.{where}.{key}={value!r}: sizes must be >= 0")
        kwargs[key] = value
    return kwargs


def build_model(name: str, kwargs: dict[str, Any], where: str) -> nn.Module:
    """``models.build(name, **kwargs)`` with config mistakes (unknown model, unknown/invalid kwargs) as one-line
    ``ConfigError``s naming ``config.<where>``."""
    try:
        return models.build(name, **kwargs)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"config.{where}: {e}") from None


def float32_logits(logits: Any) -> Any:
    """A discriminator's output in float32: one logit map (e.g. a PatchGAN's ``[B,h,w,1]``, a VGG-style
    discriminator's ``[B,1]``), or a tuple of maps, finest first, for a multi-scale discriminator
    (``multiscale_patchgan``, pix2pixHD's: ``jaxgen.losses``' GAN losses sum over the scales)."""
    if isinstance(logits, (tuple, list)):
        return tuple(x.astype(jnp.float32) for x in logits)
    return logits.astype(jnp.float32)


def mean_logit(logits: Any) -> jax.Array:
    """The mean logit, a scalar (the ``d_real_logit`` / ``d_fake_logit`` metrics): of the one map, or the mean of
    the scales' means (each scale counts once, whatever its size)."""
    if isinstance(logits, (tuple, list)):
        return jnp.mean(jnp.stack([jnp.mean(x) for x in logits]))
    return jnp.mean(logits)
