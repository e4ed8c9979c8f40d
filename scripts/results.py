"""Reproduce the README results: train one headline experiment per approach family under one protocol on the
real photos, score every selected checkpoint at full resolution, and write ``docs/results.md``, the grid
``docs/results_grid.png`` and the val-curve plot ``docs/results_val_delta_e00.png``.

    python scripts/results.py                     # the headline rows, then a second seed for every row that learns
    python scripts/results.py --steps 1200        # the same at another budget (the one budget setting)
    python scripts/results.py --only zhang_cic    # retrain this row (every seed it has), reuse the others
    python scripts/results.py unet_effnet --seeds 42 7   # just these
    python scripts/results.py --studies           # the colour-space and CIFAR-net studies (short budget)
    python scripts/results.py --table-only        # rebuild the outputs from the runs this script made
    python scripts/results.py zhang_cic --train-only   # train (or reuse) only; --table-only evaluates later

It resumes: a run whose inputs are unchanged (its experiment and protocol YAMLs, the budget, the seed, the photo
folder) and that finished (results and selected checkpoint on disk) is reused, not retrained, and one that was
interrupted (killed, or the machine went away) continues from its last checkpoint; the record of each run is
``runs/results-logs/<name>-seed<seed>.json``. The evaluation is reused too while the checkpoints it
scored are unchanged, so a rerun with nothing changed only rewrites the table, grid and plot.

Protocol (``experiments/results/photos_protocol.yaml``; ``photos_protocol_degraded.yaml`` for the experiments on the
degraded data module: restoration, and ``unet_effnet``'s degraded-input augmentation): train
on ``$COLORLAB_DATA/train`` minus a seeded 10 % that validates every 200 steps and picks the checkpoint by the
YAML's own selection metric, for a fixed number of optimizer steps (the budget, ``--steps``) at 128 px, batch
16. A step budget, not a time budget, so the same rows come out on a laptop or a GPU, and on a busy machine.
NoGAN keeps its own phase schedule (epochs per phase and a 30-step GAN phase). Runs that select on another
metric (GANs, Zhang) also keep their lowest-val-ΔE00 checkpoint, and the table shows both. The selected
checkpoints are scored together by ``python -m colorlab evaluate`` on the 33 photos of ``$COLORLAB_DATA/val``
(the test split, never used for selection) at full resolution, against the trivial baselines (gray, training
mean ab, L->ab lookup, fitted on the training photos); "learning" says whether a row beats the best of them on
ΔE00. Every family with a row that beats them is retrained with a second seed (the seed only measures the spread:
nothing is selected on the test split). The studies (``--studies``) keep the older 4-minute, 96 px protocol (``photos_4min.yaml``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
PROTOCOL = "experiments/results/photos_protocol.yaml"
DEGRADED = "experiments/results/photos_protocol_degraded.yaml"
SHORT = "experiments/results/photos_4min.yaml"
SHORT_DEGRADED = "experiments/results/photos_4min_degraded.yaml"
# One row per approach family (the first is also the regression U-Net family's row).
HEADLINE = {
    "unet_effnet": [DEGRADED],  # degraded training inputs as augmentation; clean validation and test
    "zhang_cic": [PROTOCOL],
    "vae_unet": [PROTOCOL],
    "chromagan": [PROTOCOL],
    "pix2pix": [PROTOCOL],
    "bigcolor_ema": [PROTOCOL],
    "nogan_stable": [PROTOCOL],  # its phases' own epochs and 30-step GAN phase outrank the step budget
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
# The label suffix of a row scored on its lowest-val-ΔE00 checkpoint instead of its own selection.
BY_DELTA_E00 = " [val ΔE00]"


def photos() -> str:
    """The photo folder (train/ and val/): ``$COLORLAB_DATA``, else ``../shared/data/photos``."""
    return os.environ.get("COLORLAB_DATA", str(REPO.parent / "shared/data/photos"))


def log_path(name: str, seed: int) -> Path:
    """Where the run of ``name`` with ``seed`` logs."""
    return LOGS / f"{name}-seed{seed}.log"


def record_path(name: str, seed: int) -> Path:
    """The record of the run of ``name`` with ``seed``: its inputs' fingerprint and its run folder."""
    return LOGS / f"{name}-seed{seed}.json"


