"""Films: round trip (fps, size, frames, audio), streaming memory, stabilisation, scene cuts, flicker metrics,
synthetic clips, bad input (clear message, no output), and the ``colorize`` / ``evaluate`` commands on clips."""

from __future__ import annotations

import gc
import math
import weakref
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import torch

from colorlab.data.clips import Shot, camera, clip_frames
from colorlab.flicker import FlickerMeter, InputFlow, frame_lab, js_divergence, masked_warp_error
from colorlab.flow import trusted_flow
from colorlab.inference.films import colorize_films, colorizer_film, picture_film
from colorlab.inference.pipeline import Colorizer
from colorlab.inference.stabilize import Stabilizer
from colorlab.inference.video import VideoError, probe, read_frames, transcode, write_video

# ---- helpers ------------------------------------------------------------------------------------------


def smooth_photo(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A textured colour picture: random blobs blurred (flow has something to hold on to)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8)
    big = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    noise = rng.integers(-20, 21, (height, width, 1))
    return np.clip(big.astype(int) + noise, 0, 255).astype(np.uint8)


def panning_frames(
    n: int, size: tuple[int, int] = (48, 64), seed: int = 0, step: int = 1
) -> list[np.ndarray]:
    """``n`` frames of a camera panning ``step`` px a frame over a textured picture."""
    height, width = size
    photo = smooth_photo(height, width + n * step, seed)
    return [np.ascontiguousarray(photo[:, i * step : i * step + width]) for i in range(n)]


