"""Golden of the fast-style network shipped with jaxgen (``jaxgen stylize --method fast --model candy-small``),
computed by the official network in PyTorch: pytorch/examples ``fast_neural_style/neural_style/transformer_net.py``
``TransformerNet`` (re-created in ``tools/make_style_goldens.py``, commit cited there), with 16 channels and 3
residual blocks, loaded with the shipped ``.safetensors`` state dict (parsed here from the format's spec: an
8-byte little-endian header length, a JSON header, raw little-endian tensors) and fed 0-255 pixels as the official
``stylize``.

Regenerate (CPU torch venv; never a jaxgen dependency)::

    /work/torchvenv/bin/python tools/make_fast_style_zoo_golden.py \\
        jaxgen/weights/files/fast_style_candy_small.safetensors \\
        ../shared/data/sr-benchmarks/Set14/image_SRF_2/img_011_SRF_2_HR.png tests/goldens/style/fast_style_zoo.npz

Stored: ``x`` uint8 ``[1,64,96,3]`` (Set14 monarch, PIL bicubic to 96x64), ``y`` float32 ``[1,64,96,3]``
(the official output / 255, not clamped), ``sha256`` of the weight file.
"""

import hashlib
import json
import struct
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_style_goldens import TransformerNet  # noqa: E402  (the re-created official module)

DTYPES = {"F32": np.float32, "F16": np.float16}


def read_safetensors(path):
    raw = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    body = raw[8 + n:]
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        a, b = meta["data_offsets"]
        out[name] = np.frombuffer(body[a:b], DTYPES[meta["dtype"]]).reshape(meta["shape"]).astype(np.float32)
    return out


def main(weights, photo, out):
    sd = read_safetensors(weights)
    net = TransformerNet(16, 3).eval()
    net.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in sd.items()}, strict=True)
    x = np.asarray(Image.open(photo).convert("RGB").resize((96, 64), Image.BICUBIC), np.uint8)[None]
    with torch.no_grad():
        y = net(torch.from_numpy(x.astype(np.float32)).permute(0, 3, 1, 2)) / 255.0
    np.savez(out, x=x, y=y.permute(0, 2, 3, 1).numpy().astype(np.float32),
             sha256=np.asarray(hashlib.sha256(Path(weights).read_bytes()).hexdigest()))
    print(out, x.shape, float(y.min()), float(y.max()))


if __name__ == "__main__":
    main(*sys.argv[1:4])
