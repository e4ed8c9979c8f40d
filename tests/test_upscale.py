"""Super-resolution: the RRDBNet layout and weights, the approaches, the SR data, tiling and the old-photo chain."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from colorlab.approaches.upscale import AdversarialUpscaler, Upscaler
from colorlab.color import l_to_gray_rgb, lab_batch
from colorlab.colorizers.upscale import bicubic_l
from colorlab.data.degrade import GaussianNoise, shrink
from colorlab.data.degraded import DegradedFolderDataModule
from colorlab.inference.tiling import upscale_tiled
from colorlab.metrics import luminance_metrics
from colorlab.models.critics import PatchGAN
from colorlab.models.rrdb import RRDBNet, load_rrdb_weights, rrdb_state_dict, rrdbnet_from_weights
from tests.helpers import fit_fixed_batch, fixed_rgb_batch


def tiny_net(scale: int = 2, **kwargs) -> RRDBNet:
    return RRDBNet(num_feat=8, num_block=1, num_grow_ch=4, scale=scale, **kwargs)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR (dB) of two gray pictures of normalised L."""
    return float(-10 * torch.log10(F.mse_loss(l_to_gray_rgb(a), l_to_gray_rgb(b))))


# ---- the net ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [2, 4])
@pytest.mark.parametrize("channels", [1, 3])
def test_rrdbnet_output_is_scale_times_the_input(scale: int, channels: int):
    net = tiny_net(scale, num_in_ch=channels, num_out_ch=channels)
    out = net(torch.rand(2, channels, 12, 20))
    assert out.shape == (2, channels, 12 * scale, 20 * scale)
    out.mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())


@pytest.mark.parametrize("scale", [2, 4])
def test_upscaler_takes_odd_sizes_and_starts_at_bicubic(scale: int):
    model = Upscaler(tiny_net(scale, zero_last=True), residual=True).eval()
    L = torch.rand(2, 1, 13, 17) * 2 - 1
    with torch.no_grad():
        out = model.upscale_l(L)
    assert out.shape == (2, 1, 13 * scale, 17 * scale)
    # zero_last + residual: step 0 is exactly the bicubic baseline (the project's "neutral answer first").
    torch.testing.assert_close(out.clamp(-1, 1), bicubic_l(L, scale), atol=1e-5, rtol=0)
    _, ab = model.predict_lab(L)
    assert ab.shape == (2, 2, 13 * scale, 17 * scale) and not ab.any()


def test_rrdbnet_x2_rejects_odd_input_with_a_clear_message():
    with pytest.raises(ValueError, match="even H and W"):
        tiny_net(2)(torch.rand(1, 1, 9, 10))
    with pytest.raises(ValueError, match="scale must be 2 or 4"):
        RRDBNet(scale=3)


# ---- published weights ---------------------------------------------------------------------------------


def published_keys(num_in_ch: int, num_out_ch: int, scale: int, feat: int, blocks: int, grow: int) -> dict:
    """The parameter names and shapes of BasicSR's RRDBNet (rrdbnet_arch.py), written out independently."""
    first_in = num_in_ch * (4 if scale == 2 else 1)
    shapes = {"conv_first": (feat, first_in)}
    for b in range(blocks):
        for r in (1, 2, 3):
            for c in range(1, 5):
                shapes[f"body.{b}.rdb{r}.conv{c}"] = (grow, feat + (c - 1) * grow)
            shapes[f"body.{b}.rdb{r}.conv5"] = (feat, feat + 4 * grow)
    for name in ("conv_body", "conv_up1", "conv_up2", "conv_hr"):
        shapes[name] = (feat, feat)
    shapes["conv_last"] = (num_out_ch, feat)
    state = {}
    for name, (out_ch, in_ch) in shapes.items():
        state[f"{name}.weight"] = torch.randn(out_ch, in_ch, 3, 3)
        state[f"{name}.bias"] = torch.randn(out_ch)
    return state


