"""``make bench``: measure what users run and print it next to the speed targets; writes a JSON to archive.

* training images/s of the real photo experiments (``unet_effnet`` at 128 px batch 16, ``pix2pix``,
  ``vae_unet``), built by the same CLI as ``make experiment``, over a fixed number of steps (first excluded);
  ``unet_effnet`` also without the speed defaults (fp32, NCHW: the old default), alternated with them;
* data-loader images/s alone, per worker count (0, 1, 2, 4... up to the cores): from the photo folder
  (also with every JPEG decoded at full size), and from LitData shards when :mod:`colorlab.data.streaming`
  is installed; printed beside the images/s each training step consumes;
* start-up of a 100 k-file folder (hard links) under 2 gloo ranks: seconds and per-file stats per rank;
* the Lightning Trainer vs a plain PyTorch loop on the same module and batches, alternated;
* ``python -m colorlab colorize`` of a 12 MP photo with a ``unet_effnet`` checkpoint: seconds and peak RSS
  (a subprocess, as users run it), and the in-process pipeline alone, PyTorch vs ONNX Runtime (alternated);
* with the full run, OpenMP's passive vs spinning wait policy (alternated subprocesses);
* films (``scripts/bench_video.py``): 480p stabilisation cost and peak RSS of a long vs a short clip.

Ratios come from alternated repeats in one run (median), so a busy machine slows both sides alike; absolute
figures need idle cores. Benchmarks only measure: nothing here fails on a slow machine.

    python scripts/bench.py [--quick] [--data-only] [--startup-files N] [--out runs/bench/bench.json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import colorlab  # noqa: F401  (first: it sets the OpenMP wait policy, which torch reads when it loads)

# isort: split
import lightning as L
import numpy as np
import torch
from PIL import Image

from colorlab.data.datamodule import DATA_ENV, FolderDataModule, usable_cores
from colorlab.inference.pipeline import colorize_full_resolution
from colorlab.training.cli import lightning_main
from colorlab.training.performance import bf16_native

REPO = Path(__file__).resolve().parents[1]
EXPERIMENTS = REPO / "experiments"
TRAINING = ("unet_effnet", "pix2pix", "vae_unet")
# Targets on 2 CPU cores (issue 13); printed beside the figures, never enforced.
TARGETS = {
    "unet_effnet_speedup": (">=", 2.0, "x the old default (fp32, NCHW) images/s"),
    "colorize_12mp_seconds": ("<=", 3.0, "s for a 12 MP photo with the unet_effnet checkpoint"),
    "colorize_12mp_seconds_per_further_photo": ("<=", 3.0, "s per 12 MP photo once the command is loaded"),
    "lightning_vs_plain": (">=", 0.97, "Lightning images/s / plain-loop images/s"),
}
# The speed issue's starting point: fp32, NCHW, the whole pretrained encoder trained.
OLD_DEFAULTS = ["--performance.channels_last=false", "--performance.bf16=off",
                "--model.init_args.net.init_args.encoder_kwargs.frozen_stages=0"]  # fmt: skip


# ---- helpers ------------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    """The machine and the thread settings the figures were taken with."""
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "usable_cores": usable_cores(),
        "torch_threads": torch.get_num_threads(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"),
        "bf16_native": bf16_native("cpu"),
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def median_ratio(numerators: list[float], denominators: list[float]) -> float:
    """Median of the pairwise ratios of alternated repeats."""
    return statistics.median(a / b for a, b in zip(numerators, denominators))


class Throughput(L.Callback):
    """Images/s from the end of the first training batch to the end of the last (start-up excluded); stops
    the fit after ``steps`` batches, over as many epochs as that takes."""

    def __init__(self, steps: int | None = None) -> None:
        self.steps = steps
        self.stamps: list[float] = []
        self.images = 0

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:  # fmt: skip
        self.stamps.append(time.perf_counter())
        if len(self.stamps) > 1:
            self.images += len(batch["rgb"])
        if self.steps is not None and len(self.stamps) >= self.steps:
            trainer.should_stop = True

    @property
    def images_per_second(self) -> float:
        return self.images / (self.stamps[-1] - self.stamps[0]) if len(self.stamps) > 1 else float("nan")


def build(name: str, overrides: list[str]) -> Any:
    """The experiment's model, data and trainer exactly as ``make experiment`` builds them, minus the run
    folder's loggers, checkpoints and validation."""
    argv = [
        "--config", str(EXPERIMENTS / f"{name}.yaml"), "--run.root", tempfile.mkdtemp(prefix="bench-"),
        "--run.wandb=disabled", "--trainer.logger=false", "--trainer.enable_checkpointing=false",
        "--trainer.limit_val_batches=0", "--trainer.num_sanity_val_steps=0", "--trainer.max_epochs=1000",
        "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false", *overrides,
    ]  # fmt: skip
    return lightning_main(argv, run=False)


