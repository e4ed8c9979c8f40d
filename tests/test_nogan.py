"""NoGAN (DeOldify): the three phases chain and resume; critic pretraining learns; the switcher switches."""

from __future__ import annotations

import csv
import itertools
import json
from pathlib import Path

import lightning as L
import pytest
import torch
from PIL import Image

from colorlab.approaches.nogan import NoGANColorizer
from colorlab.color import lab_batch
from colorlab.data.datasets import SAMPLE_TRAIN, build_transform, load_samples
from colorlab.losses import FeatureLoss
from colorlab.models.critics import DeOldifyCritic, SelfAttention
from colorlab.models.unet import TimmUNet, UNet
from colorlab.runs.folder import RunFolder
from colorlab.training.config import load_config
from colorlab.training.experiment import run_experiment
from colorlab.training.phases import PhaseRecord, parse_phases
from tests.helpers import FixedBatchDataModule, fit_fixed_batch

REPO = Path(__file__).resolve().parents[1]
PRESETS = ["nogan_stable", "nogan_artistic"]

# The stable preset with tiny nets, 32 px crops and three short phases (the presets' own phases are longer).
TINY = """
run:
  phases:
    - name: generator
      overrides: {model.init_args.phase: generator, model.init_args.unfreeze_at_epoch: 1, trainer.max_epochs: 2}
    - name: critic
      overrides: {model.init_args.phase: critic, trainer.max_epochs: 2, run.monitor: val/critic_accuracy,
                  run.monitor_mode: max}
    - name: gan
      overrides: {model.init_args.phase: gan, trainer.max_epochs: -1, trainer.max_steps: 4,
                  trainer.val_check_interval: 2, trainer.check_val_every_n_epoch: null, run.save_top_k: -1}
trainer: {accelerator: cpu, enable_progress_bar: false, enable_model_summary: false, log_every_n_steps: 1}
model:
  init_args:
    generator:
      class_path: colorlab.models.unet.TimmUNet
      init_args: {decoder_channels: [16, 8, 8, 8, 8]}
    critic:
      class_path: colorlab.models.critics.DeOldifyCritic
      init_args: {base_channels: 8, n_blocks: 2}
data:
  init_args: {batch_size: 4, image_size: 32, resize: 32, num_workers: 0}
"""


def tiny_critic() -> DeOldifyCritic:
    return DeOldifyCritic(base_channels=8, n_blocks=2, dropout=0.0)


@pytest.fixture
def tiny_experiment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], list[str]]:
    """(configs, overrides) of a tiny NoGAN run on 8 + 2 real photo crops written to ``tmp_path``."""
    transform = build_transform(40, train=True, resize=64, hflip=False)
    torch.manual_seed(0)
    for i, image in enumerate(load_samples(SAMPLE_TRAIN[:5]) * 2):
        folder = tmp_path / "photos" / ("train" if i < 8 else "val")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(transform(image).permute(1, 2, 0).numpy()).save(folder / f"{i}.png")
    monkeypatch.setenv("COLORLAB_DATA", str(tmp_path / "photos"))
    (tmp_path / "tiny.yaml").write_text(TINY)
    configs = [str(REPO / "experiments" / "nogan_stable.yaml"), str(tmp_path / "tiny.yaml")]
    return configs, [f"--run.root={tmp_path / 'runs'}", "--run.wandb=disabled"]


@pytest.fixture
def phase_starts(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int, dict[str, torch.Tensor]]]:
    """Records (phase, epoch, weights) each time a NoGAN fit starts training."""
    starts = []

    def on_train_start(self: NoGANColorizer) -> None:
        starts.append((self.phase, self.current_epoch, {k: v.clone() for k, v in self.state_dict().items()}))

    monkeypatch.setattr(NoGANColorizer, "on_train_start", on_train_start, raising=False)
    return starts


def checkpoint_state(path: str) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=False)["state_dict"]


def same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], prefix: str) -> bool:
    keys = [k for k in a if k.startswith(prefix)]
    return bool(keys) and all(torch.equal(a[k], b[k]) for k in keys)


