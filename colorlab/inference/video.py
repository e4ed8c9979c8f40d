"""Films in, films out, one frame at a time: PyAV decoding and encoding, audio kept, nothing partial left behind.

* **Probe first.** :func:`probe` opens the container and demuxes (does not decode) the video packets once:
  it refuses a file that is not a video, has no video stream, has a variable frame rate, is truncated
  (fewer packets than its declared duration holds) or is longer than a cap, each with a one-line reason.
* **Stream.** :func:`transcode` demuxes video and audio together; each video frame is decoded, handed to a
  frame function, encoded and dropped, and audio packets are copied as they are (no re-encoding). The loop
  holds one frame (plus what the frame function keeps), so memory does not grow with the film's length.
* **Same film, new colours.** The output has the input's frame rate, frame count (so its duration), audio
  track and container; odd sizes are kept exactly (4:4:4 chroma where 4:2:0 would need even sides).
* **Never partial, never overwritten.** Frames go to a hidden temporary file beside the target; only a
  complete film is linked to the first free name (``film-1.mp4`` when ``film.mp4`` is taken), and the
  temporary file is removed whatever happens.
"""

from __future__ import annotations

import heapq
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from tqdm import tqdm

from colorlab.inference.film_options import MAX_MINUTES
from colorlab.inference.pictures import free_path

MIN_SIDE = 16
# Encoder per container suffix: (codec, options). x264 at crf 16 is visually lossless for colour work.
# (H.264 in AVI too: FFmpeg writes and reads it, and MPEG-4 Part 2 cannot keep an odd size.)
_ENCODERS = {".webm": ("libvpx-vp9", {"crf": "24", "b": "0", "deadline": "realtime", "cpu-used": "8"})}
_X264 = ("libx264", {"crf": "16", "preset": "fast"})
# Timestamps may differ from k/fps by container rounding (33 vs 34 ms steps at 29.97 fps in Matroska).
_VFR_TOLERANCE = 0.25
# B-frames put packets at most a few places out of display order.
_REORDER = 16

FrameFunction = Callable[[np.ndarray], np.ndarray]


