"""The history pool of generated images (Shrivastava et al. 2017) as CycleGAN trains its discriminators with it:
official ``util/image_pool.py`` ``ImagePool.query`` as a pure, jittable function of ``(pool, images, key)``.

A pool is ``{'images': [N,H,W,C], 'count': int32 scalar}`` (``N = pool_size``; ``count`` = slots filled so far),
kept on device in ``TrainState.buffers`` so it is checkpointed and restored with the players.

``query_pool`` goes through the batch in order, one image at a time (so a later image of a batch can be
answered with an earlier one it just stored, as the official loop):

* pool not full (``count < N``): store the image at slot ``count``, ``count += 1``, return the image;
* pool full: draw ``p ~ U(0, 1)``; if ``p > 0.5`` return a stored image from a uniformly drawn slot
  (``randint(0, N - 1)`` inclusive) and put the new image in that slot; otherwise return the new image.

``pool_size = 0`` returns the images unchanged (no buffer).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

Pool = dict[str, jax.Array]

__all__ = ["Pool", "new_pool", "query_pool"]


def new_pool(size: int, image_shape: tuple[int, ...], dtype: Any = jnp.float32) -> Pool:
    """An empty pool of ``size`` images of ``image_shape`` (``[H,W,C]``)."""
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ValueError(f"pool_size={size!r}: expected an integer >= 0 (0 = no pool)")
    return {"images": jnp.zeros((size, *image_shape), dtype), "count": jnp.zeros((), jnp.int32)}


def query_pool(pool: Pool, images: jax.Array, key: jax.Array) -> tuple[Pool, jax.Array]:
    """``(new pool, returned images [B,H,W,C])`` for the batch ``images [B,H,W,C]`` (see the module doc).

    Randomness: image ``i`` uses ``split(key, B)[i]``, split again into the draw of ``p`` and of the slot.
    """
    stored, count = pool["images"], pool["count"]
    size = stored.shape[0]
    if size == 0:
        return pool, images
    if images.shape[1:] != stored.shape[1:]:
        raise ValueError(f"image pool holds {stored.shape[1:]} images; got a batch of {images.shape}")

    def one(carry: tuple[jax.Array, jax.Array], inputs: tuple[jax.Array, jax.Array]):
        stored, count = carry
        image, k = inputs
        k_p, k_slot = jax.random.split(k)
        filling = count < size
        swap = jnp.logical_and(~filling, jax.random.uniform(k_p) > 0.5)
        slot = jnp.where(filling, count, jax.random.randint(k_slot, (), 0, size))
        old = jax.lax.dynamic_index_in_dim(stored, slot, keepdims=False)
        keep_new = jnp.logical_or(filling, swap)
        stored = jax.lax.dynamic_update_index_in_dim(stored, jnp.where(keep_new, image.astype(stored.dtype), old),
                                                     slot, 0)
        returned = jnp.where(swap, old.astype(image.dtype), image)
        return (stored, count + filling.astype(jnp.int32)), returned

    keys = jax.random.split(key, images.shape[0])
    (stored, count), returned = jax.lax.scan(one, (stored, count), (images, keys))
    return {"images": stored, "count": count}, returned