# ---- the phased experiment ----------------------------------------------------------------------------


def test_three_phases_chain(tiny_experiment, phase_starts):
    configs, overrides = tiny_experiment
    results = run_experiment(configs, overrides)
    phases = {row["name"]: row for row in results["phases"]}
    assert list(phases) == ["generator", "critic", "gan"]
    assert [(phase, epoch) for phase, epoch, _ in phase_starts] == [
        ("generator", 0),
        ("critic", 0),
        ("gan", 0),
    ]
    for row in phases.values():
        assert Path(row["handover_checkpoint"]).is_file()
        assert Path(row["folder"], "metrics.csv").is_file()
    generator = checkpoint_state(phases["generator"]["handover_checkpoint"])
    critic = checkpoint_state(phases["critic"]["handover_checkpoint"])
    # Phase 2 starts from phase 1's best weights, keeps the generator frozen and trains the critic.
    assert same_weights(phase_starts[1][2], generator, "")
    assert same_weights(critic, generator, "colorizer.generator.")
    assert not same_weights(critic, generator, "critic.")
    assert same_weights(phase_starts[2][2], critic, "")
    # The gan phase validated (and kept a checkpoint) every 2 steps; the report tests every phase.
    assert len(list(Path(phases["gan"]["folder"], "checkpoints").glob("best-*.ckpt"))) == 2
    run_dir = Path(phases["gan"]["folder"]).parent
    report = (run_dir / "report.md").read_text()
    assert "| critic |" in report and "gray (ab = 0)" in report and "learning: " in report
    assert all(row["test"]["delta_e00"] > 0 for row in phases.values())
    # Every phase's checkpoint is tested the same way: by its own trainer, logged in its own CSV.
    for row in phases.values():
        rows = csv.DictReader(Path(row["folder"], "metrics.csv").read_text().splitlines())
        logged = [r for r in rows if r.get("test/delta_e00")]
        assert [float(r["test/delta_e00"]) for r in logged] == [pytest.approx(row["test"]["delta_e00"])]
    assert (
        results["test"] == phases["gan"]["test"]
        and results["best_checkpoint"] == phases["gan"]["handover_checkpoint"]
    )
    finished = json.loads((run_dir / "phases.json").read_text())["finished"]
    assert set(finished) == set(phases)
    assert all(Path(summary["last_checkpoint"]).name == "last.ckpt" for summary in finished.values())


def test_resume_continues_the_interrupted_phase(tiny_experiment, phase_starts, monkeypatch):
    configs, overrides = tiny_experiment

    def crash_in_critic_epoch_1(self: NoGANColorizer) -> None:
        if self.phase == "critic" and self.current_epoch == 1:
            raise RuntimeError("simulated crash")

    with monkeypatch.context() as patch:
        patch.setattr(NoGANColorizer, "on_train_epoch_start", crash_in_critic_epoch_1)
        with pytest.raises(RuntimeError, match="simulated crash"):
            run_experiment(configs, overrides)
    run_dir = next(Path(overrides[0].split("=", 1)[1], "nogan_stable").iterdir())
    assert set(json.loads((run_dir / "phases.json").read_text())["finished"]) == {"generator"}
    del phase_starts[:]

    results = run_experiment(configs, overrides, resume=True)
    # Phase 1 is not rerun; phase 2 continues from its last.ckpt (epoch 1), then phase 3 runs.
    assert [(phase, epoch) for phase, epoch, _ in phase_starts] == [("critic", 1), ("gan", 0)]
    assert results["version"] == run_dir.name
    assert set(json.loads((run_dir / "phases.json").read_text())["finished"]) == {
        "generator",
        "critic",
        "gan",
    }
    assert (run_dir / "report.md").is_file()


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_phases_parse(preset):
    config = [REPO / "experiments" / f"{preset}.yaml"]
    phases = parse_phases(load_config(config).run.phases)
    assert [p.overrides["model.init_args.phase"] for p in phases] == [
        "generator",
        "generator",
        "critic",
        "gan",
    ]
    for phase in phases:  # every phase's overrides are valid keys and values for the parser
        parsed = load_config(config, phase.argv())
        assert parsed.run.name == preset
        assert all(parsed[key] == value for key, value in phase.overrides.items())