class VideoError(ValueError):
    """A film that cannot be used, with a message for the person who gave it."""


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe` learnt about a film."""

    path: Path
    width: int
    height: int
    fps: Fraction
    frames: int
    audio: bool

    @property
    def seconds(self) -> float:
        """Duration of the video stream."""
        return float(self.frames / self.fps)

    def describe(self) -> str:
        """One line for messages: ``640x360, 25 fps, 250 frames (10.0 s), audio``."""
        audio = "audio" if self.audio else "no audio"
        return f"{self.width}x{self.height}, {float(self.fps):g} fps, {self.frames} frames ({self.seconds:.1f} s), {audio}"


def _open(path: Path) -> av.container.InputContainer:
    if not path.is_file():
        raise VideoError(f"file not found: {path}")
    try:
        return av.open(str(path), metadata_errors="ignore")
    except av.FFmpegError as exc:
        raise VideoError(f"not a readable video ({exc.strerror or type(exc).__name__})") from exc


def probe(path: str | os.PathLike, max_minutes: float = MAX_MINUTES) -> VideoInfo:
    """Check a film before any frame is decoded; raises :class:`VideoError` with the reason it is unusable."""
    path = Path(path)
    with _open(path) as container:
        if not container.streams.video:
            kinds = ", ".join(sorted({s.type for s in container.streams})) or "nothing"
            raise VideoError(f"no video stream (the file holds {kinds})")
        stream = container.streams.video[0]
        width, height = stream.codec_context.width, stream.codec_context.height
        fps = stream.average_rate or stream.guessed_rate
        if not fps or not width or not height:
            raise VideoError("not a readable video (no frame size or frame rate in its header)")
        if min(width, height) < MIN_SIDE:
            raise VideoError(f"{width}x{height} is too small (at least {MIN_SIDE} px a side)")
        declared = _declared_seconds(container, stream)
        if declared is not None and declared > max_minutes * 60:
            raise VideoError(f"{declared / 60:.1f} minutes is over the {max_minutes:g} minute limit")
        frames = _count_packets(container, stream, fps)
        audio = bool(container.streams.audio)
    if frames == 0:
        raise VideoError("no frames in the video stream")
    if frames / fps > max_minutes * 60:
        raise VideoError(f"{float(frames / fps) / 60:.1f} minutes is over the {max_minutes:g} minute limit")
    if declared is not None and frames + 2 < declared * fps:  # 2 frames of slack for header rounding
        raise VideoError(f"truncated: {frames} frames ({float(frames / fps):.1f} s) of the {declared:.1f} s "
                         "its header declares")  # fmt: skip
    return VideoInfo(path, width, height, Fraction(fps), frames, audio)


def _declared_seconds(container: av.container.InputContainer, stream: av.VideoStream) -> float | None:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    return container.duration / av.time_base if container.duration else None


def _count_packets(container: av.container.InputContainer, stream: av.VideoStream, fps: Fraction) -> int:
    """Video packets in the file (demuxed, not decoded); raises for a variable frame rate.

    Packets come in decoding order; a small heap puts their timestamps back in display order (B-frames
    reorder only a few), and every step between consecutive timestamps must be one frame period.
    """
    frames, period, pending, last = 0, 1 / fps, [], None

    def check(time: Fraction) -> None:
        if last is not None and abs(time - last - period) > _VFR_TOLERANCE * period:
            raise VideoError(f"variable frame rate (a frame lasts {float(time - last) * 1e3:.1f} ms, not "
                             f"{float(period) * 1e3:.1f} ms): convert it to a constant rate first, e.g. "
                             "ffmpeg -i IN -fps_mode cfr OUT")  # fmt: skip

    try:
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            frames += 1
            if packet.pts is not None and packet.time_base:
                heapq.heappush(pending, packet.pts * packet.time_base)
            if len(pending) > _REORDER:
                time = heapq.heappop(pending)
                check(time)
                last = time
    except av.FFmpegError as exc:
        raise VideoError(
            f"damaged video after {frames} frames ({exc.strerror or type(exc).__name__})"
        ) from exc
    while pending:
        time = heapq.heappop(pending)
        check(time)
        last = time
    return frames


def read_frames(path: str | os.PathLike) -> Iterator[np.ndarray]:
    """The film's frames as uint8 RGB ``(H, W, 3)``, one at a time (use :func:`probe` first)."""
    with _open(Path(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        try:
            for frame in container.decode(stream):
                yield frame.to_ndarray(format="rgb24")
        except av.FFmpegError as exc:
            raise VideoError(f"damaged video ({exc.strerror or type(exc).__name__})") from exc


class VideoWriter:
    """Encode frames to a hidden temporary file beside ``target``; :meth:`finish` links it to a free name.

    Args:
        target: the wanted output path; its suffix picks the container and codec.
        size: ``(height, width)`` of the frames that will be written.
        fps: frame rate.
        audio: an input audio stream whose packets :meth:`mux_audio` will copy, or None.
    """

    def __init__(
        self, target: Path, size: tuple[int, int], fps: Fraction, audio: av.AudioStream | None = None
    ):
        self.target = target
        target.parent.mkdir(parents=True, exist_ok=True)
        self.temporary = target.with_name(f".{target.stem}.partial-{os.getpid()}{target.suffix}")
        self.container = av.open(str(self.temporary), "w")
        try:
            codec, options = _ENCODERS.get(target.suffix.lower(), _X264)
            self.video = self.container.add_stream(codec, rate=fps)
            self.video.height, self.video.width = size
            # 4:2:0 halves chroma in both directions, so it needs even sides; 4:4:4 keeps an odd size exactly.
            even = size[0] % 2 == 0 and size[1] % 2 == 0
            self.video.pix_fmt = "yuv420p" if even else "yuv444p"
            self.video.options = options
            self.audio = self.container.add_stream_from_template(audio) if audio is not None else None
        except (av.FFmpegError, ValueError) as exc:
            self.abort()
            raise VideoError(f"cannot write {target.name}: {exc}") from exc
        self.frames = 0

    def write(self, rgb: np.ndarray) -> None:
        """Encode one uint8 RGB frame ``(H, W, 3)``."""
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame.pts = self.frames
        frame.time_base = 1 / Fraction(self.video.codec_context.framerate)
        self.container.mux(self.video.encode(frame))
        self.frames += 1

    def mux_audio(self, packet: av.Packet) -> None:
        """Copy one audio packet from the input as it is."""
        if packet.dts is None or self.audio is None:  # the demuxer's flush packet
            return
        packet.stream = self.audio
        self.container.mux(packet)

    def finish(self) -> Path:
        """Flush the encoder, close the file and give it the first free name; returns the path written."""
        self.container.mux(self.video.encode())
        self.container.close()
        while True:
            final = free_path(self.target)
            try:
                os.link(self.temporary, final)  # fails if the name appeared meanwhile: never replaces a file
                break
            except FileExistsError:
                continue
        self.temporary.unlink()
        return final

    def abort(self) -> None:
        """Close and delete the temporary file (after an error)."""
        try:
            self.container.close()
        except av.FFmpegError:
            pass
        self.temporary.unlink(missing_ok=True)


def transcode(
    info: VideoInfo,
    target: Path,
    frame_function: FrameFunction,
    scale: int = 1,
    progress: bool = True,
    desc: str = "frames",
) -> Path:
    """Decode ``info.path``, pass every frame through ``frame_function``, encode to ``target`` with the audio.

    ``frame_function`` maps uint8 RGB ``(H, W, 3)`` to uint8 RGB ``(scale*H, scale*W, 3)``. Returns the path
    written (``target`` or the next free name). On any error the partial file is removed and the error
    raised; a frame count that differs from the probe's is an error (a damaged stream).
    """
    with _open(info.path) as container:
        video = container.streams.video[0]
        video.thread_type = "AUTO"
        audio = container.streams.audio[0] if container.streams.audio else None
        writer = VideoWriter(target, (info.height * scale, info.width * scale), info.fps, audio)
        bar = tqdm(total=info.frames, desc=desc, unit="frame", disable=not progress, file=sys.stderr)
        try:
            for packet in container.demux(*[s for s in (video, audio) if s is not None]):
                if packet.stream.type == "audio":
                    writer.mux_audio(packet)
                    continue
                for frame in packet.decode():
                    writer.write(frame_function(frame.to_ndarray(format="rgb24")))
                    bar.update(1)
            if writer.frames != info.frames:
                raise VideoError(f"damaged video: decoded {writer.frames} of its {info.frames} frames")
            return writer.finish()
        except av.FFmpegError as exc:
            writer.abort()
            raise VideoError(f"damaged video after {writer.frames} frames ({exc.strerror or exc})") from exc
        except BaseException:
            writer.abort()
            raise
        finally:
            bar.close()


def write_video(frames: Iterator[np.ndarray], target: Path, fps: Fraction | int) -> Path:
    """Encode uint8 RGB frames (all of one size, no audio) to ``target`` or the next free name; returns it."""
    writer = None
    try:
        for frame in frames:
            writer = writer or VideoWriter(target, frame.shape[:2], Fraction(fps))
            writer.write(frame)
        if writer is None:
            raise VideoError("no frames to write")
        return writer.finish()
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