def train_images_per_second(name: str, steps: int, overrides: list[str]) -> tuple[float, Any]:
    """Images/s of ``steps`` training batches of experiment ``name`` (and the CLI, to reuse its model)."""
    cli = build(name, overrides)
    meter = Throughput(steps)
    cli.trainer.callbacks.append(meter)
    cli.trainer.fit(cli.model, cli.datamodule)
    return meter.images_per_second, cli


# ---- the measurements ---------------------------------------------------------------------------------


def bench_training(steps: int, repeats: int, shrink: list[str]) -> tuple[dict[str, Any], Any]:
    """Images/s per experiment; ``unet_effnet`` alternated with the old defaults (fp32, NCHW, no frozen stages)
    and with 2 loader workers (the old YAML value; threads then drop to cores - 2) against ``auto``."""
    results: dict[str, Any] = {}
    new, old, workers, cli = [], [], [], None
    for _ in range(repeats):
        old.append(train_images_per_second("unet_effnet", steps, [*shrink, *OLD_DEFAULTS])[0])
        workers.append(
            train_images_per_second("unet_effnet", steps, [*shrink, "--data.init_args.num_workers=2"])[0]
        )
        value, cli = train_images_per_second("unet_effnet", steps, shrink)
        new.append(value)
    results["unet_effnet"] = {"images_per_second": statistics.median(new), "old_defaults": statistics.median(old),
                              "speedup": median_ratio(new, old), "workers_auto_vs_2": median_ratio(new, workers),
                              "repeats": repeats}  # fmt: skip
    for name in TRAINING[1:]:
        results[name] = {"images_per_second": train_images_per_second(name, steps, shrink)[0]}
    return results, cli


def bench_loader(batches: int, shrink: list[str]) -> dict[str, Any]:
    """Data-loader images/s alone (decode, resize, crop, collate): folder, and shards when available."""
    size = {"batch_size": 16, "image_size": 128, "resize": 160}
    if shrink:
        size = {"batch_size": 4, "image_size": 32, "resize": 40}

    def rate(datamodule: Any) -> float:
        datamodule.setup("fit")
        loader = iter(datamodule.train_dataloader())
        next(loader)  # worker start-up excluded
        start, images = time.perf_counter(), 0
        for _, batch in zip(range(batches), loader):
            images += len(batch["rgb"])
        return images / (time.perf_counter() - start)

    def full_decode(workers: int) -> FolderDataModule:
        datamodule = FolderDataModule(num_workers=workers, **size)
        datamodule.setup("fit")
        datamodule.train_set.min_side = None  # every JPEG decoded at full size, as before the reduced decode
        return datamodule

    counts = loader_worker_counts(usable_cores())
    results: dict[str, Any] = {
        "folder": {w: rate(FolderDataModule(num_workers=w, **size)) for w in counts},
        "folder_full_decode": {w: rate(full_decode(w)) for w in counts[:2]},
    }
    try:
        from colorlab.data.streaming import StreamingDataModule, pack_folder
    except ImportError as exc:
        results["shards"] = f"not measured: {exc} (pip install 'colorlab[stream]')"
        return results
    scratch = Path(tempfile.mkdtemp(prefix="bench-shards-"))
    # The photos packed as they are, and shrunk to 320 px on the longer side (less to decode per crop).
    for name, max_side in (("shards", None), ("shards_320", 320)):
        start = time.perf_counter()
        pack_folder(Path(os.environ[DATA_ENV]) / "train", str(scratch / name), max_side=max_side)
        packing = time.perf_counter() - start
        options = {"train_dir": str(scratch / name), "cache_dir": str(scratch / f"{name}-cache"), **size}
        results[name] = {w: rate(StreamingDataModule(num_workers=w, **options)) for w in (0, 2)}
        results[name]["pack_seconds"] = packing
    return results


