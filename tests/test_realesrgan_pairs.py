"""Real-ESRGAN training pairs as the official data side (xinntao/Real-ESRGAN@a4abfb2979a7bbff3f69f58f58ae324608821e27,
``realesrgan/data/realesrgan_dataset.py`` + ``realesrgan/models/realesrgan_model.py``; BasicSR@8d56e3a
``basicsr/data/transforms.py``): the context crop (400 px degraded whole, then ``paired_random_crop`` of the
training patch, one position per call), the official defaults in ``configs/realesrgan.py``, and per-step keys."""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from jaxgen import degradations as D
from jaxgen import image
from jaxgen.config import ConfigError, load_config, optim_config
from jaxgen.tasks import base_config
from jaxgen.tasks.sr_common import RealESRGANPairs, context_size, make_sr_data
from jaxgen.train.state import STREAM_DEGRADE, new_state, step_key

REPO = Path(__file__).resolve().parents[1]


def test_paired_random_crop_is_aligned_and_shared_per_group():
    """Closed form: the GT crop is ``scale`` x the LQ crop's position; one position per group (per call)."""
    b, h, s, gt_size = 6, 10, 4, 16
    yy, xx = np.meshgrid(np.arange(h * s), np.arange(h * s), indexing="ij")
    gt = np.stack([yy, xx, np.zeros_like(yy)], -1)[None].repeat(b, 0).astype(np.float32)
    gt[:, :, :, 2] = np.arange(b)[:, None, None]
    lq = gt[:, ::s, ::s]  # lq[y, x] holds the coordinates of gt[s y, s x]
    positions = set()
    for seed in range(12):
        (g,), q = D.paired_random_crop(jax.random.key(seed), [jnp.asarray(gt)], jnp.asarray(lq), gt_size, s, groups=3)
        g, q = np.asarray(g), np.asarray(q)
        assert g.shape == (b, 16, 16, 3) and q.shape == (b, 4, 4, 3)
        top, left = q[:, 0, 0, 0] / s, q[:, 0, 0, 1] / s
        for i in range(b):
            t, l_ = int(top[i]), int(left[i])
            np.testing.assert_array_equal(g[i], gt[i, s * t : s * t + 16, s * l_ : s * l_ + 16])
            np.testing.assert_array_equal(q[i], lq[i, t : t + 4, l_ : l_ + 4])
            positions.add((t, l_))
        assert top[0] == top[1] and top[2] == top[3] and left[4] == left[5]  # groups of 2 share the position
    assert {t for t, _ in positions} <= set(range(7)) and len(positions) > 10  # top ~ U{0..h - 4}


def _pairs_config(**deg) -> ml_collections.ConfigDict:
    c = base_config("real_sr")
    c.scale, c.batch_size = 4, 4
    c.model = ml_collections.ConfigDict(dict(name="rrdbnet", num_feat=8, num_blocks=1, num_grow_ch=4))
    c.optim = optim_config(lr=1e-3)
    c.data.patch_size = 8  # HR 32 (USM sharpening needs > 25 px)
    c.degradation.queue_size = 0
    for k, v in deg.items():
        c.degradation[k] = v
    return c


def test_context_is_degraded_whole_then_the_patch_is_cut_from_the_pair():
    """By-hand composition of feed_data: degrade(usm(400-px crop)) with the step's key, then paired_random_crop;
    the returned LQ/GT are windows of the whole degraded context / HR crop at aligned positions, and a step later
    the draws and positions differ."""
    c = _pairs_config(context_size=48, groups=2)
    pairs = RealESRGANPairs(c)
    assert pairs.context == 48
    ctx = jnp.asarray(np.random.default_rng(0).random((4, 48, 48, 3), np.float32))

    @jax.jit
    def fn(st):  # one program: the pairs, and (by hand) the whole context degraded with the step's key
        whole = D.degrade(step_key(st, STREAM_DEGRADE), D.usm_sharp(ctx), pairs.degradation)
        return pairs(st, {"hr": ctx, "lr": jnp.zeros((4, 8, 8, 3))}), whole

    state = new_state(0, {})
    crops = []
    for step in (0, 1):
        st = state.replace(step=jnp.asarray(step, jnp.int32))
        (lq, targets, _), whole = fn(st)
        lq, gt = np.asarray(lq), np.asarray(targets["gan"])  # gan_gt_usm=False: the plain GT crop
        assert lq.shape == (4, 8, 8, 3) and gt.shape == (4, 32, 32, 3)
        whole = np.asarray(whole)  # [4, 12, 12, 3]: the whole context degraded
        pos = []
        for i in range(4):
            hits = [(t, l_) for t in range(5) for l_ in range(5) if np.array_equal(whole[i, t:t + 8, l_:l_ + 8], lq[i])
                    and np.array_equal(np.asarray(ctx)[i, 4 * t:4 * t + 32, 4 * l_:4 * l_ + 32], gt[i])]
            assert hits, f"step {step} image {i}: the LQ/GT pair is not an aligned window of the degraded context"
            pos.append(hits[0])
        assert pos[0] == pos[1] and pos[2] == pos[3]  # one crop position per degradation group
        np.testing.assert_allclose(np.asarray(targets["pixel"]), np.asarray(D.usm_sharp(jnp.asarray(gt))), atol=1e-6)
        crops.append((lq, pos))
    assert not np.array_equal(crops[0][0], crops[1][0])  # step t+1 draws anew


def test_context_size_rounding_and_errors():
    c = _pairs_config(context_size=50)
    assert context_size(c) == 48  # rounded down to a multiple of the scale
    c = _pairs_config(context_size=32)
    assert context_size(c) == 0  # the patch itself: nothing to crop
    c = _pairs_config(context_size=0)
    assert context_size(c) == 0
    with pytest.raises(ConfigError, match="context_size=28 is smaller than the HR training patch 32"):
        context_size(_pairs_config(context_size=28))
    assert context_size(base_config("sr")) == 0  # no degradation section


def test_make_sr_data_delivers_context_crops(tmp_path):
    rng = np.random.default_rng(1)
    for i in range(3):
        image.write_image(tmp_path / f"{i}.png", rng.integers(0, 256, (40, 44, 3), np.uint8))
    c = _pairs_config(context_size=36)
    c.data.source, c.data.train_dir, c.data.num_threads = "folder", str(tmp_path), 1
    it = make_sr_data(c, 0, 1)
    batch = next(iter(it))
    assert batch["hr"].shape == (4, 36, 36, 3)
    it.close()


def test_realesrgan_config_has_the_official_data_settings():
    """train_realesrgan_x4plus.yml: gt_size 256, use_hflip True, use_rot False, 4 GPUs (groups), crop_pad_size 400."""
    c = load_config(str(REPO / "configs" / "realesrgan.py"), [])
    assert c.scale * c.data.patch_size == 256 and c.batch_size == 48
    assert c.data.augment_flip and not c.data.augment_vflip and not c.data.augment_rot90
    assert c.degradation.groups == 4 and c.degradation.context_size == 400 and context_size(c) == 400
    tiny = load_config(str(REPO / "configs" / "realesrgan.py") + ":tiny", [])
    assert context_size(tiny) > tiny.scale * tiny.data.patch_size
