"""Video benchmark (part of ``make bench``; alone: ``python scripts/bench_video.py --ckpt X.ckpt``).

* **Stabilisation cost at 480p.** A synthetic 854x480 clip (two shots of a test photo, a cut) goes through the
  real film loop (decode, colorize with the photo pipeline, encode) frame by frame, and again with the
  stabiliser; alternated repeats, median seconds per frame, and the fraction stabilisation adds (target
  <= 50 %).
* **Memory vs film length.** ``python -m colorlab colorize film.mp4`` (a subprocess, stabilised, as users run
  it) on a short clip and on one ``--long-factor`` times longer: peak RSS of each (target: within 10 %).
  A 10-minute 480p film would take most of an hour here, so the long clip is shorter and says how long.

Benchmarks only measure: nothing here fails on a slow machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from colorlab.data.datamodule import DATA_ENV
from colorlab.inference.clips import write_clips
from colorlab.inference.film_options import DEFAULT_STRENGTH, DEFAULT_WINDOW
from colorlab.inference.films import colorizer_film
from colorlab.inference.pipeline import Colorizer
from colorlab.inference.stabilize import Stabilizer
from colorlab.inference.video import probe, transcode

REPO = Path(__file__).resolve().parents[1]
SIZE_480P = (480, 854)
TARGETS = {
    "stabilize_added_fraction": ("<=", 0.5, "of frame-by-frame colorize time at 480p"),
    "long_vs_short_peak_rss": ("<=", 1.1, "peak RSS long clip / short clip"),
}


def make_clip(photos: Path, folder: Path, frames_per_shot: int) -> Path:
    """A 480p clip of two shots (``frames_per_shot`` each) from the first test photos."""
    return write_clips(photos, folder, count=1, frames=frames_per_shot, size=SIZE_480P)[0]


def loop_seconds(clip: Path, colorizer: Colorizer, stabilize: bool, out: Path) -> float:
    """Seconds for the film loop (decode, colorize, [stabilise], encode) over the whole clip."""
    window = DEFAULT_WINDOW if stabilize else 0
    frames = colorizer_film(colorizer).frames(Stabilizer(DEFAULT_STRENGTH, window))
    start = time.perf_counter()
    transcode(probe(clip), out, frames, progress=False)
    return time.perf_counter() - start


def command_peak_rss(clip: Path, ckpt: Path, out: Path) -> tuple[float, int]:
    """(seconds, peak RSS bytes) of ``python -m colorlab colorize CLIP`` in a small child process."""
    from bench import run_with_peak_rss  # the same measurement as the photo benchmark

    return run_with_peak_rss([sys.executable, "-m", "colorlab", "colorize", str(clip), "--ckpt", str(ckpt),
                              "--size", "160", "-o", str(out), "--no-progress", "--device", "cpu"])  # fmt: skip


def bench_video(ckpt: Path, quick: bool = False, long_factor: int = 10) -> dict[str, Any]:
    """Both measurements; returns the figures."""
    photos = Path(os.environ[DATA_ENV]) / "val"
    folder = Path(tempfile.mkdtemp(prefix="bench-video-"))
    shot = 6 if quick else 24
    clip = make_clip(photos, folder / "short", shot)
    colorizer = Colorizer.load(ckpt, 160, "cpu")
    loop_seconds(clip, colorizer, True, folder / "warm.mp4")  # first-call costs (lazy imports, caches) out
    plain, steady = [], []
    for repeat in range(1 if quick else 2):  # alternated, so both see the same machine load
        plain.append(loop_seconds(clip, colorizer, False, folder / f"plain{repeat}.mp4"))
        steady.append(loop_seconds(clip, colorizer, True, folder / f"steady{repeat}.mp4"))
    frames = probe(clip).frames
    long_clip = make_clip(photos, folder / "long", shot * long_factor)
    short_run = command_peak_rss(clip, ckpt, folder / "out-short")
    long_run = command_peak_rss(long_clip, ckpt, folder / "out-long")
    return {
        "size": f"{SIZE_480P[1]}x{SIZE_480P[0]}",
        "frames": frames,
        "seconds_per_frame": statistics.median(plain) / frames,
        "stabilized_seconds_per_frame": statistics.median(steady) / frames,
        "stabilize_added_fraction": statistics.median(s / p for s, p in zip(steady, plain)) - 1,
        "short_frames": frames,
        "long_frames": probe(long_clip).frames,
        "short_command_seconds": short_run[0],
        "long_command_seconds": long_run[0],
        "short_peak_rss_bytes": short_run[1],
        "long_peak_rss_bytes": long_run[1],
        "long_vs_short_peak_rss": long_run[1] / short_run[1],
    }


def print_video(video: dict[str, Any]) -> None:
    """The figures and their targets."""
    print(f"video {video['size']}: frame by frame {video['seconds_per_frame']:.3f} s/frame, stabilised "
          f"{video['stabilized_seconds_per_frame']:.3f} s/frame (+{100 * video['stabilize_added_fraction']:.0f} %)")  # fmt: skip
    print(f"  colorize command {video['short_frames']} frames: {video['short_command_seconds']:.1f} s, peak RSS "
          f"{video['short_peak_rss_bytes'] / 2**20:.0f} MiB; {video['long_frames']} frames: "
          f"{video['long_command_seconds']:.1f} s, peak RSS {video['long_peak_rss_bytes'] / 2**20:.0f} MiB")  # fmt: skip
    for key, (op, target, unit) in TARGETS.items():
        value = video[key]
        met = value <= target
        print(f"  {key:40s} {value:8.3f}  target {op} {target:g} {unit}  [{'ok' if met else 'MISSED'}]")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the video benchmark alone with a checkpoint."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ckpt", type=Path, required=True, help="a colorizer checkpoint (unet_effnet)")
    parser.add_argument("--quick", action="store_true", help="6-frame shots instead of 24")
    parser.add_argument("--long-factor", type=int, default=10, help="the long clip is N times the short one")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "bench" / "bench_video.json")
    args = parser.parse_args(argv)
    if not os.environ.get(DATA_ENV):
        parser.exit(2, f"set ${DATA_ENV} to a photo folder with val/ (make bench sets it)\n")
    video = bench_video(args.ckpt, args.quick, args.long_factor)
    print_video(video)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(video, indent=2))
    return video


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))  # `from bench import ...` when run alone
    main()