def run_args(name: str, seed: int, steps: int | None) -> list[str]:
    """The command-line arguments of one protocol run (after ``python -m colorlab experiment``)."""
    args = ["--config", f"experiments/{name}.yaml"]
    for item in EXPERIMENTS[name]:
        args += ["--config", item] if item.endswith(".yaml") else [item]
    if steps is not None and name in HEADLINE:
        args.append(f"--trainer.max_steps={steps}")
    return [*args, f"--seed_everything={seed}"]


def parsed_yaml(path: Path, including: tuple[Path, ...] = ()) -> object:
    """What ``path`` parses to, each value naming a YAML file beside it (a nested config file, as jsonargparse
    reads ``degradations: degradations/old_print.yaml``) replaced by that file's content; a clear exit, not a
    traceback, when a file is not YAML or includes itself."""
    if path.resolve() in including:
        sys.exit(f"{path}: includes itself (through {' -> '.join(p.name for p in including)})")
    try:
        content = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        sys.exit(f"{path}: not valid YAML ({error})".replace("\n", " "))
    return _inlined(content, path.parent, (*including, path.resolve()))


def _inlined(value: object, folder: Path, including: tuple[Path, ...]) -> object:
    """``value`` with the nested YAML files it names (relative to ``folder``) parsed in place."""
    if isinstance(value, dict):
        return {key: _inlined(item, folder, including) for key, item in value.items()}
    if isinstance(value, list):
        return [_inlined(item, folder, including) for item in value]
    if isinstance(value, str) and value.endswith((".yaml", ".yml")) and (folder / value).is_file():
        return parsed_yaml(folder / value, including)
    return value