@pytest.mark.parametrize("scale", [2, 4])
@pytest.mark.parametrize("wrapper", ["params_ema", "params", None])
def test_a_published_rrdbnet_file_loads_by_its_key_names(tmp_path: Path, scale: int, wrapper: str | None):
    state = published_keys(3, 3, scale, feat=8, blocks=2, grow=4)
    path = tmp_path / "RealESRGAN_tiny.pth"
    torch.save({wrapper: state} if wrapper else state, path)
    net = load_rrdb_weights(RRDBNet(3, 3, scale, num_feat=8, num_block=2, num_grow_ch=4), path)
    loaded = net.state_dict()
    assert loaded.keys() == state.keys()
    assert all(torch.equal(loaded[k], state[k]) for k in state)


@pytest.mark.parametrize("scale", [2, 4])
def test_a_published_file_builds_its_own_net(tmp_path: Path, scale: int):
    state = published_keys(3, 3, scale, feat=8, blocks=3, grow=4)
    torch.save({"params_ema": state}, tmp_path / "RealESRGAN.pth")
    net = rrdbnet_from_weights(tmp_path / "RealESRGAN.pth")
    assert (net.scale, net.num_in_ch, len(net.body), net.conv_first.out_channels) == (scale, 3, 3, 8)
    assert net(torch.rand(1, 3, 6, 6)).shape == (1, 3, 6 * scale, 6 * scale)
    torch.save({"params": {"conv_first.weight": torch.zeros(1)}}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="other.pth does not hold RRDBNet weights"):
        rrdbnet_from_weights(tmp_path / "other.pth")


def test_original_esrgan_key_names_are_renamed(tmp_path: Path):
    state = published_keys(3, 3, 4, feat=8, blocks=1, grow=4)
    renames = {"body.": "RRDB_trunk.", "conv_body": "trunk_conv", "conv_up1": "upconv1", "conv_up2": "upconv2",
               "conv_hr": "HRconv"}  # fmt: skip
    old = {}
    for key, value in state.items():
        for new, original in renames.items():
            key = key.replace(new, original, 1) if key.startswith(new) else key
        old["module." + key.replace(".rdb", ".RDB")] = value
    torch.save(old, tmp_path / "RRDB_ESRGAN_tiny.pth")
    assert rrdb_state_dict(tmp_path / "RRDB_ESRGAN_tiny.pth").keys() == state.keys()


def test_a_missing_weight_file_is_named(tmp_path: Path):
    missing = tmp_path / "RealESRGAN_x2plus.pth"
    with pytest.raises(FileNotFoundError, match="RealESRGAN_x2plus.pth"):
        load_rrdb_weights(tiny_net(), missing)
    model = Upscaler(tiny_net(), weights=str(missing))
    with pytest.raises(FileNotFoundError, match="RealESRGAN_x2plus.pth"):
        model.setup("fit")


def test_wrong_sizes_do_not_load_silently(tmp_path: Path):
    torch.save(published_keys(3, 3, 2, feat=8, blocks=2, grow=4), tmp_path / "w.pth")
    with pytest.raises(ValueError, match=r"w\.pth does not fit RRDBNet\(scale=2.*num_block=1"):
        load_rrdb_weights(RRDBNet(3, 3, 2, num_feat=8, num_block=1, num_grow_ch=4), tmp_path / "w.pth")


def test_an_rgb_net_upscales_the_gray_picture(tmp_path: Path):
    """A 3-channel net (published weights) reads the gray sRGB picture; the result is an L."""
    model = Upscaler(RRDBNet(3, 3, 4, num_feat=8, num_block=1, num_grow_ch=4), residual=False).eval()
    with torch.no_grad():
        out = model.upscale_l(torch.zeros(1, 1, 6, 6))
    assert out.shape == (1, 1, 24, 24) and out.min() >= -1 and out.max() <= 1


# ---- training --------------------------------------------------------------------------------------------


