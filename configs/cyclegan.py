"""CycleGAN (Zhu et al., ICCV 2017): unpaired translation A <-> B, two ResNet generators + two 70x70 PatchGANs.

Run: ``jaxgen train --config configs/cyclegan.py:dataset=horse2zebra --workdir workdirs/horse2zebra``.
Variants: ``dataset=NAME`` (TFDS ``cycle_gan/NAME``: prepare it once with ``tfds build cycle_gan/NAME
--file_format=array_record``; or ``--config.data.source=folder --config.data.dir_a=... --config.data.dir_b=...``),
``epoch_size=N`` (images per epoch, official ``max(|A|, |B|)``: 1334 for horse2zebra), ``res128`` (128 px crops,
ResNet-6 as the official ``--netG resnet_6blocks``), ``tiny`` (tests: two synthetic domains from the built-in
photos, B = their photo negative, 32 px crops, tiny nets, 20 steps).
Protocol (official ``train.py --model cycle_gan``): batch 1, resize 286 + random crop 256 + flip, ResNet-9
generators (instance norm, reflection padding), PatchGAN n_layers 3, LSGAN, lambda_A = lambda_B = 10, identity
0.5, image pools of 50, Adam(2e-4, 0.5, 0.999), 100 epochs constant + 100 epochs linear decay to 0 (here per step).
"""

import ml_collections

from jaxgen.config import optim_config, parse_arg
from jaxgen.tasks import base_config


def get_config(arg=None):
    a = parse_arg(arg, dataset="horse2zebra", epoch_size=1334, res128=False, tiny=False)
    c = base_config("cyclegan")
    epochs, decay_epochs = 100, 100
    c.total_steps = (epochs + decay_epochs) * a.epoch_size
    c.optim = optim_config(lr=2e-4, b1=0.5, b2=0.999, schedule="linear_decay", decay_start=epochs * a.epoch_size)
    c.data.source, c.data.tfds_name = "tfds", f"cycle_gan/{a.dataset}"
    c.log_every, c.eval_every, c.ckpt_every = 100, 5000, 5000
    if a.res128:
        c.data.load_size, c.data.crop_size = 143, 128
        c.model.n_blocks = 6
    if a.tiny:
        c.data = ml_collections.ConfigDict(dict(c.data.to_dict(), source="builtin", tfds_name="", synthetic="invert",
                                                load_size=36, crop_size=32, num_eval=1, num_threads=2))
        c.model.ngf, c.model.n_blocks = 8, 2
        c.disc.ndf = 8
        c.pool_size = 12  # the pool fills (8 per step) and starts swapping within the 20 steps
        c.batch_size, c.total_steps, c.log_every, c.eval_every, c.ckpt_every = 8, 20, 5, 10, 10
        c.optim = optim_config(lr=2e-4, b1=0.5, b2=0.999, schedule="linear_decay", decay_start=10)
    return c
