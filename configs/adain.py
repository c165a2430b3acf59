"""AdaIN arbitrary style transfer (VGG19 encoder to relu4_1, trained decoder; pytorch-AdaIN settings).

Variants: ``study`` (CPU study: 128 px crops of 256 px images, the shared content photos and styles, a slim
decoder), ``tiny`` (tests: built-in photos and drawn styles, 32 px, random encoder weights, 20 steps). Set the
data with ``--config.data.content_dir=DIR --config.data.style_dir=DIR`` (the paper: MS-COCO and WikiArt).
"""

from jaxgen.config import optim_config, parse_arg, shared_data_dir
from jaxgen.tasks import base_config


def get_config(arg=None):
    a = parse_arg(arg, tiny=False, study=False)
    c = base_config("adain")
    if a.study:
        c.data.content_dir = f"{shared_data_dir()}/style/contents"
        c.data.resize, c.data.image_size = 256, 128
        c.model.features = (64, 32, 16)
        c.batch_size = 4
        c.optim = optim_config(lr=1e-3)
        c.total_steps, c.log_every, c.eval_every, c.ckpt_every = 20000, 10, 100, 200
    if a.tiny:
        c.encoder = "random"
        c.data.style_dir = "builtin"
        c.batch_size, c.data.resize, c.data.image_size = 8, 48, 32
        c.model.features = (8, 8, 8)
        c.total_steps, c.log_every, c.eval_every, c.ckpt_every = 20, 5, 10, 10
        c.eval_max_images = 1
        c.optim = optim_config(lr=1e-3)
    return c
