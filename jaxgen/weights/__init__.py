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
"""

from jaxgen.weights.convert import ARCHS, export_torch_weights, flax_to_torch, load_pretrained, torch_to_flax
from jaxgen.weights.safe_pickle import UnsafePickleError, WeightsError, load_pickle
from jaxgen.weights.stablehlo_export import export_stablehlo, load_stablehlo
from jaxgen.weights.state_dict_io import load_state_dict, save_state_dict
from jaxgen.weights.torch_checkpoint import read_torch_checkpoint

__all__ = [
    "ARCHS",
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
