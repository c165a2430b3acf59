"""``jaxgen demo``'s video part: a built-in pan clip upscaled x2 as a video (skipped without PyAV / the zoo files).

Truths: the clip's own probe (size, rate, frame count, audio) against the requested settings; the upscaled
video's frames against the clip's decoded frames upscaled with the same model frame by frame (x264 at crf 18)."""

from __future__ import annotations

import numpy as np
import pytest

from jaxgen import video
from jaxgen.commands.demo import video_demo
from jaxgen.inference import Upscaler
from jaxgen.weights import zoo

av = pytest.importorskip("av")


def _frames(path):
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def test_video_demo_upscales_the_builtin_clip(tmp_path):
    try:
        zoo.find_files("realesr-animevideov3-x2")
    except ValueError as e:
        pytest.skip(str(e))
    clip, out, _ = video_demo(tmp_path / "video")
    src, dst = video.probe(clip), video.probe(out)
    assert (src.width, src.height, src.rate, src.frames, src.has_audio) == (96, 64, 12, 24, True)
    assert (dst.width, dst.height, dst.rate, dst.frames, dst.has_audio) == (192, 128, 12, 24, True)
    up = Upscaler(zoo.load("realesr-animevideov3-x2"))
    got, ins = _frames(out), _frames(clip)
    for i in (0, 23):
        want = np.clip(np.round(up.upscale_rgb(ins[i].astype(np.float32) / 255) * 255), 0, 255)
        mse = np.mean((got[i].astype(np.float64) - want) ** 2)
        assert 10 * np.log10(255.0**2 / mse) > 30
