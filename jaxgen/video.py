"""Video in, video out for ``jaxgen upscale`` and ``jaxgen stylize``: every frame through an image function.

Decoding and encoding use PyAV (``pip install 'jaxgen[video]'``; BSD-3-Clause, its wheels ship their own FFmpeg
(LGPL/GPL build with libx264, libx265, libvpx, SVT-AV1), so no system FFmpeg is needed).

:func:`transcode` (``src`` -> ``dst`` with ``frame_fn``):

* streamed: one decoded frame at a time goes through ``frame_fn`` (float32 ``[H,W,3]`` RGB in ``[0,1]`` ->
  float ``[H',W',3]``) into the encoder; memory does not grow with the length;
* the frame count is kept (every decoded frame is written, in order) and so is the frame rate (the input's
  average rate; frame ``i`` gets the time ``i / rate``), the first audio stream is copied packet for packet (or,
  when the output container cannot hold its codec, re-encoded to AAC, or Opus for .webm), other streams are
  dropped;
* resumable: frames are encoded in segments of ``segment_frames`` frames, each a separate file in
  ``<dst>.parts/`` written atomically (``seg_<first frame>_<count>.mp4`` appears only when complete), with a
  ``manifest.json`` of the settings; a rerun with the same settings skips the finished segments (their frames
  are decoded but not processed again) and the final mux joins the segments' packets (same encoder settings,
  so the same stream parameters) with the audio, then removes ``<dst>.parts``;
* progress: a tqdm bar in frames with frames/s and the ETA (the frame count from the container, else duration x
  rate);
* options (:class:`VideoOptions`): ``codec`` (``libx264`` default, any FFmpeg encoder: ``libx265``,
  ``libvpx-vp9``, ``libsvtav1``, ``ffv1``, ...), ``crf`` (quality: lower is better; x264 / x265 / vpx / SVT-AV1),
  ``preset``, ``pix_fmt`` (default ``yuv420p``: odd output sides are cropped by one pixel to even, as 4:2:0 needs);
* a file that is not a readable video (missing, not a container, no video stream, an encoder FFmpeg lacks) ->
  one ``ValueError`` line naming the file.

Used by ``jaxgen.commands.upscale`` / ``stylize`` when the input is one file with a video extension
(:data:`VIDEO_EXTENSIONS`).
"""

from __future__ import annotations

import argparse
import dataclasses
import fractions
import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
from tqdm import tqdm

__all__ = ["VIDEO_EXTENSIONS", "VideoInfo", "VideoOptions", "add_arguments", "is_video", "options_from_args",
           "pan_clip", "probe", "transcode"]

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".ts", ".gif")
SEGMENT_FRAMES = 240
SEGMENT_FORMAT = "mp4"  # keeps exact per-frame time bases and every packet's pts / dts

FrameFn = Callable[[np.ndarray], np.ndarray]


@dataclasses.dataclass(frozen=True)
class VideoOptions:
    codec: str = "libx264"
    crf: int | None = 18
    preset: str | None = "medium"
    pix_fmt: str = "yuv420p"
    segment_frames: int = SEGMENT_FRAMES
    audio: bool = True