def bench_lightning_vs_plain(module: L.LightningModule, batch: dict[str, torch.Tensor], steps: int,
                             repeats: int) -> dict[str, Any]:  # fmt: skip
    """Lightning's loop vs a plain loop, same module and Lab batches (fp32 both).

    Each repeat runs both, in alternating order, and compares their median step times: on a shared 2-core VM
    whole-loop rates drift by up to 15 % between back-to-back runs, which a median step and alternation absorb.
    """
    batches = [{k: v.clone() for k, v in batch.items()} for _ in range(steps)]

    def lightning() -> list[float]:
        meter = Throughput()
        trainer = L.Trainer(accelerator="cpu", max_epochs=1, logger=False, enable_checkpointing=False,
                            enable_progress_bar=False, enable_model_summary=False, callbacks=[meter])  # fmt: skip
        trainer.fit(module, torch.utils.data.DataLoader(batches, batch_size=None))
        return meter.stamps

    def plain() -> list[float]:
        optimizer = module.configure_optimizers()
        optimizer = optimizer["optimizer"] if isinstance(optimizer, dict) else optimizer
        module.train()
        stamps = []
        for item in batches:
            optimizer.zero_grad()
            module.training_loss(item)["loss"].backward()
            optimizer.step()
            stamps.append(time.perf_counter())
        return stamps

    def median_step(stamps: list[float]) -> float:
        return statistics.median(b - a for a, b in itertools.pairwise(stamps))

    light, loop = [], []
    for repeat in range(repeats):
        order = [(lightning, light), (plain, loop)]
        for run, steps_of in order if repeat % 2 == 0 else order[::-1]:
            steps_of.append(median_step(run()))
    images = len(batch["rgb"])
    return {"ratio": median_ratio(loop, light), "lightning_images_per_second": images / statistics.median(light),
            "plain_images_per_second": images / statistics.median(loop), "repeats": repeats}  # fmt: skip