def test_phase_list_errors(tmp_path):
    with pytest.raises(ValueError, match="unique"):
        parse_phases([{"name": "a"}, {"name": "a"}])
    with pytest.raises(ValueError, match="unknown keys"):
        parse_phases([{"name": "a", "override": {}}])
    with pytest.raises(ValueError, match="plain folder name"):
        parse_phases([{"name": "../a"}])
    PhaseRecord(RunFolder(tmp_path), ["a", "b"]).save()
    with pytest.raises(ValueError, match="config now has"):
        PhaseRecord.open(RunFolder(tmp_path), ["a", "c"], resume=True)
    with pytest.raises(ValueError, match="config now has"):  # a phased run resumed without its phases
        PhaseRecord.open(RunFolder(tmp_path), [""], resume=True)
    with pytest.raises(ValueError, match="single-phase run"):
        PhaseRecord.open(RunFolder(tmp_path / "single"), ["a", "b"], resume=True)


# ---- the module's phases ------------------------------------------------------------------------------


def test_generator_pretrain_overfits_fixed_batch(rgb_uint8):
    torch.manual_seed(0)
    module = NoGANColorizer(
        TimmUNet(pretrained=True, decoder_channels=(32, 16, 16, 8, 8)),
        tiny_critic(),
        feature_loss=FeatureLoss(),
        feature_weight=0.05,
        generator_optimizer=lambda p: torch.optim.Adam(p, lr=1e-2),
    )
    losses = fit_fixed_batch(module, rgb_uint8, steps=40)  # from the gray start (a lower first loss)
    assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:5]) / 5, losses
    assert {"train/l1", "train/feature"} <= set(module.trainer.callback_metrics)