def sr_pair(size: int = 32, scale: int = 2, n: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """Real photo crops (uint8) and their shrunk copies."""
    hr = fixed_rgb_batch(n, size)
    return hr, torch.stack([shrink(image, scale) for image in hr])


def test_a_tiny_upscaler_overfits_past_bicubic():
    torch.manual_seed(0)
    hr, lr = sr_pair(32, 2)
    model = Upscaler(RRDBNet(num_feat=16, num_block=1, num_grow_ch=8, zero_last=True),
                     optimizer=lambda p: torch.optim.Adam(p, lr=2e-3))  # fmt: skip
    batch = lab_batch(hr)
    L_lr = lab_batch(lr)["L"]
    bicubic = psnr(bicubic_l(L_lr, 2), batch["L"])
    losses = fit_fixed_batch(model, hr, steps=150, extra={"input_rgb": lr})
    model.eval()
    with torch.no_grad():
        learned = psnr(model.upscale_l(L_lr).clamp(-1, 1), batch["L"])
    assert losses[-1] < losses[0]
    assert learned > bicubic + 0.5, f"overfit {learned:.2f} dB vs bicubic {bicubic:.2f} dB"


def test_perceptual_loss_is_added_when_configured():
    from colorlab.losses import FeatureLoss
    from colorlab.models.features import ImageNetFeatures

    hr, lr = sr_pair(32, 2, n=2)
    model = Upscaler(
        tiny_net(), feature_loss=FeatureLoss(ImageNetFeatures(pretrained=False)), feature_weight=0.5
    )
    batch = {**lab_batch(hr), "L_input": lab_batch(lr)["L"]}
    losses = model.training_loss(batch)
    torch.testing.assert_close(losses["loss"], losses["pixel"] + 0.5 * losses["feature"])


def test_the_adversarial_upscaler_trains_with_the_shared_gan_loop():
    torch.manual_seed(0)
    hr, lr = sr_pair(32, 2, n=2)
    critic = PatchGAN(in_channels=2, base_channels=8, n_layers=2)
    model = AdversarialUpscaler(tiny_net(zero_last=True), critic, gan_loss="lsgan")
    before = [p.detach().clone() for p in critic.parameters()]
    losses = fit_fixed_batch(model, hr, steps=3, extra={"input_rgb": lr})
    assert losses and all(math.isfinite(loss) for loss in losses)  # one step of each optimizer per batch
    assert any(not torch.equal(b, p) for b, p in zip(before, critic.parameters()))


# ---- data and metrics --------------------------------------------------------------------------------------


def test_sr_data_pairs_a_clean_crop_with_a_seeded_degraded_small_copy(tiny_photos: Path):
    dm = DegradedFolderDataModule(root=str(tiny_photos), image_size=32, batch_size=2, scale=2,
                                  degradations=[GaussianNoise(p=1.0, sigma=10)])  # fmt: skip
    dm.setup()
    first, again = dm.val_set[0], dm.val_set[0]
    assert first["rgb"].shape == (3, 32, 32) and first["input_rgb"].shape == (3, 16, 16)
    assert torch.equal(first["input_rgb"], again["input_rgb"])  # seeded: every evaluation sees the same input
    assert not torch.equal(first["input_rgb"], shrink(first["rgb"], 2))  # and it is degraded
    batch = dm.on_after_batch_transfer({k: v[None] for k, v in first.items()}, 0)
    assert batch["L_input"].shape == (1, 1, 16, 16) and batch["L"].shape == (1, 1, 32, 32)
    with pytest.raises(ValueError, match="dividing image_size"):
        DegradedFolderDataModule(root=str(tiny_photos), image_size=30, scale=4)


def test_upscaler_is_scored_on_luminance_beside_bicubic():
    hr, lr = sr_pair(32, 2, n=2)
    batch = {**lab_batch(hr), "L_input": lab_batch(lr)["L"]}
    model = Upscaler(tiny_net(zero_last=True)).eval()
    assert set(model.new_metrics("val/").keys()) == {"val/psnr", "val/ssim"}
    target = model.evaluation_target(batch)
    torch.testing.assert_close(target, l_to_gray_rgb(batch["L"]))
    baselines = model.trivial_baselines(None)
    assert list(baselines) == ["bicubic"]
    bicubic = baselines["bicubic"].colorize_rgb(batch["L_input"])
    assert bicubic.shape == target.shape
    metrics = luminance_metrics("")
    metrics.update(model.colorize_rgb(batch["L_input"]), target)
    # The untrained residual model is bicubic, so it scores exactly the baseline.
    baseline = luminance_metrics("")
    baseline.update(bicubic, target)
    torch.testing.assert_close(metrics.compute()["psnr"], baseline.compute()["psnr"], atol=1e-3, rtol=0)


def test_the_experiment_report_scores_the_upscaler_against_bicubic(
    tiny_photos: Path, tmp_path: Path, monkeypatch
):
    from colorlab.training.experiment import run_experiment

    monkeypatch.setenv("COLORLAB_DATA", str(tiny_photos))
    config = Path(__file__).resolve().parents[1] / "experiments" / "upscale_x2.yaml"
    overrides = [f"--run.root={tmp_path}", "--run.wandb=disabled", "--trainer.max_steps=2",
                 "--trainer.accelerator=cpu", "--trainer.enable_progress_bar=false",
                 "--data.init_args.num_workers=0", "--data.init_args.batch_size=2", "--data.init_args.image_size=32",
                 "--model.init_args.net.init_args.num_block=1"]  # fmt: skip
    results = run_experiment([str(config)], overrides)
    assert set(results["test"]) >= {"psnr", "ssim"} and "delta_e00" not in results["test"]
    assert set(results["reference"]) == {"bicubic", "truth"}
    assert list(results["learning"]) == ["psnr"]  # judged on luminance, not on the colour headline
    assert results["learning"]["psnr"]["best_baseline"] == "bicubic"
    report = (Path(results["best_checkpoint"]).parents[1] / "report.md").read_text()
    assert "bicubic (upscaled L)" in report


# ---- tiling -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [2, 4])
def test_tiled_upscaling_equals_the_untiled_result(scale: int):
    torch.manual_seed(0)
    net = tiny_net(scale)
    torch.nn.init.normal_(net.conv_last.weight, std=0.1)
    model = Upscaler(net).eval()
    L = torch.rand(1, 1, 50, 38) * 2 - 1
    with torch.no_grad():
        whole = model.upscale_l(L).clamp(-1, 1)
    # Receptive field of this net: about 17 convolutions at the body's resolution (x2: half the input's).
    tiled = upscale_tiled(model, L, tile=16, overlap=40 if scale == 2 else 24)
    assert tiled.shape == whole.shape
    torch.testing.assert_close(tiled, whole, atol=1e-4, rtol=0)
    # The overlap is what makes it exact: without it the seams differ (so this test can fail).
    seams = upscale_tiled(model, L, tile=16, overlap=0)
    assert (seams - whole).abs().max() > 1e-3


# ---- the old-photo chain --------------------------------------------------------------------------------------

REPO = Path(__file__).resolve().parents[1]


def fit_tiny(root: Path, name: str, config: str, overrides: list[str], data: Path) -> Path:
    """A real checkpoint of an experiment YAML shrunk to a few channels, trained 2 steps on 32 px crops."""
    from colorlab.cli import main as cli_main

    cli_main([
        "fit", "--config", str(REPO / "experiments" / config), f"--run.root={root}", f"--run.name={name}",
        "--run.version=v", "--run.wandb=disabled", "--trainer.accelerator=cpu", "--trainer.max_steps=2",
        "--trainer.max_time=null", "--trainer.limit_val_batches=1", "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false", "--trainer.num_sanity_val_steps=0", f"--data.init_args.root={data}",
        "--data.init_args.batch_size=2", "--data.init_args.image_size=32", "--data.init_args.num_workers=0",
        *overrides,
    ])  # fmt: skip
    return root / name / "v" / "checkpoints" / "last.ckpt"


@pytest.fixture(scope="module")
def chain_ckpts(tmp_path_factory: pytest.TempPathFactory, tiny_photos: Path) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runs")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WANDB_MODE", "disabled")
        restore = fit_tiny(root, "rc", "restore_colorize.yaml", [
            "--model.init_args.net.init_args.pretrained=false", "--model.init_args.net.init_args.decoder_channels=[8,8,8,8,8]",
            f"--model.init_args.prior_path={REPO / 'priors/zhang_photos.npy'}", "--data.init_args.resize=40"],
            tiny_photos)  # fmt: skip
        upscale = fit_tiny(root, "up", "upscale_x2.yaml", ["--model.init_args.net.init_args.num_block=1",
                           "--model.init_args.net.init_args.num_feat=8"], tiny_photos)  # fmt: skip
    return {"restore_colorize": restore, "upscale": upscale}