def test_photo(path: Path, megapixels: float) -> Path:
    """A real photo (the first test photo, or a scikit-image sample) resized to ``megapixels``, as JPEG."""
    folder = Path(os.environ.get(DATA_ENV, "")) / "val"
    sources = sorted(folder.glob("*.*")) if folder.is_dir() else []
    if sources:
        image = Image.open(sources[0]).convert("RGB")
    else:
        from skimage import data

        image = Image.fromarray(data.astronaut())
    width = round((megapixels * 1e6 * 4 / 3) ** 0.5)
    image.resize((width, width * 3 // 4), Image.Resampling.BICUBIC).save(path, quality=92)
    return path


# Runs a command and prints its own peak RSS in bytes. A child forked straight from this (large) process would
# report this process's RSS: Linux keeps the pre-exec high-water mark. A small launcher forks a small child.
PEAK_RSS_LAUNCHER = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
print(usage.ru_maxrss * 1024, file=sys.stderr)  # Linux reports KiB
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_with_peak_rss(arguments: list[str]) -> tuple[float, int]:
    """(wall seconds, peak RSS bytes) of the command ``arguments`` in a child process of its own."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", PEAK_RSS_LAUNCHER, *arguments], stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, check=False,
                          env={**os.environ, "PYTHONPATH": str(REPO)})  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"failed: {' '.join(arguments)}\n{done.stderr[-2000:]}")
    return time.perf_counter() - start, int(done.stderr.strip().splitlines()[-1])


def bench_colorize(
    module: L.LightningModule, trainer: L.Trainer, megapixels: float, repeats: int
) -> dict[str, Any]:
    """The ``colorize`` command on one photo (wall seconds, peak RSS of the child) and the pipeline alone."""
    folder = Path(tempfile.mkdtemp(prefix="bench-colorize-"))
    photo = test_photo(folder / "photo.jpg", megapixels)
    ckpt = folder / "unet_effnet.ckpt"
    trainer.save_checkpoint(ckpt)
    size = 160  # unet_effnet's training size (resize 160), what colorize reads from its run folder
    command = [sys.executable, "-m", "colorlab", "colorize", "--ckpt", str(ckpt), "--size", str(size),
               "-o", str(folder / "out"), "--no-progress", "--device", "cpu"]  # fmt: skip

    runs = [run_with_peak_rss([*command, str(photo)]) for _ in range(repeats)]
    seconds, peak_rss = [s for s, _ in runs], max(rss for _, rss in runs)
    # Three copies in one command: the seconds each photo adds once Python, torch and the model are loaded;
    # and the command's imports alone: the one-shot start-up cost.
    copies = [str(shutil.copy(photo, folder / f"copy{i}.jpg")) for i in range(3)]
    per_photo = (run_with_peak_rss([*command, *copies])[0] - statistics.median(seconds)) / 2
    # What loading the checkpoint imports: the command, then its deployable colorizer and net (not timm,
    # torchvision, Lightning or torchmetrics, which the one-shot command must not load: checked below).
    imports = run_with_peak_rss(
        [sys.executable, "-c", "import colorlab.commands.colorize, colorlab.colorizers.regression, colorlab.models.unet"]
    )[0]
    heavy = ("lightning", "torchmetrics", "timm", "torchvision")
    probe = subprocess.run(
        [sys.executable, "-c", ("import sys; from colorlab.cli import main; main(sys.argv[1:]); "
                                f"print(sorted(m for m in {heavy!r} if m in sys.modules))"), *command[3:], str(photo)],
        capture_output=True, text=True, check=True, env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    loaded = probe.stdout.strip().splitlines()[-1]
    module = module.colorizer.float().eval()
    with Image.open(photo) as img:
        pixels = torch.from_numpy(np.asarray(img.convert("RGB"))).permute(2, 0, 1)[None]

    def pipeline(model: torch.nn.Module) -> float:
        start = time.perf_counter()
        colorize_full_resolution(model, pixels, size)
        return time.perf_counter() - start

    pipeline(module)
    results = {"megapixels": pixels.shape[-1] * pixels.shape[-2] / 1e6, "command_seconds": statistics.median(seconds),
               "seconds_per_further_photo": per_photo, "import_seconds": imports, "peak_rss_bytes": peak_rss,
               "repeats": repeats, "heavy_modules_loaded": loaded}  # fmt: skip
    try:
        from colorlab.inference.export import export_onnx
        from colorlab.inference.onnx_runtime import OnnxColorizer

        onnx_file = export_onnx(module, folder / "unet_effnet.onnx", None)
        backend = OnnxColorizer(onnx_file)
    except ImportError as exc:
        results["pipeline_seconds"] = statistics.median(pipeline(module) for _ in range(repeats))
        results["onnx"] = f"not measured: {exc}"
        return results
    pipeline(backend)
    torch_seconds, onnx_seconds = [], []
    for _ in range(repeats):  # alternated, so both see the same machine load
        torch_seconds.append(pipeline(module))
        onnx_seconds.append(pipeline(backend))
    results["pipeline_seconds"] = statistics.median(torch_seconds)
    # The same command on the export: it starts without Lightning, timm and torchvision (seconds of imports).
    onnx_command = [*command[:4], "--onnx", str(onnx_file), *command[6:]]
    onnx_runs = [run_with_peak_rss([*onnx_command, str(photo)]) for _ in range(repeats)]
    results["onnx"] = {"pipeline_seconds": statistics.median(onnx_seconds),
                       "speed_vs_torch": median_ratio(torch_seconds, onnx_seconds),
                       "command_seconds": statistics.median(s for s, _ in onnx_runs),
                       "peak_rss_bytes": max(rss for _, rss in onnx_runs)}  # fmt: skip
    return results


STRIP_SIZE = (2, 24_000_000)  # (height, width): 48 MP, under the 50 MP cap, the aspect that broke the merge
MEMORY_TARGET_BYTES = 1.5e9


def strip_png(path: Path) -> Path:
    """A smooth 2 x 24,000,000 px colour PNG (tens of KB compressed, 144 MB decoded)."""
    height, width = STRIP_SIZE
    ramp = (np.arange(width, dtype=np.uint32) * 256 // width).astype(np.uint8)
    rgb = np.stack([ramp, ramp[::-1], np.full(width, 120, np.uint8)], axis=-1)
    Image.fromarray(np.repeat(rgb[None], height, axis=0)).save(path, compress_level=9)
    return path


def _children(pid: int) -> list[int]:
    tasks = Path(f"/proc/{pid}/task")
    return [int(c) for t in tasks.iterdir() for c in (t / "children").read_text().split()] if tasks.exists() else []


def bench_memory(trainer: L.Trainer, size: int = 160) -> dict[str, Any]:
    """Peak RSS (child processes, as users run them) of ``colorize`` and ``serve`` on a 2 x 24,000,000 px strip
    and of ``evaluate`` on one 12 MP photo, with the ``unet_effnet`` checkpoint; target <= 1.5 GB each."""
    import signal
    import socket

    import httpx

    folder = Path(tempfile.mkdtemp(prefix="bench-memory-"))
    ckpt = folder / "unet_effnet.ckpt"
    trainer.save_checkpoint(ckpt)
    strip = strip_png(folder / "strip.png")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    launcher = [sys.executable, "-c", PEAK_RSS_LAUNCHER]
    cli_command = [sys.executable, "-m", "colorlab"]

    def measured(arguments: list[str]) -> tuple[int, float]:
        start = time.perf_counter()
        done = subprocess.run([*launcher, *arguments], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True, check=False, env=env)  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"failed: {' '.join(arguments)}\n{done.stderr[-2000:]}")
        return int(done.stderr.strip().splitlines()[-1]), time.perf_counter() - start

    results: dict[str, Any] = {"strip": f"{STRIP_SIZE[0]} x {STRIP_SIZE[1]:,} px", "strip_png_bytes": strip.stat().st_size}
    results["colorize_strip_peak_rss_bytes"], results["colorize_strip_seconds"] = measured(
        [*cli_command, "colorize", str(strip), "--ckpt", str(ckpt), "--size", str(size), "-o", str(folder / "out"),
         "--no-progress", "--device", "cpu"])  # fmt: skip
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen([*launcher, *cli_command, "serve", "--ckpt", str(ckpt), "--size", str(size), "--port",
                               str(port), "--max-mb", "200", "--device", "cpu"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True, env=env)  # fmt: skip
    try:
        for _ in range(600):
            try:
                httpx.get(f"http://127.0.0.1:{port}/api/config", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.5)
        start = time.perf_counter()
        response = httpx.post(f"http://127.0.0.1:{port}/api/colorize", timeout=1200,
                              files=[("files", ("strip.png", strip.read_bytes(), "image/png"))])  # fmt: skip
        results["serve_strip_seconds"] = time.perf_counter() - start
        results["serve_strip_status"] = response.status_code
        results["serve_strip_error"] = response.json()["results"][0].get("error") if response.is_success else None
    finally:
        for child in _children(server.pid):
            os.kill(child, signal.SIGINT)  # uvicorn shuts down; the launcher then reports the child's peak
        _, err = server.communicate(timeout=120)
    results["serve_strip_peak_rss_bytes"] = int(err.strip().splitlines()[-1])
    (folder / "photos").mkdir()
    test_photo(folder / "photos" / "photo.jpg", 12.0)
    results["evaluate_12mp_peak_rss_bytes"], results["evaluate_12mp_seconds"] = measured(
        [*cli_command, "evaluate", "--ckpt", str(ckpt), "--size", str(size), "--data", str(folder / "photos"),
         "-o", str(folder / "evaluation"), "--device", "cpu"])  # fmt: skip
    shutil.rmtree(folder, ignore_errors=True)
    return results


STEP_SCRIPT = """
import colorlab, time, torch
from colorlab.approaches.regression import RegressionColorizer
from colorlab.color import lab_batch
from colorlab.data.datamodule import usable_cores
from colorlab.models.unet import TimmUNet
torch.set_num_threads(usable_cores())  # the policy only matters when several threads wait on each other
m = RegressionColorizer(TimmUNet(pretrained=False, decoder_channels=(128, 64, 48, 32, 16)))
m = m.to(memory_format=torch.channels_last)
opt, batch = torch.optim.AdamW(m.parameters()), lab_batch(torch.randint(0, 256, (16, 3, 128, 128), dtype=torch.uint8))
stamps = []
for _ in range(4):
    opt.zero_grad(); m.training_loss(batch)["loss"].backward(); opt.step(); stamps.append(time.perf_counter())
print(16 * 3 / (stamps[-1] - stamps[0]))
"""


def bench_wait_policy(repeats: int) -> dict[str, Any]:
    """unet_effnet step images/s with OpenMP threads waiting passively vs spinning (alternated subprocesses,
    one thread per usable core)."""
    rates: dict[str, list[float]] = {"PASSIVE": [], "ACTIVE": []}
    for _ in range(repeats):
        for policy, values in rates.items():
            env = {**os.environ, "OMP_WAIT_POLICY": policy, "PYTHONPATH": str(REPO)}
            out = subprocess.run(
                [sys.executable, "-c", STEP_SCRIPT], env=env, check=True, capture_output=True, text=True
            )
            values.append(float(out.stdout.strip().splitlines()[-1]))
    return {"passive_vs_spinning": median_ratio(rates["PASSIVE"], rates["ACTIVE"]),
            **{f"{p.lower()}_images_per_second": statistics.median(v) for p, v in rates.items()}}  # fmt: skip


# ---- report -------------------------------------------------------------------------------------------


def loader_worker_counts(cores: int) -> list[int]:
    """0, 1, 2, 4, ... workers up to ``cores - 1`` (the training process keeps one core)."""
    return [0, *(w for w in (1, 2, 4, 8, 16, 32, 64) if w <= max(1, cores - 1))]


def _startup_rank(rank: int, folder: str, store: str, out: str) -> None:
    """One of 2 gloo ranks: set up a FolderDataModule on ``folder``, timing it and counting per-file stats."""
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    calls = {"n": 0}
    for name in ("stat", "lstat"):
        original = getattr(os, name)

        def counted(path, *args, original=original, **kwargs):
            calls["n"] += str(path).startswith(folder)
            return original(path, *args, **kwargs)

        setattr(os, name, counted)
    data = FolderDataModule(root=folder)
    dist.barrier()
    start = time.perf_counter()
    if rank == 0:
        data.prepare_data()  # Lightning's order: prepare_data on local rank 0, then setup everywhere
    data.setup("fit")
    seconds = time.perf_counter() - start
    Path(out, f"rank{rank}.json").write_text(json.dumps({"seconds": seconds, "file_stats": calls["n"],
                                                         "train_images": len(data.train_set)}))  # fmt: skip
    dist.destroy_process_group()


def bench_startup(files: int) -> dict[str, Any]:
    """Start-up of a ``files``-photo folder (hard links of one tiny JPEG) under 2 gloo ranks: seconds and
    per-file stats per rank, for a first start (screening) and a second one (cached verdicts)."""
    import torch.multiprocessing as mp

    sys.path.insert(0, str(REPO))  # the folder is made by the test suite's helper
    from tests.helpers import hardlink_folder

    scratch = Path(tempfile.mkdtemp(prefix="bench-startup-"))
    os.environ["COLORLAB_CACHE"] = str(scratch / "cache")
    start = time.perf_counter()
    folder = hardlink_folder(scratch / "photos", files)
    results: dict[str, Any] = {"files": files, "make_seconds": time.perf_counter() - start}
    for attempt in ("first", "cached"):
        out = scratch / attempt
        out.mkdir()
        mp.spawn(_startup_rank, args=(str(folder), str(out / "store"), str(out)), nprocs=2)
        results[attempt] = {f"rank{r}": json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)}
    shutil.rmtree(scratch, ignore_errors=True)
    return results


def print_data_report(results: dict[str, Any]) -> None:
    """Loader images/s per worker count against the training step's images/s; the start-up per rank."""
    for source, rates in results["loader"].items():
        if isinstance(rates, dict):
            text = ", ".join(f"{w} workers {r:.0f}" for w, r in rates.items() if w != "pack_seconds")
            text += f" (packed in {rates['pack_seconds']:.0f} s)" if "pack_seconds" in rates else ""
        else:
            text = rates
        print(f"loader {source:18s} images/s: {text}")
    for name, row in results.get("training", {}).items():
        print(f"  the {name} step consumes {row['images_per_second']:.1f} images/s on this machine")
    if "startup" in results:
        st = results["startup"]
        print(f"start-up of {st['files']} files (hard links, made in {st['make_seconds']:.1f} s), 2 gloo ranks:")
        for attempt in ("first", "cached"):
            row = ", ".join(f"{rank} {r['seconds']:.2f} s, {r['file_stats']} file stats" for rank, r in st[attempt].items())
            print(f"  {attempt:6s} {row}")


def headline(results: dict[str, Any]) -> dict[str, float]:
    """The figures the targets are about."""
    return {
        "unet_effnet_speedup": results["training"]["unet_effnet"]["speedup"],
        "colorize_12mp_seconds": results["colorize"]["command_seconds"],
        "colorize_12mp_seconds_per_further_photo": results["colorize"]["seconds_per_further_photo"],
        "lightning_vs_plain": results["lightning_vs_plain"]["ratio"],
    }


def print_report(results: dict[str, Any]) -> None:
    """Machine, every figure, and the targets beside the measured values."""
    info = results["machine"]
    print(f"machine: {info['processor']}, {info['usable_cores']} usable cores, {info['torch_threads']} torch threads, "
          f"OMP_NUM_THREADS={info['OMP_NUM_THREADS']}, OMP_WAIT_POLICY={info['OMP_WAIT_POLICY']}, "
          f"bf16 native: {info['bf16_native']}, load average {info['load_average']}")  # fmt: skip
    for name, row in results["training"].items():
        extra = (
            f" (old defaults {row['old_defaults']:.1f}, x{row['speedup']:.2f})" if "speedup" in row else ""
        )
        print(f"train {name:12s} {row['images_per_second']:8.1f} images/s{extra}")
    print_data_report(results)
    lp, cz = results["lightning_vs_plain"], results["colorize"]
    print(f"lightning/plain    {lp['ratio']:.3f} ({lp['lightning_images_per_second']:.1f} vs "
          f"{lp['plain_images_per_second']:.1f} images/s)")  # fmt: skip
    print(f"colorize {cz['megapixels']:.1f} MP   command {cz['command_seconds']:.2f} s, peak RSS "
          f"{cz['peak_rss_bytes'] / 2**30:.2f} GiB, pipeline alone {cz['pipeline_seconds']:.2f} s")  # fmt: skip
    print(f"  start-up         imports alone {cz['import_seconds']:.2f} s; each further photo in the same command "
          f"{cz['seconds_per_further_photo']:.2f} s; heavy modules the command loaded: {cz['heavy_modules_loaded']}")  # fmt: skip
    onnx = cz["onnx"]
    if isinstance(onnx, dict):
        print(f"  ONNX Runtime     pipeline {onnx['pipeline_seconds']:.2f} s, speed x{onnx['speed_vs_torch']:.2f} vs "
              f"PyTorch; command --onnx {onnx['command_seconds']:.2f} s, peak RSS "
              f"{onnx['peak_rss_bytes'] / 2**30:.2f} GiB")  # fmt: skip
    else:
        print(f"  ONNX Runtime     {onnx}")
    print_memory(results["memory"])
    if "video" in results:
        from bench_video import print_video

        print_video(results["video"])
    if "wait_policy" in results:
        print(f"OpenMP wait       passive/spinning {results['wait_policy']['passive_vs_spinning']:.2f}")
    print("targets (2 CPU cores):")
    for key, value in results["headline"].items():
        op, target, unit = TARGETS[key]
        met = value >= target if op == ">=" else value <= target
        print(f"  {key:40s} {value:8.3f}  target {op} {target:g} {unit}  [{'ok' if met else 'MISSED'}]")


def print_memory(memory: dict[str, Any]) -> None:
    """Peak RSS of the three full-resolution commands against the 1.5 GB target."""
    rows = [("colorize", "colorize_strip", f"{memory['strip']} PNG"), ("serve", "serve_strip", f"{memory['strip']} upload"),
            ("evaluate", "evaluate_12mp", "one 12 MP JPEG")]  # fmt: skip
    for command, key, what in rows:
        rss = memory[f"{key}_peak_rss_bytes"]
        met = "ok" if rss <= MEMORY_TARGET_BYTES else "MISSED"
        print(f"peak RSS {command:9s} {rss / 1e9:5.2f} GB  {what}, {memory[f'{key}_seconds']:.1f} s  "
              f"target <= {MEMORY_TARGET_BYTES / 1e9:g} GB [{met}]")  # fmt: skip
    if memory.get("serve_strip_error") or memory.get("serve_strip_status") != 200:
        print(f"  serve answered {memory.get('serve_strip_status')}: {memory.get('serve_strip_error')}")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run every benchmark, print it and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run: few steps, small crops, 1 MP photo"
    )
    parser.add_argument(
        "--out", type=Path, default=REPO / "runs" / "bench" / "bench.json", help="JSON output"
    )
    parser.add_argument(
        "--data-only", action="store_true", help="only the loader (images/s per worker count) and the start-up"
    )
    parser.add_argument(
        "--startup-files", type=int, default=None, help="files in the start-up folder (100 000; 1 000 with --quick)"
    )
    parser.add_argument("--memory", action="store_true", help="only the peak-RSS measurements (issue 24)")
    args = parser.parse_args(argv)
    if not os.environ.get(DATA_ENV):
        parser.exit(2, f"set ${DATA_ENV} to a photo folder with train/ and val/ (make bench sets it)\n")
    quick = args.quick
    startup_files = args.startup_files or (1_000 if quick else 100_000)
    shrink = (
        ["--data.init_args.batch_size=4", "--data.init_args.image_size=32", "--data.init_args.resize=40"]
        if quick
        else []
    )
    steps, repeats = (3, 1) if quick else (12, 2)
    started = time.perf_counter()
    if args.memory:  # a checkpoint of the real unet_effnet after one step is all the memory figures need
        cli = build("unet_effnet", ["--trainer.max_steps=1", "--data.init_args.batch_size=2"])
        cli.trainer.fit(cli.model, cli.datamodule)
        memory = bench_memory(cli.trainer)
        print_memory(memory)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_name("memory.json").write_text(json.dumps({"machine": machine(), "memory": memory}, indent=2))
        return memory
    results: dict[str, Any] = {"quick": quick, "machine": machine()}
    if args.data_only:
        results["loader"] = bench_loader(3 if quick else 20, shrink)
        results["startup"] = bench_startup(startup_files)
        results["seconds"] = time.perf_counter() - started
        print_data_report(results)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2, default=str))
        return results
    results["training"], cli = bench_training(steps, repeats, shrink)
    results["loader"] = bench_loader(3 if quick else 20, shrink)
    results["startup"] = bench_startup(startup_files)
    batch = cli.datamodule.on_after_batch_transfer(next(iter(cli.datamodule.train_dataloader())), 0)
    results["lightning_vs_plain"] = bench_lightning_vs_plain(
        cli.model, batch, 3 if quick else 8, 1 if quick else 6
    )
    results["colorize"] = bench_colorize(cli.model, cli.trainer, 1.0 if quick else 12.0, 1 if quick else 2)
    results["memory"] = bench_memory(cli.trainer)
    if not quick:
        results["wait_policy"] = bench_wait_policy(2)
    from bench_video import bench_video  # scripts/ is on sys.path: this file runs as a script

    video_ckpt = Path(tempfile.mkdtemp(prefix="bench-video-")) / "unet_effnet.ckpt"
    cli.trainer.save_checkpoint(video_ckpt)
    results["video"] = bench_video(video_ckpt, quick)
    results["headline"] = headline(results)
    results["seconds"] = time.perf_counter() - started
    print_report(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=str))
    print(f"wrote {args.out} ({results['seconds']:.0f} s)")
    return results


if __name__ == "__main__":
    main()