def fingerprint(name: str, seed: int, steps: int | None) -> str:
    """What a run depends on: its arguments, the content of every YAML they name, and the photo folder.

    The YAMLs count by what they parse to, nested files included, so editing a comment or the layout, or moving
    a list into a shared file, does not retrain a run, while editing the shared file does."""
    args = run_args(name, seed, steps)
    files = [args[i + 1] for i, arg in enumerate(args) if arg == "--config"]
    payload = {"args": args, "yamls": {f: parsed_yaml(REPO / f) for f in files}, "photos": photos()}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def read_record(name: str, seed: int) -> dict:
    """The record of the run of ``name`` with ``seed`` ({} when there is none or it is unreadable)."""
    try:
        record = json.loads(record_path(name, seed).read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def recorded_run(name: str, seed: int, steps: int | None = None, check: bool = True) -> Path | None:
    """The finished run folder recorded for ``name`` and ``seed`` (None if there is none); with ``check``, only
    while its inputs are unchanged and its selected checkpoint is still on disk."""
    record = read_record(name, seed)
    folder = REPO / record.get("run_dir", "")
    try:
        results = json.loads((folder / "results.json").read_text())
    except (OSError, ValueError):
        return None
    if check and (record.get("fingerprint") != fingerprint(name, seed, steps)
                  or not Path(results.get("best_checkpoint") or "").is_file()):  # fmt: skip
        return None
    return folder


def resumable_version(name: str, seed: int, key: str) -> str | None:
    """The version of the recorded, unfinished run with these inputs that left a checkpoint to go on from."""
    from colorlab.runs.folder import RunFolder

    record = read_record(name, seed)
    if record.get("fingerprint") != key or not record.get("version"):
        return None
    folder = RunFolder(REPO / record["run_dir"])
    return record["version"] if folder.phases is not None or folder.resume_checkpoint() is not None else None


def run(name: str, seed: int, steps: int | None, force: bool = False) -> Path | None:
    """Train + test one experiment under its protocol with ``seed``, alone on the machine; returns its run folder
    (None if it failed). An unchanged finished run is reused, and an unchanged interrupted one (killed, or the
    session ended) continues from its last checkpoint, unless ``force``."""
    from colorlab.runs.folder import RUNS_ROOT

    if not force and (folder := recorded_run(name, seed, steps)) is not None:
        print(f"{name} seed {seed}: reused {folder.relative_to(REPO)} (inputs unchanged)", flush=True)
        return folder
    key = fingerprint(name, seed, steps)
    version = None if force else resumable_version(name, seed, key)
    resume = version is not None
    seconds = read_record(name, seed).get("seconds", 0.0) if resume else 0.0
    if version is None:
        stamp = f"{time.strftime('%Y%m%d-%H%M%S')}-seed{seed}"
        version = next(v for v in (stamp, *(f"{stamp}-{i}" for i in range(2, 1000)))
                       if not (REPO / RUNS_ROOT / name / v).exists())  # fmt: skip
    run_dir = Path(RUNS_ROOT) / name / version
    record = {"fingerprint": key, "run_dir": str(run_dir), "version": version, "seconds": seconds}
    # recorded before it starts, so a run killed half-way is found and continued next time
    LOGS.mkdir(parents=True, exist_ok=True)
    record_path(name, seed).write_text(json.dumps(record, indent=2))
    env = {**os.environ, "COLORLAB_DATA": photos()}
    command = [sys.executable, "-m", "colorlab", "experiment", *run_args(name, seed, steps),
               f"--run.version={version}", *(["--resume"] if resume else [])]  # fmt: skip
    print(f"{name} seed {seed}: {' '.join(command[1:])}", flush=True)
    started = time.time()
    with log_path(name, seed).open("a" if resume else "w") as f:
        code = subprocess.call(command, cwd=REPO, env=env, stdout=f, stderr=subprocess.STDOUT)
    record["seconds"] = seconds + time.time() - started
    record_path(name, seed).write_text(json.dumps(record, indent=2))
    print(f"{name} seed {seed}: exit {code}, log {log_path(name, seed)}", flush=True)
    return REPO / run_dir if code == 0 and (REPO / run_dir / "results.json").is_file() else None


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


def scored(rows: list[tuple[str, int, Path]]) -> list[tuple[str, str]]:
    """(label, checkpoint) of every checkpoint the evaluation scores: each run's own selection, and its
    lowest-val-ΔE00 checkpoint where that is a different file."""
    out = []
    for name, seed, folder in rows:
        results = json.loads((folder / "results.json").read_text())
        out.append((f"{name} s{seed}", results["best_checkpoint"]))
        other = results.get("delta_e00_checkpoint")
        if other and Path(other).is_file() and step_of(other) != step_of(results["best_checkpoint"]):
            out.append((f"{name} s{seed}{BY_DELTA_E00}", other))
    return out


def step_of(checkpoint: str) -> str:
    """The ``{epoch}-{step}`` a selected checkpoint's file name ends with: two selections of one step are one."""
    return "-".join(Path(checkpoint).stem.split("-")[-2:])


def evaluate(rows: list[tuple[str, int, Path]]) -> dict:
    """Score the selected checkpoints of every run together at full resolution on the test split; reused while
    the same checkpoint files (same size and time) and the same test folder were scored last time."""
    from colorlab.runs.folder import EVALUATION_JSON

    data = Path(photos()) / "val"
    checkpoints = scored(rows)
    key = hashlib.sha256(json.dumps(
        [str(data), *((label, c, Path(c).stat().st_size, Path(c).stat().st_mtime_ns) for label, c in checkpoints)]
    ).encode()).hexdigest()[:16]  # fmt: skip
    stamp = EVALUATION / "inputs.sha256"
    if stamp.is_file() and stamp.read_text() == key and (EVALUATION / EVALUATION_JSON).is_file():
        print(f"evaluation reused: {EVALUATION} (same checkpoints)", flush=True)
        return json.loads((EVALUATION / EVALUATION_JSON).read_text())
    if EVALUATION.exists():
        shutil.rmtree(EVALUATION)
    command = [sys.executable, "-m", "colorlab", "evaluate", "--ckpt", *(c for _, c in checkpoints),
               "--names", *(label for label, _ in checkpoints), "--data", str(data), "-o", str(EVALUATION)]  # fmt: skip
    print(" ".join(command[1:]), flush=True)
    subprocess.run(command, cwd=REPO, check=True)
    stamp.write_text(key)
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
        for suffix, monitor in (("", results["selection"]["monitor"]), (BY_DELTA_E00, "val/delta_e00")):
            label = f"{name} s{seed}{suffix}"
            if label not in means:
                continue
            values, verdict = means[label], learning.get(label) or {}
            margin = f"{'yes' if verdict.get('learning') else 'no'} ({verdict['margin']:+.2f})" if verdict else ""
            lines.append(
                f"| `{name}` | {results['model_class']} | {seed} | {_cell(values, 'delta_e00', 2)} | {margin} | "
                f"{_metric_cells(values, truth)} | `{monitor}` | {results['steps']} | "
                f"{results['fit_seconds'] / 60:.1f} min ({results.get('hardware', '?')}) |"
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


def verdict(rows: list[tuple[str, int, Path]], evaluation: dict) -> str:
    """The results' headline in numbers: the best family's margin over the best trivial colorizer (mean over its
    seeds) with its colourfulness, and how many families beat that colorizer with at least one row."""
    from colorlab.baselines import BASELINE_NAMES

    means, learning = evaluation["means"], evaluation["learning"]
    truth = means["ground truth"]["colorfulness"]
    baseline = min((means[label]["delta_e00"], label) for label in BASELINE_NAMES.values() if label in means)
    families: dict[str, list[str]] = {}
    for name, seed, _ in rows:
        if name in HEADLINE:
            families.setdefault(name, []).append(f"{name} s{seed}")
    if not families:
        return ""

    def mean(labels: list[str], key: str) -> float:
        return sum(means[label][key] for label in labels) / len(labels)

    best = min(families, key=lambda name: mean(families[name], "delta_e00"))
    beating = [name for name, labels in families.items()
               if any((learning.get(label) or {}).get("learning") for label in labels)
               or any((learning.get(label + BY_DELTA_E00) or {}).get("learning") for label in labels)]  # fmt: skip
    seeds = len(families[best])
    return (f"- best family: `{best}`, test ΔE00 {mean(families[best], 'delta_e00'):.2f} (mean of {seeds} seed"
            f"{'s' if seeds > 1 else ''}), {baseline[0] - mean(families[best], 'delta_e00'):+.2f} against the best "
            f"trivial colorizer ({baseline[1]}, {baseline[0]:.2f}), colourfulness "
            f"{100 * mean(families[best], 'colorfulness') / truth:.0f} % of the truth's\n"
            f"- families beating the best trivial colorizer on test ΔE00: {len(beating)} of {len(families)}"
            f"{' (' + ', '.join(f'`{n}`' for n in beating) + ')' if beating else ''}\n")  # fmt: skip


def finished_rows(steps: int | None, say_left_out: bool = False) -> list[tuple[str, int, Path]]:
    """(name, seed, folder) of every finished run of the current protocol and budget, in table order: a table
    never mixes budgets or photo sets. With ``say_left_out``, each recorded run left out is named, with why."""
    rows = []
    for name in [*HEADLINE, *STUDIES]:
        for seed in SEEDS:
            if folder := recorded_run(name, seed, steps if name in HEADLINE else None):
                rows.append((name, seed, folder))
            elif say_left_out and read_record(name, seed):
                rerun = f"--only {name}" if name in HEADLINE else "--studies"
                print(f"{name} seed {seed}: not in the table: it ran on other inputs (another budget, photo folder or "
                      f"YAML content) or its checkpoint is gone; rerun it with {rerun}", flush=True)  # fmt: skip
    return rows


def learning_families(rows: list[tuple[str, int, Path]], evaluation: dict) -> list[str]:
    """The headline families with a run that beats the best trivial colorizer on test ΔE00 (by its own selection
    or its lowest-val-ΔE00 checkpoint): each gets a second seed."""
    learning = evaluation["learning"]
    return list(dict.fromkeys(
        name for name, seed, _ in rows if name in HEADLINE
        and any((learning.get(f"{name} s{seed}{suffix}") or {}).get("learning") for suffix in ("", BY_DELTA_E00))
    ))  # fmt: skip


def main() -> None:
    """Run the chosen experiments one at a time (reusing unchanged finished runs), a second seed for every family
    that beats the trivial colorizers, then evaluate and write."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="experiments to run (default: the headline rows)")
    parser.add_argument("--studies", action="store_true", help="run the short-budget studies instead")
    parser.add_argument("--seeds", type=int, nargs="+", help="seeds for the named experiments (default: 42)")
    parser.add_argument("--steps", type=int, help="the budget: optimizer steps per headline run (default: the "
                        "protocol YAML's trainer.max_steps)")  # fmt: skip
    parser.add_argument("--only", metavar="NAME", help="retrain this experiment (each seed it has) and reuse "
                        "every other run")  # fmt: skip
    parser.add_argument("--table-only", action="store_true", help="only rebuild the outputs from finished runs")
    parser.add_argument("--train-only", action="store_true", help="train (or reuse) the runs; evaluate later "
                        "with --table-only")  # fmt: skip
    args = parser.parse_args()
    if args.steps is not None and args.steps < 1:
        parser.error("--steps must be a positive number of optimizer steps")
    names = [args.only] if args.only else args.names or list(STUDIES if args.studies else HEADLINE)
    unknown = set(names) - set(EXPERIMENTS)
    if unknown:
        parser.error(f"unknown experiments {sorted(unknown)}; choose from {list(EXPERIMENTS)}")
    os.environ["COLORLAB_DATA"] = photos()  # the runs, the baselines and the val-curve plot read the same photos
    started = time.time()
    if not args.table_only:
        for name in names:
            had = [seed for seed in SEEDS if read_record(name, seed)] if args.only else []
            seeds = args.seeds or had or SEEDS[:1]
            for seed in seeds:
                run(name, seed, args.steps, force=bool(args.only))
        if not args.names and not args.studies and not args.only and (rows := finished_rows(args.steps)):
            # scored once here; the final evaluation below reuses it when no second seed had to be trained
            for name in learning_families(rows, evaluate(rows)):
                run(name, SEEDS[1], args.steps)
    if args.train_only:
        return
    rows = finished_rows(args.steps, say_left_out=True)
    if not rows:
        sys.exit("no finished runs of this protocol and budget to report (see runs/results-logs/)")
    evaluation = evaluate(rows)
    shutil.copy(EVALUATION / "grid.png", DOCS / "results_grid.png")
    curves = plot(rows)
    out = DOCS / "results.md"
    out.write_text(
        "# Results (`make results`)\n\n" + "Protocol" + __doc__.split("Protocol", 1)[1] + "\n"
        + table(rows, evaluation) + "\n" + verdict(rows, evaluation) + seed_spread(rows, evaluation) + "\n"
        + "\n".join(f"- {note}" for note in evaluation["notes"]) + "\n\n"
        + f"![gray | models | truth]({(DOCS / 'results_grid.png').name})\n\n![val ΔE00]({curves.name})\n"
    )  # fmt: skip
    print(f"table: {out}\ngrid: {DOCS / 'results_grid.png'}\ncurves: {curves}\n"
          f"make results took {(time.time() - started) / 60:.1f} min")  # fmt: skip


if __name__ == "__main__":
    main()