def old_photo_files(folder: Path) -> dict[str, tuple[int, int]]:
    """A small degraded gray scan in several modes (and a file that is no picture); name -> (width, height)."""
    folder.mkdir(parents=True, exist_ok=True)
    clean = fixed_rgb_batch(1, 48)[0]
    small = GaussianNoise(p=1.0, sigma=12)(shrink(clean, 2), generator=0)  # 24 px, grainy
    gray = Image.fromarray(small.permute(1, 2, 0).numpy()).convert("L").resize((30, 22))
    gray.save(folder / "scan.jpg", quality=60)
    rgba = gray.convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(gray.size))
    rgba.save(folder / "cutout.png")
    Image.fromarray(np.asarray(gray, dtype=np.uint16) * 257).save(folder / "deep16.png")
    (folder / "notes.png").write_bytes(b"not a picture")
    return {"scan_x2.jpg": (60, 44), "cutout_x2.png": (60, 44), "deep16_x2.png": (60, 44)}


def run_chain(argv: list[str]) -> int:
    from colorlab.cli import main as cli_main

    try:
        cli_main(["restore-colorize-upscale", "--no-progress", *argv])
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_restore_colorize_upscale_end_to_end(chain_ckpts: dict[str, Path], tmp_path: Path, capsys):
    expected = old_photo_files(tmp_path / "in")
    out = tmp_path / "out"
    argv = [str(tmp_path / "in"), "-o", str(out), "--ckpt", str(chain_ckpts["restore_colorize"]),
            "--upscale-ckpt", str(chain_ckpts["upscale"]), "--tile", "8", "--overlap", "4"]  # fmt: skip
    assert run_chain(argv) == 1  # the file that is no picture fails alone
    err = capsys.readouterr().err
    assert "notes.png" in err and "wrote 3 file(s)" in err
    for name, size in expected.items():
        with Image.open(out / name) as img:
            assert img.size == size
            if name.startswith("cutout"):
                assert img.mode == "RGBA"  # the alpha is kept, at the new size
                assert np.asarray(img.getchannel("A")).std() > 10
            else:
                assert np.asarray(img.convert("RGB")).std() > 1
    # Again into the same folder: nothing is replaced, the results go beside the first ones.
    before = {p: p.read_bytes() for p in out.iterdir()}
    assert run_chain(argv) == 1
    assert all(p.read_bytes() == data for p, data in before.items())
    assert (out / "scan_x2-1.jpg").is_file() and "taken" in capsys.readouterr().err


