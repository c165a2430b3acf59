"""pix2pix (Isola et al., CVPR 2017): paired translation, U-Net-256 generator + conditional 70x70 PatchGAN.

Run: ``jaxgen train --config configs/pix2pix.py --workdir workdirs/facades --config.data.dir_a=.../facades/train
--config.data.val_dir_a=.../facades/val`` (folders of the side-by-side ``AB`` images of the pix2pix datasets;
two folders matched by name: ``--config.data.source=folder --config.data.dir_a=... --config.data.dir_b=...``).
Variants: ``epoch_size=N`` (training pairs; 400 for facades), ``direction=AtoB|BtoA`` (facades: BtoA, labels ->
photo), ``tiny`` (tests: built-in photos paired with their photo negatives, 32 px, U-Net with 5 downs, 20 steps).
Protocol (official ``train.py --model pix2pix``): batch 1, resize 286 + random crop 256 + flip (the same for A and
B), U-Net-256 (batch norm, dropout 0.5), PatchGAN n_layers 3 with batch norm, vanilla GAN + 100 x L1, Adam(2e-4,
0.5, 0.999), 100 epochs constant + 100 epochs linear decay to 0 (here per step).
"""

import ml_collections

from jaxgen.config import optim_config, parse_arg, shared_data_dir
from jaxgen.tasks import base_config


def get_config(arg=None):
    a = parse_arg(arg, epoch_size=400, direction="BtoA", tiny=False)
    c = base_config("pix2pix")
    epochs, decay_epochs = 100, 100
    c.direction = a.direction
    c.total_steps = (epochs + decay_epochs) * a.epoch_size
    c.optim = optim_config(lr=2e-4, b1=0.5, b2=0.999, schedule="linear_decay", decay_start=epochs * a.epoch_size)
    c.data.source = "aligned"
    c.data.dir_a, c.data.val_dir_a = f"{shared_data_dir()}/pix2pix/facades/train", f"{shared_data_dir()}/pix2pix/facades/val"
    c.log_every, c.eval_every, c.ckpt_every = 100, 5000, 5000
    if a.tiny:
        c.direction = "AtoB"
        c.data = ml_collections.ConfigDict(dict(c.data.to_dict(), source="builtin", dir_a="", val_dir_a="",
                                                synthetic="invert", load_size=36, crop_size=32, num_eval=1,
                                                num_threads=2))
        c.model.num_downs, c.model.ngf = 5, 8
        c.disc.ndf = 8
        c.batch_size, c.total_steps, c.log_every, c.eval_every, c.ckpt_every = 8, 20, 5, 10, 10
        c.optim = optim_config(lr=2e-4, b1=0.5, b2=0.999, schedule="linear_decay", decay_start=10)
    return c