def is_video(inputs: list[str] | str) -> bool:
    """Whether the command input is one video file (by extension)."""
    items = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    return len(items) == 1 and Path(items[0]).suffix.lower() in VIDEO_EXTENSIONS and not Path(items[0]).is_dir()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The video options of ``jaxgen upscale`` / ``stylize`` (used when the input is a video file)."""
    g = parser.add_argument_group("video (input IN.mp4 / .mkv / .mov / ... -o OUT.mp4)")
    g.add_argument("--codec", default="libx264", help="video encoder (libx264, libx265, libvpx-vp9, ffv1, ...)")
    g.add_argument("--crf", type=int, default=18, help="quality: constant rate factor, lower = better (default 18)")
    g.add_argument("--preset", default="medium", help="encoder speed preset (x264/x265; default medium)")
    g.add_argument("--pix-fmt", default="yuv420p", help="output pixel format (default yuv420p)")
    g.add_argument("--no-audio", dest="audio", action="store_false", help="drop the audio instead of copying it")
    g.add_argument("--segment-frames", type=int, default=SEGMENT_FRAMES,
                   help=f"frames per resumable segment (default {SEGMENT_FRAMES})")


def options_from_args(args: argparse.Namespace) -> VideoOptions:
    if args.segment_frames < 1:
        raise ValueError(f"--segment-frames {args.segment_frames}: expected at least 1")
    return VideoOptions(codec=args.codec, crf=args.crf, preset=args.preset, pix_fmt=args.pix_fmt,
                        segment_frames=args.segment_frames, audio=args.audio)


def _av() -> Any:
    try:
        import av  # optional dependency (jaxgen[video])
    except ImportError:
        raise ValueError("video input needs PyAV: pip install 'jaxgen[video]' (or pip install av)") from None
    return av


def _open(src: Path) -> Any:
    av = _av()
    if not src.is_file():
        raise ValueError(f"{src}: no such video file")
    try:
        container = av.open(str(src))
    except (av.error.FFmpegError, OSError, ValueError) as e:
        raise ValueError(f"{src}: not a readable video ({e})") from None
    if not container.streams.video:
        container.close()
        raise ValueError(f"{src}: has no video stream")
    return container


@dataclasses.dataclass(frozen=True)
class VideoInfo:
    width: int
    height: int
    rate: fractions.Fraction
    frames: int  # 0 when unknown
    has_audio: bool


def probe(src: str | os.PathLike) -> VideoInfo:
    """Size, frame rate, frame count (container's or duration x rate; 0 if unknown) and audio presence."""
    src = Path(src)
    with _open(src) as c:
        v = c.streams.video[0]
        rate = v.average_rate or v.guessed_rate or fractions.Fraction(25)
        n = int(v.frames or 0)
        if not n and v.duration and v.time_base:
            n = int(round(float(v.duration * v.time_base * rate)))
        elif not n and c.duration:
            n = int(round(c.duration / 1e6 * float(rate)))
        return VideoInfo(v.codec_context.width, v.codec_context.height, fractions.Fraction(rate), n,
                         bool(c.streams.audio))


def _frames(src: Path) -> Iterator[np.ndarray]:
    """Decoded frames as uint8 RGB ``[H,W,3]``, in order."""
    av = _av()
    with _open(src) as c:
        stream = c.streams.video[0]
        stream.thread_type = "AUTO"
        try:
            for frame in c.decode(stream):
                yield frame.to_ndarray(format="rgb24")
        except av.error.FFmpegError as e:
            raise ValueError(f"{src}: decoding failed ({e})") from None


def _to_uint8(y: np.ndarray, even: bool) -> np.ndarray:
    y = np.asarray(y, np.float32)
    if y.ndim != 3 or y.shape[-1] != 3:
        raise ValueError(f"the frame function returned shape {y.shape}; expected [H,W,3]")
    if even:
        y = y[: y.shape[0] // 2 * 2, : y.shape[1] // 2 * 2]
    return np.clip(np.round(y * 255.0), 0, 255).astype(np.uint8)


def _encode_segment(parts: Path, first: int, frames: Iterator[np.ndarray], rate: fractions.Fraction,
                    opts: VideoOptions) -> Path | None:
    """Encode ``frames`` (uint8 RGB, consumed one at a time) into ``parts/seg_<first>_<count>.mp4`` (video only),
    renamed into place only when complete; ``None`` when ``frames`` is empty."""
    av = _av()
    tmp = parts / f"seg_{first:08d}.tmp"
    n = 0
    try:
        with av.open(str(tmp), "w", format=SEGMENT_FORMAT) as out:
            stream = None
            for rgb in frames:
                if stream is None:
                    try:
                        stream = out.add_stream(opts.codec, rate=rate)
                    except (av.error.FFmpegError, ValueError) as e:
                        raise ValueError(f"--codec {opts.codec}: not an encoder this FFmpeg has ({e})") from None
                    stream.width, stream.height = rgb.shape[1], rgb.shape[0]
                    stream.pix_fmt = opts.pix_fmt
                    time_base = 1 / fractions.Fraction(rate)  # the frames' own: the muxer changes the stream's
                    stream.time_base = time_base
                    options = {}
                    if opts.crf is not None and opts.codec not in ("ffv1", "mpeg4"):
                        options["crf"] = str(opts.crf)
                    if opts.preset and opts.codec in ("libx264", "libx265"):
                        options["preset"] = opts.preset
                    if opts.codec in ("libvpx-vp9", "libvpx") and opts.crf is not None:
                        options["b"] = "0"
                    stream.options = options
                frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
                frame.pts = n
                # Not stream.time_base: after the first packet the mp4 muxer sets it to its own (1/15360), and
                # frame numbers read in that unit collapse to equal timestamps (libx264: EINVAL after ~40 frames).
                frame.time_base = time_base
                for packet in stream.encode(frame):
                    out.mux(packet)
                n += 1
            if stream is not None:
                for packet in stream.encode():
                    out.mux(packet)
        if n == 0:
            return None
        path = parts / f"seg_{first:08d}_{n}.{SEGMENT_FORMAT}"
        tmp.replace(path)
        return path
    except av.error.FFmpegError as e:
        raise ValueError(f"encoding with {opts.codec} failed ({e})") from None
    finally:
        tmp.unlink(missing_ok=True)


def _manifest(src: Path, opts: VideoOptions, label: str) -> dict[str, Any]:
    st = src.stat()
    return {"source": str(src.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns, "label": label,
            "options": dataclasses.asdict(opts)}


def _mux(dst: Path, segments: list[Path], src: Path, rate: fractions.Fraction, opts: VideoOptions) -> None:
    """Join the segments' video packets (timestamps offset by each segment's first frame) with ``src``'s first
    audio stream into ``dst`` (atomically)."""
    av = _av()
    tmp = dst.with_name(f".{dst.name}.tmp{dst.suffix}")
    try:
        with av.open(str(tmp), "w") as out:
            with av.open(str(segments[0])) as first:
                vout = out.add_stream_from_template(first.streams.video[0])
            audio_in = None
            src_c = av.open(str(src)) if opts.audio else None
            try:
                if src_c is not None and src_c.streams.audio:
                    audio_in = src_c.streams.audio[0]
                    try:
                        aout = out.add_stream_from_template(audio_in)
                        reencode = False
                    except (av.error.FFmpegError, ValueError):  # the container cannot hold the codec
                        codec = "libopus" if dst.suffix.lower() == ".webm" else "aac"
                        try:
                            aout = out.add_stream(codec, rate=48000 if codec == "libopus" else audio_in.rate)
                        except (av.error.FFmpegError, ValueError) as e:
                            raise ValueError(f"{dst}: cannot store the audio of {src} ({e}); use --no-audio or "
                                             "another output format") from None
                        reencode = True
                # Segments may start with different reorder delays (a short last segment has fewer B-frames):
                # decode timestamps are rewritten as (packet number - the largest delay) frames, so they advance
                # one frame per packet across the joins and never pass the (shifted) presentation times.
                delay = max(_first_dts_frames(seg, rate) for seg in segments)
                offset, number = 0, 0
                for seg in segments:
                    with av.open(str(seg)) as c:
                        vin = c.streams.video[0]
                        tick = 1 / rate / vin.time_base  # one frame in the segment's time base (exact)
                        for packet in c.demux(vin):
                            if packet.dts is None or packet.size == 0:  # the demuxer's final flush packet
                                continue
                            packet.pts = None if packet.pts is None else packet.pts + int(offset * tick)
                            packet.dts = int((number - delay) * tick)
                            packet.stream = vout
                            out.mux(packet)
                            number += 1
                    offset += _segment_length(seg)
                if audio_in is not None:
                    for packet in src_c.demux(audio_in):
                        if reencode:
                            for frame in packet.decode():
                                frame.pts = None
                                for p in aout.encode(frame):
                                    out.mux(p)
                        elif packet.dts is not None:
                            packet.stream = aout
                            out.mux(packet)
                    if reencode:
                        for p in aout.encode():
                            out.mux(p)
            finally:
                if src_c is not None:
                    src_c.close()
        tmp.replace(dst)
    except av.error.FFmpegError as e:
        raise ValueError(f"{dst}: writing the video failed ({e})") from None
    finally:
        tmp.unlink(missing_ok=True)


def _first_dts_frames(seg: Path, rate: fractions.Fraction) -> int:
    """The reorder delay of a segment: minus its first decode timestamp, in frames."""
    av = _av()
    with av.open(str(seg)) as c:
        vin = c.streams.video[0]
        for packet in c.demux(vin):
            if packet.dts is not None and packet.size:
                return max(0, -int(round(packet.dts * vin.time_base * rate)))
    return 0


def _segment_length(seg: Path) -> int:
    return int(seg.stem.split("_")[2])


def transcode(src: str | os.PathLike, dst: str | os.PathLike, frame_fn: FrameFn,
              opts: VideoOptions = VideoOptions(), *, label: str = "", progress: bool = True) -> Path:
    """``src`` video -> ``dst`` with every frame mapped by ``frame_fn`` (see the module docstring). ``label``
    identifies the processing (e.g. the model name) in the resume manifest: a rerun with another label or
    other options starts over."""
    src, dst = Path(src), Path(dst)
    info = probe(src)
    if dst.suffix.lower() not in VIDEO_EXTENSIONS:
        raise ValueError(f"-o {dst}: expected a video file name ({', '.join(VIDEO_EXTENSIONS)})")
    dst.parent.mkdir(parents=True, exist_ok=True)
    parts = dst.with_name(dst.name + ".parts")
    manifest = _manifest(src, opts, label)
    mf = parts / "manifest.json"
    if parts.is_dir() and (not mf.is_file() or json.loads(mf.read_text()) != manifest):
        shutil.rmtree(parts)  # another input or other settings: the old segments do not apply
    parts.mkdir(exist_ok=True)
    mf.write_text(json.dumps(manifest))
    done = {int(p.stem.split("_")[1]): p for p in parts.glob(f"seg_*_*.{SEGMENT_FORMAT}")}
    even = opts.pix_fmt.startswith(("yuv420", "yuvj420", "nv12"))
    seg_n = opts.segment_frames
    bar = tqdm(total=info.frames or None, unit="frame", desc=f"video {src.name}", disable=not progress or None)
    segments: list[Path] = []
    frames = _frames(src)
    index = 0
    try:
        while True:
            first = index
            if first in done:  # a finished segment: skip its frames (decoded, not processed)
                length = _segment_length(done[first])
                skipped = sum(1 for _ in zip(range(length), frames))
                if skipped != length:
                    raise ValueError(f"{src}: has fewer frames than the finished segment {done[first].name} "
                                     f"expects; delete {parts} and rerun")
                segments.append(done[first])
                index += length
                bar.update(length)
                continue
            def processed(first: int = first) -> Iterator[np.ndarray]:
                for _, rgb in zip(range(seg_n), frames):
                    yield _to_uint8(frame_fn(rgb.astype(np.float32) / 255.0), even)
                    bar.update(1)

            path = _encode_segment(parts, first, processed(), info.rate, opts)
            if path is None:
                break
            segments.append(path)
            length = _segment_length(path)
            index += length
            if length < seg_n:
                break
    finally:
        bar.close()
        frames.close()
    if not segments:
        raise ValueError(f"{src}: no video frames decoded")
    _mux(dst, segments, src, info.rate, opts)
    shutil.rmtree(parts)
    return dst


def pan_clip(dst: str | os.PathLike, photo: np.ndarray, *, size: tuple[int, int] = (32, 32), frames: int = 6,
             fps: int = 10, tone_hz: float | None = 440.0, codec: str = "libx264") -> Path:
    """A short clip panning left to right across ``photo`` (uint8 or float ``[H,W,3]``), ``size = (h, w)`` per
    frame, with a sine tone (AAC, 16 kHz mono; ``tone_hz=None``: no audio) lasting as long as the video: the
    built-in demo / test clip."""
    av = _av()
    img = np.asarray(photo)
    img = np.clip(np.round(img * 255), 0, 255).astype(np.uint8) if img.dtype != np.uint8 else img
    h, w = size
    if img.shape[0] < h or img.shape[1] < w:
        raise ValueError(f"pan_clip: photo {img.shape[:2]} is smaller than the frame size {size}")
    dst = Path(dst)
    xs = np.linspace(0, img.shape[1] - w, frames).round().astype(int)
    top = (img.shape[0] - h) // 2
    with av.open(str(dst), "w") as out:
        v = out.add_stream(codec, rate=fps)
        v.width, v.height, v.pix_fmt = w, h, "yuv420p"
        a = out.add_stream("aac", rate=16000) if tone_hz else None
        if a is not None:
            a.layout = "mono"
        for i, x in enumerate(xs):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img[top : top + h, x : x + w, :3]), format="rgb24")
            frame.pts = i
            for p in v.encode(frame):
                out.mux(p)
        for p in v.encode():
            out.mux(p)
        if a is not None:
            n = int(16000 * frames / fps)
            t = np.arange(n) / 16000.0
            tone = (0.3 * np.sin(2 * np.pi * tone_hz * t)).astype(np.float32)
            for start in range(0, n, 1024):
                chunk = tone[None, start : start + 1024]
                af = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
                af.sample_rate = 16000
                af.pts = start
                for p in a.encode(af):
                    out.mux(p)
            for p in a.encode():
                out.mux(p)
    return dst
