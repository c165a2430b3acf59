"""A model's forward pass as a serialized ``jax.export`` artifact (StableHLO + calling convention).

The artifact holds ``x -> module.apply({'params': params}, x)`` with the params baked in as constants and a
symbolic batch / height / width: ``[b, m*h, m*w, C] float32 -> [b, ...]``, ``m = spatial_multiple``. It runs
with jax alone (``load_stablehlo``; no jaxgen, no Flax) on every platform it was lowered for, and its
StableHLO text is ``exported.mlir_module()`` for other StableHLO consumers. Serialization needs the
``flatbuffers`` package (a jax requirement for ``Exported.serialize``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import export

from jaxgen.models import RRDBNet

__all__ = ["export_stablehlo", "load_stablehlo"]


def _default_multiple(module: nn.Module) -> int:
    """RRDBNet at scale 2 / 1 pixel-unshuffles its input by 2 / 4, so h and w must be multiples of that."""
    if isinstance(module, RRDBNet) and module.scale < 4:
        return 4 // module.scale
    return 1


def export_stablehlo(
    module: nn.Module,
    params: Any,
    path: str | os.PathLike,
    *,
    num_in_ch: int | None = None,
    spatial_multiple: int | None = None,
    platforms: Sequence[str] = ("cpu", "cuda"),
) -> export.Exported:
    """Serialize ``module``'s forward pass with ``params`` (the tree under ``'params'``) to ``path``.

    Input ``[b, m*h, m*w, num_in_ch]`` float32 with symbolic ``b``, ``h``, ``w`` (``num_in_ch`` defaults to
    ``module.num_in_ch``; ``m = spatial_multiple``, default 1, or what the model needs: 2 or 4 for RRDBNet at
    scale 2 or 1). Lowered for ``platforms`` (no device of that kind is needed to export). Returns the
    ``jax.export.Exported``. A model that cannot take symbolic sizes raises jax's error.
    """
    channels = num_in_ch if num_in_ch is not None else getattr(module, "num_in_ch", None)
    if channels is None:
        raise ValueError(f"export_stablehlo: {type(module).__name__} has no num_in_ch; pass num_in_ch")
    m = _default_multiple(module) if spatial_multiple is None else int(spatial_multiple)
    if m < 1:
        raise ValueError(f"export_stablehlo: spatial_multiple must be >= 1; got {m}")
    dims = "b, h, w" if m == 1 else f"b, {m}*h, {m}*w"
    spec = jax.ShapeDtypeStruct(export.symbolic_shape(f"{dims}, {channels}"), jnp.float32)
    variables = {"params": params}
    exported = export.export(jax.jit(lambda x: module.apply(variables, x)), platforms=tuple(platforms))(spec)
    with open(os.fspath(path), "wb") as f:
        f.write(exported.serialize())
    return exported


def load_stablehlo(path: str | os.PathLike) -> Callable[[Any], jax.Array]:
    """The forward pass saved by ``export_stablehlo``: ``fn(x) -> y`` (jitted; x as at export, any b, h, w).

    ``fn.exported`` is the ``jax.export.Exported`` (``in_avals``, ``out_avals``, ``mlir_module()``). Missing or
    corrupt file -> ``ValueError``.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"{path}: no such file")
    with open(path, "rb") as f:
        data = bytearray(f.read())
    try:
        exported = export.deserialize(data)
    except Exception as e:  # noqa: BLE001 - flatbuffers raises assorted errors on foreign bytes
        raise ValueError(f"{path}: not a jax.export artifact ({type(e).__name__})") from None
    fn = jax.jit(exported.call)
    fn.exported = exported  # type: ignore[attr-defined]
    return fn
