"""Neural style transfer: Gatys et al. optimisation, AdaIN operations, colour preservation, multi-resolution.

* :func:`stylize_gatys` / :func:`gatys_consts` (``gatys``), the objective (``objective``),
  :func:`stylize_multires` (``multires``);
* :func:`adain`, :func:`calc_mean_std`, :func:`adain_interpolate`, :func:`masked_adain` (``jaxgen.models.adain_ops``);
* :func:`original_colors` (luminance-only transfer), :func:`coral` (colour matching) (``colour``);
* :func:`builtin_style` (a style image jaxgen draws) and :func:`demo_picture` (``make demo``) (``builtin``).

The trained stylisers (Johnson's TransformerNet, the AdaIN decoder) are tasks: ``jaxgen.tasks.fast_style``,
``jaxgen.tasks.adain``; ``jaxgen stylize`` runs all three methods.
"""

from jaxgen.models.adain_ops import adain, adain_interpolate, calc_mean_std, masked_adain, mix_alpha
from jaxgen.style.builtin import builtin_style, demo_picture
from jaxgen.style.colour import coral, original_colors, rgb_to_yuv, yuv_to_rgb
from jaxgen.style.gatys import GatysResult, gatys_consts, stylize_gatys
from jaxgen.style.multires import stylize_multires
from jaxgen.style.objective import GatysObjective, gatys_loss, tv_squared

__all__ = [
    "GatysObjective",
    "GatysResult",
    "adain",
    "adain_interpolate",
    "builtin_style",
    "calc_mean_std",
    "coral",
    "demo_picture",
    "gatys_consts",
    "gatys_loss",
    "masked_adain",
    "mix_alpha",
    "original_colors",
    "rgb_to_yuv",
    "stylize_gatys",
    "stylize_multires",
    "tv_squared",
    "yuv_to_rgb",
]