def test_separate_stages_and_a_plain_factor(chain_ckpts: dict[str, Path], tmp_path: Path):
    old_photo_files(tmp_path / "in")
    rc = str(chain_ckpts["restore_colorize"])
    argv = [str(tmp_path / "in" / "scan.jpg"), "-o", str(tmp_path / "out"), "--restore-ckpt", rc,
            "--colorize-ckpt", rc, "--factor", "3"]  # fmt: skip
    assert run_chain(argv) == 0
    with Image.open(tmp_path / "out" / "scan_x3.jpg") as img:
        assert img.size == (90, 66)


def test_a_published_weight_file_upscales_in_the_chain(chain_ckpts: dict[str, Path], tmp_path: Path):
    old_photo_files(tmp_path / "in")
    torch.save(
        {"params_ema": published_keys(3, 3, 4, feat=8, blocks=1, grow=4)}, tmp_path / "RealESRGAN_x4.pth"
    )
    argv = [str(tmp_path / "in" / "scan.jpg"), "-o", str(tmp_path / "out"), "--ckpt", str(chain_ckpts["restore_colorize"]),
            "--upscale-ckpt", str(tmp_path / "RealESRGAN_x4.pth")]  # fmt: skip
    assert run_chain(argv) == 0
    with Image.open(tmp_path / "out" / "scan_x4.jpg") as img:
        assert img.size == (120, 88)


