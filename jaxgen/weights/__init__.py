"""Safe weight import/export: PyTorch / safetensors / npz / Keras-h5 weight files <-> jaxgen Flax params.

* ``load_state_dict(path)`` / ``save_state_dict(path, sd)``: weight files <-> flat ``{name: np.ndarray}``
  (``state_dict_io``). Pickled files are read without PyTorch and without executing pickled code
  (``torch_checkpoint``, ``safe_pickle``; a forbidden global raises ``UnsafePickleError``). Every reader
  bounds its work by the file and fails with a one-line ``WeightsError`` (a ``ValueError``) naming it.
* ``read_torch_checkpoint(path)``: the raw object of a ``torch.save`` file (nested dicts, tensors as arrays).
* ``load_pickle(path)``: a plain pickle of numpy arrays, read safely.
* ``torch_to_flax`` / ``flax_to_torch`` / ``load_pretrained`` / ``export_torch_weights``: official PyTorch names
  <-> jaxgen params (``convert``).
* ``export_stablehlo`` / ``load_stablehlo``: a model's forward pass as a serialized ``jax.export`` artifact.

Where weights come from (this package is their one home):

* ``load_vgg`` / ``load_alexnet`` / ``load_lpips_heads`` / ``resolve_weights`` (``pretrained``): the pretrained
  feature networks, resolved offline from a path, installed weight packages or caches.
* ``jaxgen.weights.zoo``: named pretrained SR networks (``zoo.load(name) -> SRModel``), from installed ncnn files.
* ``jaxgen.weights.init_from``: the generator weights a run starts from (``config.init_from``: a zoo name, an
  official weight file or a jaxgen workdir).

``zoo`` and ``init_from`` are imported as modules (``from jaxgen.weights import zoo``): they build on
``jaxgen.inference``, which the readers here do not need.
"""

from jaxgen.weights.convert import ARCHS, export_torch_weights, flax_to_torch, load_pretrained, torch_to_flax
from jaxgen.weights.pretrained import (
    ASSETS,
    PretrainedVGG,
    WeightsNotFoundError,
    cache_dirs,
    convert_trunk,
    download_file,
    load_alexnet,
    load_lpips_heads,
    load_vgg,
    resolve_weights,
)
from jaxgen.weights.safe_pickle import UnsafePickleError, WeightsError, load_pickle
from jaxgen.weights.stablehlo_export import export_stablehlo, load_stablehlo
from jaxgen.weights.state_dict_io import load_state_dict, save_state_dict
from jaxgen.weights.torch_checkpoint import read_torch_checkpoint

__all__ = [
    "ARCHS",
    "ASSETS",
    "PretrainedVGG",
    "WeightsNotFoundError",
    "cache_dirs",
    "convert_trunk",
    "download_file",
    "load_alexnet",
    "load_lpips_heads",
    "load_vgg",
    "resolve_weights",
    "UnsafePickleError",
    "WeightsError",
    "export_stablehlo",
    "export_torch_weights",
    "flax_to_torch",
    "load_pickle",
    "load_pretrained",
    "load_stablehlo",
    "load_state_dict",
    "read_torch_checkpoint",
    "save_state_dict",
    "torch_to_flax",
]
