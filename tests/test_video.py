"""jaxgen.video: streamed, resumable video transcoding with PyAV, and the ``jaxgen upscale`` / ``stylize`` hooks.

Truths: the input clip's own decoded frames, packets and timestamps (PyAV); frame counts; byte-identical audio
packets; a fresh run's decoded frames (x264 is deterministic) for the resumed run. Skipped without PyAV.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from flax.traverse_util import unflatten_dict

from jaxgen import video
from jaxgen.weights import zoo
from jaxgen.commands import stylize as stylize_cmd
from jaxgen.commands import upscale as upscale_cmd
from jaxgen.data.samples import load_sample
from jaxgen.models import build
from jaxgen.weights import flax_to_torch
from jaxgen.weights.convert import model_param_shapes
from jaxgen.weights.state_dict_io import save_state_dict

av = pytest.importorskip("av")

FRAMES, FPS = 7, 10


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("clip") / "pan.mp4"
    return video.pan_clip(path, load_sample("chelsea"), size=(32, 32), frames=FRAMES, fps=FPS)


def _frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def _audio_packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as c:
        return [bytes(p) for p in c.demux(c.streams.audio[0]) if p.size]


def _video_times(path: Path) -> list[tuple[int, int]]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return [(int(p.pts * s.time_base * FPS * 1000), int(p.dts * s.time_base * FPS * 1000))
                for p in c.demux(s) if p.size]


def nearest2(x: np.ndarray) -> np.ndarray:
    return np.repeat(np.repeat(x, 2, axis=0), 2, axis=1)


def test_transcode_keeps_frames_rate_audio_and_content(clip, tmp_path):
    src = _frames(clip)
    assert len(src) == FRAMES and src[0].shape == (32, 32, 3)
    out = video.transcode(clip, tmp_path / "x2.mp4", nearest2, video.VideoOptions(segment_frames=3), progress=False)
    info = video.probe(out)
    assert (info.width, info.height, info.rate, info.frames, info.has_audio) == (64, 64, FPS, FRAMES, True)
    got = _frames(out)
    assert len(got) == FRAMES
    for a, b in zip(got, src):  # lossy x264 at crf 18: close to the nearest-upscaled decoded input
        mse = np.mean((a.astype(np.float64) - nearest2(b)) ** 2)
        assert 10 * np.log10(255.0**2 / mse) > 30
    assert _audio_packets(out) == _audio_packets(clip)  # copied, not re-encoded
    # timestamps as one continuous encode: presentation i / rate, decode times one frame per packet
    assert sorted(t[0] for t in _video_times(out)) == [1000 * i for i in range(FRAMES)]
    dts = [t[1] for t in _video_times(out)]
    assert np.all(np.diff(dts) == 1000)
    assert not (tmp_path / "x2.mp4.parts").exists()


def test_interrupted_run_resumes_without_redoing_finished_segments(clip, tmp_path):
    fresh = video.transcode(clip, tmp_path / "fresh.mp4", nearest2, video.VideoOptions(segment_frames=2),
                            label="nearest", progress=False)
    calls = []

    def dies_at_frame_5(x):
        if len(calls) == 5:
            raise KeyboardInterrupt
        calls.append(1)
        return nearest2(x)

    dst = tmp_path / "resumed.mp4"
    with pytest.raises(KeyboardInterrupt):
        video.transcode(clip, dst, dies_at_frame_5, video.VideoOptions(segment_frames=2), label="nearest",
                        progress=False)
    parts = sorted(p.name for p in (tmp_path / "resumed.mp4.parts").glob("seg_*"))
    assert parts == ["seg_00000000_2.mp4", "seg_00000002_2.mp4"]  # the third segment was not finished
    assert not dst.exists()
    seen = []
    video.transcode(clip, dst, lambda x: seen.append(1) or nearest2(x), video.VideoOptions(segment_frames=2),
                    label="nearest", progress=False)
    assert len(seen) == FRAMES - 4  # frames 0-3 are not processed again
    assert all(np.array_equal(a, b) for a, b in zip(_frames(dst), _frames(fresh)))
    assert len(_frames(dst)) == FRAMES


def test_other_settings_start_over(clip, tmp_path):
    dst = tmp_path / "o.mp4"
    calls = []

    def dies_after_two(x):
        if len(calls) == 2:
            raise RuntimeError("stop")
        calls.append(1)
        return x

    with pytest.raises(RuntimeError):
        video.transcode(clip, dst, dies_after_two, video.VideoOptions(segment_frames=2), label="a", progress=False)
    seen = []
    video.transcode(clip, dst, lambda x: seen.append(1) or x, video.VideoOptions(segment_frames=2), label="b",
                    progress=False)
    assert len(seen) == FRAMES


def test_codec_choice_and_odd_sizes(clip, tmp_path):
    out = video.transcode(clip, tmp_path / "v.mkv", lambda x: x[:31, :29],
                          video.VideoOptions(codec="libvpx-vp9", crf=30, audio=False), progress=False)
    info = video.probe(out)
    assert (info.width, info.height, info.frames, info.has_audio) == (28, 30, FRAMES, False)  # 4:2:0 needs even
    with av.open(str(out)) as c:
        assert c.streams.video[0].codec_context.name == "vp9"


@pytest.mark.parametrize("make, match", [
    (lambda d: d / "missing.mp4", "no such video file"),
    (lambda d: (d / "junk.mp4").write_bytes(b"not a video") and d / "junk.mp4", "not a readable video"),
])
def test_bad_inputs_are_one_line_errors(tmp_path, make, match):
    with pytest.raises(ValueError, match=match) as e:
        video.transcode(make(tmp_path), tmp_path / "o.mp4", nearest2, progress=False)
    assert "\n" not in str(e.value)


def test_unknown_codec_and_bad_output_name(clip, tmp_path):
    with pytest.raises(ValueError, match="--codec nosuchcodec"):
        video.transcode(clip, tmp_path / "o.mp4", nearest2, video.VideoOptions(codec="nosuchcodec"), progress=False)
    with pytest.raises(ValueError, match="expected a video file name"):
        video.transcode(clip, tmp_path / "o.png", nearest2, progress=False)


def test_upscale_command_on_a_video(clip, tmp_path, capsys):
    try:
        zoo.find_files("realesr-animevideov3-x2")
    except ValueError as e:
        pytest.skip(str(e))
    out = tmp_path / "up.mp4"
    assert upscale_cmd.run(["upscale", "--model", "realesr-animevideov3-x2", str(clip), "-o", str(out),
                            "--crf", "10"]) == 0
    info = video.probe(out)
    assert (info.width, info.height, info.rate, info.frames) == (64, 64, FPS, FRAMES)
    assert _audio_packets(out) == _audio_packets(clip)
    assert upscale_cmd.run(["upscale", "--model", "realesr-animevideov3-x2", str(tmp_path / "none.mp4"), "-o",
                            str(out)]) == 2
    assert "jaxgen: error:" in capsys.readouterr().err


def test_stylize_command_on_a_video(clip, tmp_path):
    """--method fast with official-format TransformerNet weights (random values, written by flax_to_torch)."""
    model = build("transformer_net")
    rng = np.random.default_rng(0)
    params = unflatten_dict({p: (0.05 * rng.standard_normal(s)).astype(d)
                             for p, (s, d) in model_param_shapes("transformer_net", model).items()})
    weights = tmp_path / "net.npz"
    save_state_dict(weights, flax_to_torch("transformer_net", params, model=model))
    out = tmp_path / "styled.mp4"
    assert stylize_cmd.run(["stylize", "--method", "fast", "--weights", str(weights), str(clip), "-o", str(out),
                            "-q"]) == 0
    info = video.probe(out)
    assert (info.width, info.height, info.rate, info.frames, info.has_audio) == (32, 32, FPS, FRAMES, True)
    with pytest.raises(SystemExit) as e:  # run_guarded: exit 2 with one line
        stylize_cmd.run(["stylize", "--method", "gatys", "--style", str(weights), str(clip), "-o", str(out)])
    assert e.value.code == 2


def test_audio_the_container_cannot_hold_is_reencoded(clip, tmp_path):
    """AAC cannot go into WebM: the audio is re-encoded to Opus, with the same duration."""
    out = video.transcode(clip, tmp_path / "v.webm", lambda x: x, video.VideoOptions(codec="libvpx-vp9", crf=30),
                          progress=False)

    def seconds(path: Path) -> tuple[float, str]:
        with av.open(str(path)) as c:
            a = c.streams.audio[0]
            n = sum(f.samples for p in c.demux(a) for f in p.decode())
            return n / a.codec_context.sample_rate, a.codec_context.name

    (got, codec), (want, _) = seconds(out), seconds(clip)
    assert codec == "opus" and abs(got - want) < 0.03
    assert video.probe(out).frames == FRAMES


def test_a_clip_longer_than_the_encoder_delay_encodes(tmp_path):
    """Frames after the first muxed packet keep their own time base: the mp4 muxer changes the stream's to
    1/15360, and frame numbers read in it collapsed to equal timestamps (libx264 EINVAL after ~40 frames; the
    10-second acceptance clip failed while the 4-frame test clips passed)."""
    src = video.pan_clip(tmp_path / "in.mp4", load_sample("chelsea"), size=(16, 24), frames=90, fps=30)
    out = video.transcode(src, tmp_path / "out.mp4", lambda f: f, video.VideoOptions(), label="identity")
    a, b = video.probe(src), video.probe(out)
    assert b.frames == a.frames == 90 and b.rate == a.rate