def test_encoder_frozen_until_unfreeze_epoch(rgb_uint8):
    module = NoGANColorizer(TimmUNet(decoder_channels=(16, 8, 8, 8, 8)), tiny_critic(), unfreeze_at_epoch=1)
    flags: list[bool] = []
    snapshots: list[torch.Tensor] = []

    class Watch(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            flags.append(pl_module.generator.encoder_trainable)

        def on_train_epoch_end(self, trainer, pl_module):
            snapshots.append(next(pl_module.generator.encoder.parameters()).detach().clone())

    start = next(module.generator.encoder.parameters()).detach().clone()
    trainer = L.Trainer(max_epochs=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                        callbacks=[Watch()])  # fmt: skip
    trainer.fit(module, FixedBatchDataModule(rgb_uint8, steps_per_epoch=2))
    assert flags == [False, False, True, True]
    assert torch.equal(snapshots[0], start) and not torch.equal(snapshots[1], start)


def test_critic_pretrain_raises_accuracy_and_keeps_generator(rgb_uint8):
    torch.manual_seed(0)
    module = NoGANColorizer(UNet(base_channels=4, depth=2), tiny_critic(), phase="critic",
                            critic_optimizer=lambda p: torch.optim.Adam(p, lr=2e-3))  # fmt: skip
    batch = lab_batch(rgb_uint8)

    def accuracy() -> float:
        module.eval()
        with torch.no_grad():
            accuracy = module.critic_accuracy(batch["L"], batch["ab"], module.generator(batch["L"])).item()
        module.train()
        return accuracy

    generator_before = {k: v.clone() for k, v in module.generator.state_dict().items()}
    before = accuracy()
    losses = fit_fixed_batch(module, rgb_uint8, steps=30, key="train/critic_loss")
    after = accuracy()
    assert after > before and after == 1.0, (before, after)
    assert losses[-1] < losses[0]
    assert "train/critic_accuracy" in module.trainer.callback_metrics
    assert all(torch.equal(v, module.generator.state_dict()[k]) for k, v in generator_before.items())


@pytest.mark.parametrize(
    ("critic_threshold", "generator_threshold", "turns", "switches"),
    [
        (10.0, None, [1, 0, 1, 0, 1, 0], 6),  # the critic's loss is always below 10: one batch per turn
        (-1.0, None, [1, 1, 1, 1, 1, 1], 0),  # never below -1: the critic keeps training
        (None, -1.0, [1, 0, 0, 0, 0, 0], 1),  # the generator never reaches its threshold and keeps training
    ],
)
def test_threshold_switcher(rgb_uint8, critic_threshold, generator_threshold, turns, switches):
    torch.manual_seed(0)
    module = NoGANColorizer(UNet(base_channels=4, depth=2), tiny_critic(), phase="gan",
                            critic_threshold=critic_threshold, generator_threshold=generator_threshold)  # fmt: skip
    generator_before = {k: v.clone() for k, v in module.generator.state_dict().items()}
    assert fit_fixed_batch(module, rgb_uint8, steps=len(turns), key="train/critic_turn") == turns
    assert module.switches == switches
    # The generator (BatchNorm statistics included) changes only on its own turns.
    unchanged = all(torch.equal(v, module.generator.state_dict()[k]) for k, v in generator_before.items())
    assert unchanged == (0 not in turns)


def test_critic_trains_until_its_loss_is_below_the_threshold(rgb_uint8):
    torch.manual_seed(0)
    module = NoGANColorizer(UNet(base_channels=4, depth=2), tiny_critic(), phase="gan", critic_threshold=0.65,
                            critic_optimizer=lambda p: torch.optim.Adam(p, lr=2e-3))  # fmt: skip
    steps: list[tuple[float, float]] = []

    class Record(L.Callback):
        def on_train_batch_end(self, trainer, *args):
            metrics = trainer.callback_metrics
            steps.append((float(metrics["train/critic_turn"]), float(metrics["train/critic_loss"])))

    trainer = L.Trainer(max_steps=20, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                        callbacks=[Record()])  # fmt: skip
    trainer.fit(module, FixedBatchDataModule(rgb_uint8, steps_per_epoch=20))
    turns = [turn for turn, _ in steps]
    assert turns[0] == 1.0 and 0.0 in turns and turns.count(1.0) > turns.count(0.0)
    for (turn, loss), (next_turn, _) in itertools.pairwise(steps):
        if turn == 1.0:  # a critic batch hands over exactly when its loss fell below 0.65
            assert (next_turn == 0.0) == (loss < 0.65), steps
        else:  # without a generator threshold the generator trains one batch per turn
            assert next_turn == 1.0


def test_unknown_phase_and_unfreeze_without_encoder_are_rejected():
    with pytest.raises(ValueError, match="unknown NoGAN phase"):
        NoGANColorizer(UNet(base_channels=4, depth=1), tiny_critic(), phase="finetune")
    with pytest.raises(ValueError, match="set_encoder_trainable"):
        NoGANColorizer(UNet(base_channels=4, depth=1), tiny_critic(), unfreeze_at_epoch=1)


# ---- the critic -------------------------------------------------------------------------------------------


def test_deoldify_critic_scores_patches_and_gets_gradients():
    critic = DeOldifyCritic(base_channels=8, n_blocks=2)
    ab, L_ = torch.rand(2, 2, 48, 48, requires_grad=True), torch.rand(2, 1, 48, 48)
    scores = critic(ab, L_)
    assert scores.shape == (2, 1, 3, 3) and torch.isfinite(scores).all()
    scores.mean().backward()
    assert ab.grad is not None and all(p.grad is not None for p in critic.parameters() if p.requires_grad)
    with pytest.raises(ValueError, match="at least 32 px"):
        critic(torch.rand(1, 2, 24, 24), torch.rand(1, 1, 24, 24))


def test_self_attention_starts_as_identity():
    x = torch.randn(2, 16, 5, 7)
    assert torch.equal(SelfAttention(16)(x), x)