def test_the_chain_names_what_is_wrong(chain_ckpts: dict[str, Path], tmp_path: Path, capsys):
    old_photo_files(tmp_path / "in")
    rc, up = str(chain_ckpts["restore_colorize"]), str(chain_ckpts["upscale"])
    scan, out = str(tmp_path / "in" / "scan.jpg"), str(tmp_path / "out")
    assert run_chain([scan, "-o", out, "--ckpt", rc, "--upscale-ckpt", rc]) == 2
    assert "given as the upscaler" in capsys.readouterr().err
    assert run_chain([scan, "-o", out, "--ckpt", rc, "--upscale-ckpt", str(tmp_path / "gone.ckpt")]) == 2
    assert "gone.ckpt" in capsys.readouterr().err
    assert run_chain([scan, "-o", out, "--ckpt", rc, "--upscale-ckpt", up, "--factor", "4"]) == 2
    assert "enlarges x2" in capsys.readouterr().err
    inside = str(tmp_path / "in" / "results")  # outputs inside an input folder would become inputs
    assert run_chain([str(tmp_path / "in"), "-o", inside, "--ckpt", rc]) == 2
    assert "inside the input folder" in capsys.readouterr().err and not (tmp_path / "in" / "results").exists()


def test_serve_offers_upscaling_when_an_upscaler_is_loaded(chain_ckpts: dict[str, Path], tmp_path: Path):
    import io

    from fastapi.testclient import TestClient

    from colorlab.inference.chain import load_upscaler
    from colorlab.inference.pipeline import Colorizer
    from colorlab.inference.server import create_app

    colorizer = Colorizer.load(chain_ckpts["restore_colorize"], name="rc", restore=True)
    old_photo_files(tmp_path / "in")
    scan = (tmp_path / "in" / "scan.jpg").read_bytes()
    upscaler = load_upscaler(chain_ckpts["upscale"])
    with TestClient(create_app([colorizer], tmp_root=tmp_path, upscaler=upscaler)) as client:
        assert client.get("/api/config").json()["upscale"] == 2
        for upscale, size in (("true", (60, 44)), ("false", (30, 22))):
            response = client.post("/api/colorize", files=[("files", ("scan.jpg", scan, "image/jpeg"))],
                                   data={"upscale": upscale})  # fmt: skip
            output = response.json()["results"][0]["outputs"][0]
            with Image.open(io.BytesIO(client.get(output["url"]).content)) as img:
                assert img.size == size
    with TestClient(create_app([colorizer], tmp_root=tmp_path)) as client:
        assert client.get("/api/config").json()["upscale"] is None
        response = client.post("/api/colorize", files=[("files", ("scan.jpg", scan, "image/jpeg"))],
                               data={"upscale": "true"})  # fmt: skip
        assert response.status_code == 422 and "--upscale-ckpt" in response.json()["detail"]
