"""Model registry: ``build(name, **kwargs)`` for the generators (LR -> SR) and the discriminators.

Generators (``scale`` required; all take ``num_in_ch``, ``num_out_ch``, ``dtype``, ``param_dtype``):

==================  ======================  =================================================================
name                class                   further kwargs (defaults = paper / official)
==================  ======================  =================================================================
``srcnn``           ``SRCNN``               kernel_sizes=(9,1,5), filters=(64,32), upsample_input=True
``espcn``           ``ESPCN``               kernel_sizes=(5,3,3), filters=(64,32)
``fsrcnn``          ``FSRCNN``              d=56, s=12, m=4
``vdsr``            ``VDSR``                num_feat=64, num_layers=20, use_bias=True, upsample_input=True
``edsr``            ``EDSR``                num_feat=64, num_blocks=16, res_scale=1.0 (baseline), rgb_mean, img_range
``srresnet``        ``MSRResNet``           num_feat=64, num_blocks=16, act='lrelu' | 'prelu'
``rrdbnet``         ``RRDBNet``             num_feat=64, num_blocks=23, num_grow_ch=32
``rcan``            ``RCAN``                num_feat=64, num_groups=10, num_blocks=20, reduction=16, res_scale,
                                            rgb_mean, img_range
``srvgg_compact``   ``SRVGGNetCompact``     num_feat=64, num_conv=16, act='prelu' | 'relu' | 'leakyrelu'
``waifu2x_upconv7`` ``UpConv7``             (scale 2 only; valid convs, replicate pre-padding 7)
``waifu2x_cunet``   ``CUNet``               scale 1 or 2 (replicate pre-padding 28 / 18)
``realcugan``       ``UpCunet``             scale 2, 3 or 4; pro=False, alpha=1.0 (reflect pre-padding)
==================  ======================  =================================================================

Discriminators come from ``jaxgen.models.discriminators.DISCRIMINATORS``; style-transfer networks (no ``scale``)
from ``STYLE_NETS``: ``transformer_net`` (Johnson et al.), ``adain_decoder`` / ``adain_vgg`` (AdaIN); the
pix2pix / CycleGAN networks from ``TRANSLATION_NETS``: ``resnet``, ``unet`` and ``patchgan_bn`` (the
instance-norm CycleGAN discriminator is ``patchgan`` above).

This is the one model registry: every task builds its networks with ``build``. An unknown name is a
``ValueError``; an unknown keyword argument a ``TypeError`` naming it.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import flax.linen as nn

from jaxgen.models.adain_net import AdaINDecoder, AdaINEncoder
from jaxgen.models.discriminators import DISCRIMINATORS
from jaxgen.models.edsr import EDSR
from jaxgen.models.espcn import ESPCN
from jaxgen.models.fsrcnn import FSRCNN
from jaxgen.models.rcan import RCAN
from jaxgen.models.realcugan import UpCunet
from jaxgen.models.rrdbnet import RRDBNet
from jaxgen.models.srcnn import SRCNN
from jaxgen.models.srresnet import MSRResNet
from jaxgen.models.srvgg import SRVGGNetCompact
from jaxgen.models.transformer_net import TransformerNet
from jaxgen.models.translation import BatchNormPatchGAN, ResnetGenerator, UnetGenerator
from jaxgen.models.vdsr import VDSR
from jaxgen.models.waifu2x import CUNet, UpConv7

__all__ = [
    "CUNet",
    "DISCRIMINATORS",
    "EDSR",
    "ESPCN",
    "FSRCNN",
    "GENERATORS",
    "MODELS",
    "MSRResNet",
    "RCAN",
    "RRDBNet",
    "SRCNN",
    "SRVGGNetCompact",
    "STYLE_NETS",
    "TRANSLATION_NETS",
    "TransformerNet",
    "UpConv7",
    "UpCunet",
    "VDSR",
    "build",
]

GENERATORS: dict[str, type[nn.Module]] = {
    "srcnn": SRCNN,
    "espcn": ESPCN,
    "fsrcnn": FSRCNN,
    "vdsr": VDSR,
    "edsr": EDSR,
    "srresnet": MSRResNet,
    "rrdbnet": RRDBNet,
    "rcan": RCAN,
    "srvgg_compact": SRVGGNetCompact,
    "waifu2x_upconv7": UpConv7,
    "waifu2x_cunet": CUNet,
    "realcugan": UpCunet,
}

STYLE_NETS: dict[str, type[nn.Module]] = {
    "transformer_net": TransformerNet,
    "adain_decoder": AdaINDecoder,
    "adain_vgg": AdaINEncoder,
}

TRANSLATION_NETS: dict[str, type[nn.Module]] = {
    "resnet": ResnetGenerator,
    "unet": UnetGenerator,
    "patchgan_bn": BatchNormPatchGAN,
}

_FAMILIES = (GENERATORS, DISCRIMINATORS, STYLE_NETS, TRANSLATION_NETS)
MODELS: dict[str, Callable[..., nn.Module]] = {k: v for family in _FAMILIES for k, v in family.items()}
if len(MODELS) != sum(len(family) for family in _FAMILIES):
    raise ImportError("model names collide across GENERATORS, DISCRIMINATORS, STYLE_NETS and TRANSLATION_NETS")


def _accepted_kwargs(factory: Callable[..., nn.Module]) -> set[str] | None:
    if dataclasses.is_dataclass(factory):
        return {f.name for f in dataclasses.fields(factory) if f.init} - {"parent", "name"}
    return None  # a plain callable: let it validate its own arguments


def build(name: str, **kwargs: Any) -> nn.Module:
    """``MODELS[name](**kwargs)``. Unknown name -> ``ValueError``; unknown kwarg -> ``TypeError`` naming it."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(sorted(MODELS))}")
    factory = MODELS[name]
    accepted = _accepted_kwargs(factory)
    if accepted is not None:
        unknown = sorted(set(kwargs) - accepted)
        if unknown:
            raise TypeError(f"model {name!r} got unknown kwargs {unknown}; it accepts {sorted(accepted)}")
    return factory(**kwargs)
