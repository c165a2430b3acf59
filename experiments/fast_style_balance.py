"""The balance of the fast-style objective (content 1e5, style 1e10) before training: the weighted content loss
of a black output and the weighted style loss of the photo itself / of a black output, for the study setting
(128 px content crops) with the style image at 256 px, 512 px or as it is, and for the official setting (256 px
crops, style as it is). Forward passes only (real VGG16, 4 shared content photos, centre crops; the
numbers below were measured with the data loader's resize, this script resizes with PIL's bicubic).

Run: ``PYTHONPATH=$PWD python experiments/fast_style_balance.py``.

Measured 2026-12-06 (candy is 1024 px):

=======================  ===============  ================  ===============  ===========
content / style size     black: content   identity: style   black: style     style/content
=======================  ===============  ================  ===============  ===========
256 / as it is (official)  8.57e5           7.39e6            6.75e6           8.6x
128 / 256 (old study)      9.69e5           1.84e7            2.84e7           19x
128 / 512 (study now)      9.69e5           8.76e6            1.26e7           9.0x
128 / as it is             9.69e5           7.90e6            6.76e6           8.2x
=======================  ===============  ================  ===============  ===========
"""

from __future__ import annotations

import json
from pathlib import Path

import jax.numpy as jnp
import numpy as np
from PIL import Image

from jaxgen.config import load_config, shared_data_dir
from jaxgen.losses import gram_matrix
from jaxgen.tasks import get_task


def load(path: Path, long_side: int = 0, short_side: int = 0) -> np.ndarray:
    """RGB float32 [0,1], resized (bicubic, PIL) so that its long or short side has the given size (0: as it is)."""
    im = Image.open(path).convert("RGB")
    w, h = im.size
    scale = long_side / max(w, h) if long_side else (short_side / min(w, h) if short_side else 1.0)
    if scale != 1.0:
        im = im.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BICUBIC)
    return np.asarray(im, np.float32) / 255.0


def main() -> None:
    task = get_task("fast_style")(load_config("configs/fast_style.py:study,style=candy"))
    consts, _ = task.consts()
    style_path = task.style_path()
    files = sorted(Path(shared_data_dir(), "style", "contents").glob("*.jpg"))[:4]
    for s_content in (128, 256):
        for s_style in (256, 512, 0):
            st = load(style_path, long_side=s_style)
            fs = task.vgg.apply({"params": consts["vgg"]}, jnp.asarray(st)[None])
            cs = {"vgg": consts["vgg"], "style_grams": {k: gram_matrix(fs[k]) for k in task.config.style_layers}}
            crops = []
            for f in files:
                img = load(f, short_side=s_content)  # then the centre crop
                y0, x0 = (img.shape[0] - s_content) // 2, (img.shape[1] - s_content) // 2
                crops.append(np.asarray(img[y0:y0 + s_content, x0:x0 + s_content], np.float32))
            x = jnp.asarray(np.stack(crops))
            black, ident = task.losses(jnp.zeros_like(x), x, cs), task.losses(x, x, cs)
            row = {"black_content": float(black["content"]), "identity_style": float(ident["style"]),
                   "black_style": float(black["style"])}
            print(s_content, s_style or "as it is", json.dumps({k: f"{v:.3g}" for k, v in row.items()}), flush=True)


if __name__ == "__main__":
    main()
