"""Reproduce the README results: train one headline experiment per approach family under one protocol on the
real photos, score every selected checkpoint at full resolution, and write ``docs/results.md``, the grid
``docs/results_grid.png`` and the val-curve plot ``docs/results_val_delta_e00.png``.

    python scripts/results.py                  # the headline rows, then a second seed for the best two
    python scripts/results.py unet_effnet      # just these (one seed; --seeds 42 7 for two)
    python scripts/results.py --studies        # the colour-space and CIFAR-net studies (short budget)
    python scripts/results.py --table-only     # rebuild the outputs from the runs this script made

Protocol (``experiments/results/photos_10min.yaml``, ``photos_10min_degraded.yaml`` for restoration): train on
``$COLORLAB_DATA/train`` minus a seeded 10 % (60 photos) that validates every 100 steps and picks the checkpoint
by the YAML's own selection metric, for 10 minutes of wall time at 128 px, one run at a time so the cores are
not shared. NoGAN keeps its own phase schedule (a phase's overrides outrank the protocol file; command-line
flags outrank both): each phase capped at 2.5 minutes and validated every 30 steps. The selected checkpoints are then
scored together by ``python -m colorlab evaluate`` on the 33 photos of ``$COLORLAB_DATA/val`` (the test split,
never used for selection) at full resolution, against the trivial baselines (gray, training mean ab, L->ab
lookup); "learning" says whether a row beats the best of them on ΔE00. The two rows with the lowest val ΔE00
(the selection split, not the test split) are retrained with a second seed, and the table shows both seeds.
The studies (``--studies``) keep the older 4-minute, 96 px protocol (``photos_4min.yaml``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PROTOCOL = "experiments/results/photos_10min.yaml"
DEGRADED = "experiments/results/photos_10min_degraded.yaml"
SHORT = "experiments/results/photos_4min.yaml"
SHORT_DEGRADED = "experiments/results/photos_4min_degraded.yaml"
# One row per approach family (the first is also the regression U-Net family's row).
HEADLINE = {
    "unet_effnet": [PROTOCOL],
    "zhang_cic": [PROTOCOL],
    "vae_unet": [PROTOCOL],
    "chromagan": [PROTOCOL],
    "pix2pix": [PROTOCOL],
    "bigcolor_ema": [PROTOCOL],
    # flags outrank the phases' own overrides: at most 2.5 minutes per phase, and validation every 30 steps,
    # so the 30-step GAN phase validates (and checkpoints) at its end
    "nogan_stable": [PROTOCOL, "--trainer.max_time=00:00:02:30", "--trainer.val_check_interval=30"],
    "restore_colorize": [DEGRADED],
}
STUDIES = {
    "unet_l1": [SHORT],
    "cifar100_cnn": [SHORT],
    "cifar100_vgg16": [SHORT],
    "nogan_artistic": [SHORT, "--trainer.max_time=00:00:01:15"],
    "restore_then_colorize": [SHORT_DEGRADED, "--trainer.max_time=00:00:02:00"],
    **{f"colorspace_{space}": [SHORT] for space in ("lab", "rgb", "rgb_as_is", "yuv", "ycbcr", "hsv")},
}
EXPERIMENTS = {**HEADLINE, **STUDIES}
SEEDS = (42, 7)
LOGS = REPO / "runs" / "results-logs"
EVALUATION = REPO / "runs" / "results-evaluate"
DOCS = REPO / "docs"


def photos() -> str:
    """The photo folder (train/ and val/): ``$COLORLAB_DATA``, else ``../shared/data/photos``."""
    return os.environ.get("COLORLAB_DATA", str(REPO.parent / "shared/data/photos"))


def log_path(name: str, seed: int) -> Path:
    """Where the run of ``name`` with ``seed`` logs (and names its run folder)."""
    return LOGS / f"{name}-seed{seed}.log"


def run(name: str, seed: int) -> int:
    """Train + test one experiment under its protocol with ``seed``, alone on the machine."""
    args = []
    for item in EXPERIMENTS[name]:
        args += ["--config", item] if item.endswith(".yaml") else [item]
    log = log_path(name, seed)
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "COLORLAB_DATA": photos()}
    command = [sys.executable, "-m", "colorlab", "experiment", "--config", f"experiments/{name}.yaml", *args,
               f"--seed_everything={seed}"]  # fmt: skip
    print(f"{name} seed {seed}: {' '.join(command[1:])}", flush=True)
    with log.open("w") as f:
        code = subprocess.call(command, cwd=REPO, env=env, stdout=f, stderr=subprocess.STDOUT)
    print(f"{name} seed {seed}: exit {code}, log {log}", flush=True)
    return code


def run_folder(name: str, seed: int) -> Path | None:
    """The newest finished run folder of ``name`` trained with ``seed`` (read from the runs root by
    :class:`colorlab.runs.folder.RunFolder`, the one reader of run folders)."""
    from colorlab.runs.folder import RUNS_ROOT, RunFolder

    runs = [run for run in RunFolder.runs_of(REPO / RUNS_ROOT, name)
            if run.finished and run.config.get("seed_everything") == seed]  # fmt: skip
    return runs[-1].path if runs else None


def val_series(folder: Path) -> list[tuple[int, float]]:
    """val ΔE00 against the optimizer step, phases laid end to end (each phase's steps after the previous)."""
    from colorlab.training.compare import read_run

    results = json.loads((folder / "results.json").read_text())
    phase_folders = [REPO / p["folder"] for p in results.get("phases", [])] or [folder]
    points, offset = [], 0
    for phase in phase_folders:
        log = read_run(phase)
        points += [(offset + step, value) for step, value in log.series.get("val/delta_e00", [])]
        offset += log.steps + 1
    return points


def best_val(folder: Path) -> float:
    """The lowest val ΔE00 the run reached (how the second seed is given to the best two rows)."""
    return min((v for _, v in val_series(folder)), default=float("inf"))


def evaluate(rows: list[tuple[str, int, Path]]) -> dict:
    """Score the selected checkpoint of every run together at full resolution on the test split."""
    data = Path(photos()) / "val"
    checkpoints = [json.loads((folder / "results.json").read_text())["best_checkpoint"] for _, _, folder in rows]
    names = [f"{name} s{seed}" for name, seed, _ in rows]
    if EVALUATION.exists():
        shutil.rmtree(EVALUATION)
    command = [sys.executable, "-m", "colorlab", "evaluate", "--ckpt", *checkpoints, "--names", *names,
               "--data", str(data), "-o", str(EVALUATION)]  # fmt: skip
    print(" ".join(command[1:]), flush=True)
    subprocess.run(command, cwd=REPO, check=True)
    from colorlab.runs.folder import EVALUATION_JSON

    return json.loads((EVALUATION / EVALUATION_JSON).read_text())


def _cell(values: dict, key: str, digits: int) -> str:
    value = values.get(key)
    return "" if value is None else f"{value:.{digits}f}"


def _metric_cells(values: dict, truth: float) -> str:
    """ΔE00 aside, the metric cells of one row: colorfulness (share of the truth's), PSNR, SSIM, Fréchet."""
    return (f"{values['colorfulness']:.1f} ({100 * values['colorfulness'] / truth:.0f} %) | {_cell(values, 'psnr', 2)} | "
            f"{_cell(values, 'ssim', 3)} | {_cell(values, 'frechet_effnet', 1)}")  # fmt: skip


def table(rows: list[tuple[str, int, Path]], evaluation: dict) -> str:
    """The Markdown results table: full-resolution test metrics per run (seeds of one experiment together),
    whether each beats the best trivial baseline, then the baselines and the truth."""
    from colorlab.baselines import BASELINE_NAMES

    means, learning = evaluation["means"], evaluation["learning"]
    truth = means["ground truth"]["colorfulness"]
    from colorlab.metrics import METRIC_TITLES as T

    head = (f"| experiment | approach | seed | {T['delta_e00']} | vs best baseline | colorfulness (% of truth) | "
            f"{T['psnr']} | {T['ssim']} | {T['frechet_effnet']} | selected on | steps | train time |")  # fmt: skip
    lines = [head, "|---" * 12 + "|"]
    for name, seed, folder in rows:
        results = json.loads((folder / "results.json").read_text())
        values, verdict = means[f"{name} s{seed}"], learning.get(f"{name} s{seed}") or {}
        margin = f"{'yes' if verdict.get('learning') else 'no'} ({verdict['margin']:+.2f})" if verdict else ""
        lines.append(
            f"| `{name}` | {results['model_class']} | {seed} | {_cell(values, 'delta_e00', 2)} | {margin} | "
            f"{_metric_cells(values, truth)} | `{results['selection']['monitor']}` | {results['steps']} | "
            f"{results['fit_seconds'] / 60:.1f} min |"
        )
    for label in [*BASELINE_NAMES.values()]:
        values = means.get(label)
        if values:
            lines.append(
                f"| {label} | baseline | | {_cell(values, 'delta_e00', 2)} | | {_metric_cells(values, truth)} | | | |"
            )
    lines.append(f"| ground truth | | | | | {truth:.1f} (100 %) | | | | | | |")
    return "\n".join(lines) + "\n"


def seed_spread(rows: list[tuple[str, int, Path]], evaluation: dict) -> str:
    """One line per experiment run with several seeds: its test ΔE00 per seed, mean and spread."""
    lines = []
    for name in dict.fromkeys(name for name, _, _ in rows):
        values = [evaluation["means"][f"{n} s{s}"]["delta_e00"] for n, s, _ in rows if n == name]
        if len(values) > 1:
            lines.append(f"- `{name}`: test ΔE00 {' / '.join(f'{v:.2f}' for v in values)} over {len(values)} seeds, "
                         f"mean {sum(values) / len(values):.2f}, spread {max(values) - min(values):.2f}")  # fmt: skip
    return "\n".join(lines) + "\n"


def plot(rows: list[tuple[str, int, Path]]) -> Path:
    """val ΔE00 against step for every run, with the trivial baselines' val ΔE00 as dashed lines."""
    from colorlab.baselines import BASELINE_NAMES, baselines_for_run, datamodule_from_config, val_delta_e00
    from colorlab.runs.folder import RunFolder
    from colorlab.training.compare import RunLog
    from colorlab.visualize import plot_curves

    first = next(folder for name, _, folder in rows if name in HEADLINE and name != "restore_colorize")
    references = val_delta_e00(baselines_for_run(first), datamodule_from_config(RunFolder(first).config["data"]))
    runs = [RunLog(f"{name} s{seed}", folder, {"val/delta_e00": val_series(folder)}) for name, seed, folder in rows]
    out = LOGS / "curves"
    png = plot_curves(runs, out, {"val/delta_e00": {BASELINE_NAMES[k]: v for k, v in references.items()}})
    return Path(shutil.copy(png["val/delta_e00"], DOCS / "results_val_delta_e00.png"))


def main() -> None:
    """Run the chosen experiments one at a time, a second seed for the best two, then evaluate and write."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="experiments to run (default: the headline rows)")
    parser.add_argument("--studies", action="store_true", help="run the short-budget studies instead")
    parser.add_argument("--seeds", type=int, nargs="+", help="seeds for the named experiments (default: 42)")
    parser.add_argument("--table-only", action="store_true", help="only rebuild the outputs from finished runs")
    args = parser.parse_args()
    names = args.names or list(STUDIES if args.studies else HEADLINE)
    unknown = set(names) - set(EXPERIMENTS)
    if unknown:
        parser.error(f"unknown experiments {sorted(unknown)}; choose from {list(EXPERIMENTS)}")
    if not args.table_only:
        for name in names:
            for seed in args.seeds or SEEDS[:1]:
                run(name, seed)
        if not args.names and not args.studies:
            finished = [name for name in HEADLINE if run_folder(name, SEEDS[0])]
            for name in sorted(finished, key=lambda n: best_val(run_folder(n, SEEDS[0])))[:2]:
                run(name, SEEDS[1])
    order = list(HEADLINE) + list(STUDIES)
    rows = [(name, seed, folder) for name in order for seed in SEEDS if (folder := run_folder(name, seed))]
    if not rows:
        sys.exit("no finished runs to report (see runs/results-logs/)")
    evaluation = evaluate(rows)
    shutil.copy(EVALUATION / "grid.png", DOCS / "results_grid.png")
    curves = plot(rows)
    out = DOCS / "results.md"
    out.write_text(
        "# Results (`make results`)\n\n" + "Protocol" + __doc__.split("Protocol", 1)[1] + "\n"
        + table(rows, evaluation) + "\n" + seed_spread(rows, evaluation) + "\n"
        + "\n".join(f"- {note}" for note in evaluation["notes"]) + "\n\n"
        + f"![gray | models | truth]({(DOCS / 'results_grid.png').name})\n\n![val ΔE00]({curves.name})\n"
    )  # fmt: skip
    print(f"table: {out}\ngrid: {DOCS / 'results_grid.png'}\ncurves: {curves}")


if __name__ == "__main__":
    main()