def write_clip(
    path: Path, frames: list[np.ndarray], fps: int = 25, audio: bool = True, pts=None, **kw
) -> Path:
    """Encode frames (and a sine tone as long as the film) with PyAV."""
    out = av.open(str(path), "w", **kw)
    stream = out.add_stream("libx264", rate=Fraction(fps))
    stream.height, stream.width = frames[0].shape[:2]
    stream.pix_fmt = "yuv420p" if stream.height % 2 == 0 and stream.width % 2 == 0 else "yuv444p"
    tone = out.add_stream("aac", rate=16000) if audio else None
    for i, rgb in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        frame.pts, frame.time_base = (i if pts is None else pts[i]), Fraction(1, fps)
        out.mux(stream.encode(frame))
    out.mux(stream.encode())
    if tone is not None:
        samples = np.sin(np.arange(16000 * len(frames) // fps) * 0.1).astype(np.float32)[None]
        sound = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        sound.sample_rate, sound.pts = 16000, 0
        out.mux(tone.encode(sound))
        out.mux(tone.encode())
    out.close()
    return path


def files_in(folder: Path) -> list[Path]:
    """Every file under a folder, hidden ones included."""
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def identity(picture) -> np.ndarray:
    return picture.rgb


# ---- round trip and streaming ---------------------------------------------------------------------------


def test_round_trip_keeps_fps_size_frames_and_audio(tmp_path):
    source = write_clip(tmp_path / "film.mp4", panning_frames(20), fps=25)
    info = probe(source)
    assert (info.width, info.height, info.fps, info.frames, info.audio) == (64, 48, 25, 20, True)
    written = transcode(info, tmp_path / "out" / "film.mp4", lambda rgb: rgb, progress=False)
    out = probe(written)
    assert (out.width, out.height, out.fps, out.frames, out.audio) == (64, 48, 25, 20, True)
    with av.open(str(source)) as a, av.open(str(written)) as b:
        audio_in = [bytes(p) for p in a.demux(a.streams.audio[0]) if p.size]
        audio_out = [bytes(p) for p in b.demux(b.streams.audio[0]) if p.size]
        assert audio_out == audio_in, "audio packets are copied as they are"
    first_in, first_out = next(read_frames(source)), next(read_frames(written))
    assert np.abs(first_in.astype(int) - first_out.astype(int)).mean() < 3, (
        "re-encoding at crf 16 is near-lossless"
    )
    assert files_in(tmp_path / "out") == [written], "no temporary file is left"


def test_odd_size_is_kept_exactly(tmp_path):
    source = write_clip(tmp_path / "odd.mkv", panning_frames(6, (21, 33)), audio=False)
    written = transcode(probe(source), tmp_path / "out" / "odd.mkv", lambda rgb: rgb, progress=False)
    assert (probe(written).height, probe(written).width, probe(written).frames) == (21, 33, 6)


class TrackedFrame(np.ndarray):
    """An ndarray that can be weakly referenced: counts how many frames are still alive."""


class Alive:
    """Weak references to every frame seen; ``count()`` says how many are still held somewhere."""

    def __init__(self) -> None:
        self.refs: list[weakref.ref] = []

    def track(self, rgb: np.ndarray) -> TrackedFrame:
        tracked = rgb.view(TrackedFrame)
        self.refs.append(weakref.ref(tracked))
        return tracked

    def count(self) -> int:
        gc.collect()
        return sum(ref() is not None for ref in self.refs)


@pytest.mark.parametrize("suffix", [".webm", ".avi", ".mov", ".mkv"])
def test_every_container_keeps_an_odd_size_and_the_frame_count(tmp_path, suffix):
    frames = panning_frames(5, (21, 33))
    written = write_video(iter(frames), tmp_path / f"clip{suffix}", 25)
    info = probe(written)
    assert (info.width, info.height, info.frames, info.fps) == (33, 21, 5, 25)
    assert sum(1 for _ in read_frames(written)) == 5


def _most_frames_alive(source: Path, out: Path, window: int = 2) -> tuple[int, int]:
    """(most frames alive at once, longest stabiliser window) while a film goes through the loop."""
    alive, stabilizer, most = Alive(), Stabilizer(strength=0.8, window=window), [0, 0]

    def frame_function(rgb: np.ndarray) -> np.ndarray:
        result = alive.track(stabilizer(alive.track(rgb)))
        most[0] = max(most[0], alive.count())
        most[1] = max(most[1], len(stabilizer._history))
        return result

    transcode(probe(source), out, frame_function, progress=False)
    return most[0], most[1]


def test_memory_does_not_grow_with_the_films_length(tmp_path):
    """By design: the loop holds O(1) frames and the stabiliser at most ``window`` ab frames, at any length."""
    short = write_clip(tmp_path / "short.mp4", panning_frames(4, (48, 64)), audio=False)
    long = write_clip(tmp_path / "long.mp4", panning_frames(16, (48, 64)), audio=False)
    assert _most_frames_alive(short, tmp_path / "s.mp4") == _most_frames_alive(long, tmp_path / "l.mp4")
    frames, window = _most_frames_alive(long, tmp_path / "l2.mp4", window=3)
    assert frames <= 2 and window == 3
    # The check can fail: a frame function that keeps its frames is caught.
    alive, kept = Alive(), []
    transcode(
        probe(long), tmp_path / "leak.mp4", lambda rgb: kept.append(alive.track(rgb)) or rgb, progress=False
    )
    assert alive.count() == 16


# ---- stabilisation --------------------------------------------------------------------------------------


def flickering(frames: list[np.ndarray], seed: int = 0, amount: float = 12.0) -> list[np.ndarray]:
    """The frames with a random global ab shift each: what frame-by-frame colorization looks like."""
    from colorlab.inference.stabilize import lab_frame

    rng = np.random.default_rng(seed)
    out = []
    for rgb in frames:
        lab = frame_lab(rgb)
        lab[..., 1:] += rng.normal(0, amount, 2).astype(np.float32)
        out.append(lab_frame(lab))
    return out


def ab_warp_error(frames: list[np.ndarray], inputs: list[np.ndarray]) -> float:
    meter, flow = FlickerMeter(), InputFlow()
    for rgb, source in zip(frames, inputs):
        meter.update(rgb, flow(source))
    return meter.ab_warp_error


def test_stabilisation_halves_the_warp_error_of_a_flickering_clip():
    truth = panning_frames(16, (64, 80), step=2)
    predicted = flickering(truth)
    stabilizer = Stabilizer(strength=0.8, window=6)
    steady = [stabilizer(rgb) for rgb in predicted]
    before, after = ab_warp_error(predicted, truth), ab_warp_error(steady, truth)
    assert after < 0.5 * before, (before, after)
    assert stabilizer.cuts == []
    off = Stabilizer(strength=0.8, window=0)
    assert all(off(rgb) is rgb for rgb in predicted), "window 0 is off"


def test_scene_cut_resets_the_propagation():
    shot_a = panning_frames(6, (64, 80), seed=1)
    shot_b = [255 - f[::-1] for f in panning_frames(6, (64, 80), seed=2)]
    stabilizer = Stabilizer(strength=1.0, window=6)
    outputs = [stabilizer(rgb) for rgb in shot_a + shot_b]
    assert stabilizer.cuts == [6]
    # The first frame after the cut is its own prediction (only the Lab round trip differs).
    assert np.abs(outputs[6].astype(int) - shot_b[0].astype(int)).max() <= 2
    _, mask, cut = trusted_flow(
        cv2.cvtColor(shot_b[0], cv2.COLOR_RGB2GRAY), cv2.cvtColor(shot_a[-1], cv2.COLOR_RGB2GRAY)
    )
    assert cut and not mask.any()


def test_stabiliser_options_are_checked():
    with pytest.raises(ValueError, match="strength"):
        Stabilizer(strength=1.5)
    with pytest.raises(ValueError, match="window"):
        Stabilizer(window=-1)


# ---- metrics against hand-computed values ---------------------------------------------------------------


def test_warp_error_by_hand():
    current = np.full((4, 6, 3), 0.5, np.float32)
    previous = np.zeros((4, 6, 3), np.float32)
    mask = np.zeros((4, 6), bool)
    mask[:2] = True
    zero = np.zeros((4, 6, 2), np.float32)
    assert masked_warp_error(current, previous, zero, mask) == pytest.approx(3 * 0.25)
    # A known 1 px shift undone by the flow: no error where the shifted frame is defined.
    ramp = np.tile(np.arange(6, dtype=np.float32), (4, 1))[..., None]
    shifted = np.roll(ramp, 1, axis=1)
    flow = zero.copy()
    flow[..., 0] = 1.0
    inner = np.zeros((4, 6), bool)
    inner[:, :4] = True
    assert masked_warp_error(ramp, shifted, flow, inner) == pytest.approx(0.0)


def test_js_divergence_and_cdc_by_hand():
    assert js_divergence(np.array([1.0, 0]), np.array([0, 1.0])) == pytest.approx(math.log(2))
    assert js_divergence(np.array([3.0, 1]), np.array([3.0, 1])) == pytest.approx(0.0)
    assert js_divergence(np.array([0.5, 0.5]), np.array([1.0, 0])) == pytest.approx(0.215762, abs=1e-6)
    black, white = np.zeros((4, 4, 3), np.uint8), np.full((4, 4, 3), 255, np.uint8)
    meter = FlickerMeter()
    for rgb in [black, white] * 4:
        meter.update(rgb, None)
    # Distance 1: black vs white, JS = ln 2 in each channel; distances 2 and 4: the same frame, 0.
    assert meter.cdc == pytest.approx(math.log(2) / 3)
    steady = FlickerMeter()
    for _ in range(6):
        steady.update(black, None)
    assert steady.cdc == 0.0


# ---- synthetic clips ------------------------------------------------------------------------------------


def test_synthetic_clip_motion_is_exact_and_has_one_cut():
    photo_a, photo_b = smooth_photo(120, 160, 1), smooth_photo(120, 160, 2)
    frames = list(clip_frames([Shot(photo_a, "pan", 5), Shot(photo_b, "rotate", 5)], (48, 64)))
    assert len(frames) == 10 and [m["shot"] for _, m in frames] == [0] * 5 + [1] * 5
    matrix = np.array(frames[2][1]["matrix"])
    assert matrix.shape == (2, 3)
    start, end = camera((90, 120), (48, 64), "pan", 0.0), camera((90, 120), (48, 64), "pan", 1.0)
    assert end[0, 2] > start[0, 2] and np.allclose(start[:, :2], np.eye(2)), "a pan moves, without turning"
    with pytest.raises(ValueError, match="unknown motion"):
        camera((90, 120), (48, 64), "shake", 0.5)


def test_data_clips_command(tmp_path):
    from colorlab.commands.data import main

    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(2):
        cv2.imwrite(str(photos / f"p{i}.png"), smooth_photo(120, 160, i))
    main(["clips", str(photos), str(tmp_path / "clips"), "--count", "1", "--frames", "4", "--size", "64x48"])
    info = probe(tmp_path / "clips" / "clip_000.mp4")
    assert (info.width, info.height, info.frames) == (64, 48, 8)
    assert (tmp_path / "clips" / "clip_000.json").is_file()


# ---- bad input ------------------------------------------------------------------------------------------


def bad_films(folder: Path) -> dict[str, tuple[Path, str]]:
    """Bad films and the message each must give."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "text.mp4").write_text("not a film")
    full = write_clip(folder / "full.mp4", panning_frames(20), audio=False).read_bytes()
    (folder / "cut.mp4").write_bytes(full[: len(full) // 2])
    fast = write_clip(folder / "fast.mp4", panning_frames(20), audio=False, options={"movflags": "faststart"})
    (folder / "short.mp4").write_bytes(fast.read_bytes()[: fast.stat().st_size * 2 // 3])
    fast.unlink()
    (folder / "full.mp4").unlink()
    sound = av.open(str(folder / "sound.mp4"), "w")
    tone = sound.add_stream("aac", rate=16000)
    samples = av.AudioFrame.from_ndarray(np.zeros((1, 4000), np.float32), format="fltp", layout="mono")
    samples.sample_rate, samples.pts = 16000, 0
    sound.mux(tone.encode(samples))
    sound.mux(tone.encode())
    sound.close()
    write_clip(
        folder / "vfr.mkv", panning_frames(12), audio=False, pts=[0, 1, 2, 5, 6, 7, 10, 11, 12, 13, 14, 15]
    )
    write_clip(folder / "tiny.mp4", panning_frames(4, (8, 8)), audio=False)
    return {
        "text.mp4": "not a readable video",
        "cut.mp4": "not a readable video",
        "short.mp4": "truncated",
        "sound.mp4": "no video stream",
        "vfr.mkv": "variable frame rate",
        "tiny.mp4": "too small",
        "missing.mp4": "file not found",
    }


def test_bad_films_give_a_clear_message_and_no_output(tmp_path):
    expected = bad_films(tmp_path / "in")
    report = colorize_films([tmp_path / "in" / name for name in expected], [picture_film("m", identity)],
                            tmp_path / "out", progress=False, log=lambda m: None)  # fmt: skip
    for name, message in expected.items():
        reason = report.failed[tmp_path / "in" / name]
        assert message in reason and "\n" not in reason, (name, reason)
    assert report.written == [] and files_in(tmp_path / "out") == []


def test_a_film_over_the_length_cap_is_refused_before_decoding(tmp_path):
    source = write_clip(tmp_path / "film.mp4", panning_frames(25), audio=False)
    with pytest.raises(VideoError, match="over the 0.01 minute limit"):
        probe(source, max_minutes=0.01)


def test_taken_name_is_never_overwritten_and_a_failure_leaves_nothing(tmp_path):
    source = write_clip(tmp_path / "film.mp4", panning_frames(8), audio=False)
    out = tmp_path / "out"
    out.mkdir()
    (out / "film.mp4").write_bytes(b"precious")
    report = colorize_films([source], [picture_film("m", identity)], out, progress=False, log=lambda m: None)
    assert report.written == [out / "film-1.mp4"] and (out / "film.mp4").read_bytes() == b"precious"
    assert probe(out / "film-1.mp4").frames == 8

    calls = []

    def fails_midway(picture):
        calls.append(1)
        if len(calls) == 5:
            raise RuntimeError("model crashed")
        return picture.rgb

    report = colorize_films(
        [source], [picture_film("m", fails_midway)], out, progress=False, log=lambda m: None
    )
    assert "model crashed" in report.failed[source]
    assert sorted(p.name for p in files_in(out)) == ["film-1.mp4", "film.mp4"], (
        "no partial film, no temp file"
    )


# ---- commands -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.test_colorize import train_tiny_checkpoint

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WANDB_MODE", "disabled")
        return train_tiny_checkpoint(tmp_path_factory.mktemp("runs"), "tiny", 0)


def test_colorize_command_on_a_film_keeps_every_frames_l(ckpt, tmp_path):
    from colorlab.commands.colorize import main

    frames = panning_frames(10, (48, 64))
    source = write_clip(tmp_path / "film.mp4", frames)
    main([str(source), "--ckpt", str(ckpt), "-o", str(tmp_path / "out"), "--no-progress"])
    info = probe(tmp_path / "out" / "film.mp4")
    assert (info.width, info.height, info.frames, info.audio) == (64, 48, 10, True)
    for given, colorized in zip(read_frames(source), read_frames(tmp_path / "out" / "film.mp4")):
        l_in, l_out = frame_lab(given)[..., 0], frame_lab(colorized)[..., 0]
        assert np.abs(l_in - l_out).mean() < 1.5, "each frame keeps its own full-resolution L"


def test_restore_colorize_upscale_on_a_film(ckpt, tmp_path):
    from colorlab.commands.restore_colorize_upscale import main

    source = write_clip(tmp_path / "film.mp4", panning_frames(6, (48, 64)))
    main([str(source), "--ckpt", str(ckpt), "--factor", "2", "-o", str(tmp_path / "out"), "--no-progress"])
    info = probe(tmp_path / "out" / "film_x2.mp4")
    assert (info.width, info.height, info.frames, info.audio) == (128, 96, 6, True)


def test_evaluate_command_on_a_folder_of_clips(ckpt, tmp_path):
    from colorlab.commands.evaluate import main

    clips = tmp_path / "clips"
    clips.mkdir()
    write_clip(clips / "a.mp4", panning_frames(8, (48, 64), step=2), audio=False)
    gray = [
        np.repeat(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY)[..., None], 3, 2) for f in panning_frames(6, (48, 64))
    ]
    write_clip(clips / "b_old_film.mp4", gray, audio=False)
    result = main(["--ckpt", str(ckpt), "--data", str(clips), "-o", str(tmp_path / "eval"), "--no-progress"])
    old_film = result["clips"][str(clips / "b_old_film.mp4")]
    assert "truth (floor)" not in old_film and math.isnan(old_film["gray input (floor)"]["delta_e00"])
    rows = result["mean"]
    name = next(r for r in rows if r.endswith("stabilised")).removesuffix(" stabilised")
    assert {"gray input (floor)", "truth (floor)", name} <= set(rows)
    assert rows["truth (floor)"]["delta_e00"] == pytest.approx(0.0, abs=1e-3)
    for f in ("summary.md", "metrics.csv", "results.json", "strip.png", "flicker.png"):
        assert (tmp_path / "eval" / f).is_file(), f


class _FlickeringModel(torch.nn.Module):
    """ab follows L (so it moves with the scene) plus a random global shift per frame: frame-by-frame flicker."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(()))
        self.rng = torch.Generator().manual_seed(0)

    def predict_lab(self, L: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shift = torch.randn(1, 2, 1, 1, generator=self.rng) * 0.1
        return L, torch.cat([0.3 * L, -0.2 * L], 1) + shift + self.weight


def test_colorize_stabilises_the_models_ab_before_the_merge():
    truth = panning_frames(16, (64, 80), step=2)
    colorizer = Colorizer(_FlickeringModel(), side=None)
    film = colorizer_film(colorizer)
    plain = [film.frames(Stabilizer(window=0))(rgb) for rgb in truth]
    colorizer.module.rng.manual_seed(0)  # the same predictions again
    steady_frames = film.frames(Stabilizer(strength=0.8, window=6))
    steady = [steady_frames(rgb) for rgb in truth]
    before, after = ab_warp_error(plain, truth), ab_warp_error(steady, truth)
    assert after < 0.5 * before, (before, after)
    l_in, l_out = frame_lab(truth[5])[..., 0], frame_lab(steady[5])[..., 0]
    assert np.abs(l_in - l_out).mean() < 1.0, "the frame keeps its own L"


def test_photo_commands_start_without_the_video_extra():
    """PyAV and OpenCV are the optional ``video`` extra: the photo commands must not import them."""
    import subprocess
    import sys

    code = ("import sys, colorlab.commands.colorize, colorlab.commands.evaluate, colorlab.commands.data, "
            "colorlab.commands.restore_colorize_upscale; print('av' in sys.modules, 'cv2' in sys.modules)")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "False"]


# ---- a real film ------------------------------------------------------------------------------------------

REAL_CLIP = Path(__file__).parent / "data" / "clips" / "bigbuckbunny_excerpt.mp4"  # CC-BY 3.0, see its README


def test_a_real_film_goes_through_colorize_with_its_audio_and_every_frames_l(ckpt, tmp_path):
    from colorlab.commands.colorize import main

    main([str(REAL_CLIP), "--ckpt", str(ckpt), "-o", str(tmp_path / "out"), "--no-progress"])
    given, info = probe(REAL_CLIP), probe(tmp_path / "out" / REAL_CLIP.name)
    assert (info.width, info.height, info.fps, info.frames, info.audio) == (192, 108, given.fps, 40, True)
    for source, colorized in zip(read_frames(REAL_CLIP), read_frames(tmp_path / "out" / REAL_CLIP.name)):
        assert np.abs(frame_lab(source)[..., 0] - frame_lab(colorized)[..., 0]).mean() < 1.5


def test_stabilisation_halves_the_warp_error_on_a_real_film():
    """Real motion (a bunny, a swaying meadow): frame-by-frame colour flicker, turned gray, then stabilised."""
    truth = list(read_frames(REAL_CLIP))
    gray = [np.repeat(frame_lab(rgb)[..., :1] * 2.55, 3, axis=2).astype(np.uint8) for rgb in truth]
    predicted = flickering(truth, seed=3)
    stabilizer = Stabilizer(strength=0.8, window=6)
    steady = [stabilizer(rgb) for rgb in predicted]
    before, after = ab_warp_error(predicted, gray), ab_warp_error(steady, gray)
    assert after < 0.5 * before, (before, after)
