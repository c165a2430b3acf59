"""Video flicker metric and previous-frame blending (jaxgen.metrics.temporal, jaxgen.style.temporal).

Truths: closed forms (constant and alternating clips; the blend on a static input is the first-order recursive
filter y_t = (1-a) x_t + a y_{t-1}, computed independently with scipy.signal.lfilter); a synthetic flickering
"stylisation" (a clean per-frame result plus fresh noise each frame) whose flicker and error must both drop.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import uniform_filter
from scipy.signal import lfilter

from jaxgen.metrics import frame_change, temporal_flicker
from jaxgen.style.temporal import ALPHA, TemporalBlend, blend_frames, change_mask, global_shift, shift_frame


def test_flicker_of_constant_and_alternating_clips():
    rng = np.random.default_rng(0)
    moving = rng.uniform(size=(6, 8, 8, 3)).astype(np.float32)
    still = np.repeat(rng.uniform(size=(1, 8, 8, 3)), 6, axis=0)
    assert float(frame_change(still)) == 0.0
    assert float(temporal_flicker(still, moving)) == 0.0
    # output alternates 0 / 1 everywhere (change 1), input alternates 0.25 / 0.75 (change 0.5): ratio 2
    out = np.stack([np.full((8, 8, 3), t % 2, np.float32) for t in range(5)])
    inp = np.stack([np.full((4, 4, 3), 0.25 + 0.5 * (t % 2), np.float32) for t in range(5)])  # other size
    assert float(frame_change(out)) == pytest.approx(1.0)
    assert float(temporal_flicker(out, inp)) == pytest.approx(2.0)
    # half the pixels of the output alternate by 0.4, the input is a ramp of 0.1 per frame: 0.2 / 0.1
    half = np.zeros((5, 4, 4, 3), np.float32)
    half[1::2, :, :2] = 0.4
    ramp = np.stack([np.full((4, 4, 3), 0.1 * t, np.float32) for t in range(5)])
    assert float(temporal_flicker(half, ramp)) == pytest.approx(2.0, rel=1e-5)
    assert float(temporal_flicker(ramp, ramp)) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="output frames"):
        temporal_flicker(out, inp[:3])
    with pytest.raises(ValueError, match="T>=2"):
        frame_change(out[:1])


def test_flicker_with_a_known_pan_compares_shifted_frames():
    """A pan across a random strip (2 px per frame to the right: content moves by dx = -2) has zero change after
    the shift; an output at twice the size with the same pan, inverted every other frame, has change mean|1 - 2x|."""
    rng = np.random.default_rng(4)
    strip = rng.uniform(size=(6, 30, 3)).astype(np.float32)
    inp = np.stack([strip[:, 2 * t : 2 * t + 16] for t in range(5)])
    assert float(frame_change(inp, (0, -2))) == 0.0 and float(frame_change(inp)) > 0.1
    moved, valid = shift_frame(inp[0], 0, -2)
    np.testing.assert_array_equal(moved[:, :14], inp[1][:, :14])
    assert valid[:, :14].all() and not valid[:, 14:].any() and not moved[:, 14:].any()
    big = np.repeat(np.repeat(inp, 2, axis=1), 2, axis=2)
    out = np.where(np.arange(5)[:, None, None, None] % 2 == 1, 1.0 - big, big)
    assert float(frame_change(big, (0, -4))) == 0.0
    want = np.mean(np.abs(1 - 2 * big[:-1, :, 4:]))  # |x_t - (1 - x_t)| on the overlap (the same pixels)
    assert float(frame_change(out, (0, -4))) == pytest.approx(want, rel=1e-5)
    assert np.isinf(float(temporal_flicker(out, inp, (0, -2))))  # the input does not change after the shift
    with pytest.raises(ValueError, match="no overlap"):
        frame_change(inp, (0, 16))


def test_blend_is_identity_at_zero_and_an_exponential_average_on_a_static_input():
    rng = np.random.default_rng(1)
    inp = np.repeat(rng.uniform(size=(1, 6, 5, 3)), 8, axis=0).astype(np.float32)
    out = rng.uniform(size=(8, 6, 5, 3)).astype(np.float32)
    np.testing.assert_array_equal(blend_frames(out, inp, 0.0), out)
    a = 0.6
    want = lfilter([1 - a], [1, -a], out, axis=0, zi=a * out[:1])[0]  # y_0 = x_0, then the recursive average
    np.testing.assert_allclose(blend_frames(out, inp, a), want, atol=1e-5)
    with pytest.raises(ValueError, match="temporal-blend"):
        TemporalBlend(lambda x: x, 1.0)


def test_blend_leaves_pixels_whose_input_changed_and_follows_the_mask():
    prev, cur = np.zeros((2, 3, 3), np.float32), np.zeros((2, 3, 3), np.float32)
    cur[0, 0] = 1.0  # a pixel that changed a lot: mask exp(-50 * 3) ~ 0
    cur[1, 2] = [0.1, 0.0, 0.0]  # a small change: mask exp(-50 * 0.01)
    m = change_mask(cur, prev)
    assert m.shape == (2, 3, 1)
    assert m[0, 0, 0] == pytest.approx(np.exp(-3 * ALPHA)) and m[1, 2, 0] == pytest.approx(np.exp(-0.5))
    outs = np.stack([np.zeros((4, 6, 3)), np.ones((4, 6, 3))]).astype(np.float32)  # an x2 upscaling "network"
    got = blend_frames(outs, np.stack([prev, cur]), 0.5)[1]
    np.testing.assert_allclose(got[:2, :2], 1.0, atol=1e-6)  # changed input: the fresh output
    np.testing.assert_allclose(got[2:, 4:], 1 - 0.5 * np.exp(-0.5), atol=1e-6)  # nearest-resized mask
    np.testing.assert_allclose(got[:2, 2:4], 0.5, atol=1e-6)  # unchanged input: halfway to the previous output


def test_blend_reduces_flicker_and_error_of_a_noisy_per_frame_result():
    """A pan (2 px per frame) over a textured scene; the 'stylisation' is a fixed colour map of the frame plus
    fresh per-frame noise (the flicker). The pan is found (phase correlation) and compensated, so the blend comes
    closer to the clean frames than the noisy ones and than a blend without the shift (which mixes neighbours)."""
    rng = np.random.default_rng(2)
    scene = uniform_filter(rng.uniform(size=(24, 64, 3)), size=(3, 3, 1)).astype(np.float32)
    inp = np.stack([scene[:, t : t + 32] for t in range(0, 24, 2)])
    clean = 1.0 - inp[..., ::-1]
    noisy = clean + 0.05 * rng.standard_normal(clean.shape).astype(np.float32)
    assert global_shift(inp[1], inp[0]) == (0, -2)
    blended = blend_frames(noisy, inp, 0.5)
    unshifted = blend_frames(noisy, inp, 0.5, motion="none")
    err = lambda y: float(np.mean(np.abs(y - clean)))
    assert err(blended) < 0.7 * err(noisy) and err(blended) < 0.8 * err(unshifted)
    assert float(frame_change(blended, (0, -2))) < 0.7 * float(frame_change(noisy, (0, -2)))
    flicker = lambda y: float(temporal_flicker(y, inp))
    assert flicker(clean) == pytest.approx(1.0)
    assert flicker(clean) < flicker(blended) < flicker(noisy)  # not frozen below the motion


def test_stylize_video_option(tmp_path, capsys, monkeypatch):
    """--temporal-blend on a pan clip, the network replaced by a flickering one (the frame's negative plus fresh
    noise each call): a = 0.8 gives less flicker than a = 0; a bad strength is one error line, exit 2."""
    av = pytest.importorskip("av")
    from jaxgen import video
    from jaxgen.commands import stylize as stylize_cmd
    from jaxgen.data.samples import load_sample

    clip = video.pan_clip(tmp_path / "pan.mp4", load_sample("chelsea")[100:180, 150:214], size=(32, 48), frames=8, fps=10)
    rng = np.random.default_rng(3)
    monkeypatch.setattr(stylize_cmd, "_fast", lambda args: lambda x: np.clip(
        1.0 - x + 0.08 * rng.standard_normal(x.shape), 0.0, 1.0))

    def frames(path):
        with av.open(str(path)) as c:
            return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)]).astype(np.float32) / 255

    flicker = {}
    for a in ("0", "0.8"):
        out = tmp_path / f"a{a}.mp4"
        assert stylize_cmd.run(["stylize", "--method", "fast", "--weights", "unused.pth", str(clip), "-o", str(out),
                                "-q", "--crf", "10", "--temporal-blend", a]) == 0
        flicker[a] = float(temporal_flicker(frames(out), frames(clip)))
    assert flicker["0"] > 1.5 and flicker["0.8"] < 0.8 * flicker["0"]
    with pytest.raises(SystemExit) as e:
        stylize_cmd.run(["stylize", "--method", "fast", "--weights", "unused.pth", str(clip), "-o",
                         str(tmp_path / "x.mp4"), "--temporal-blend", "1.5"])
    assert e.value.code == 2 and "--temporal-blend 1.5" in capsys.readouterr().err
