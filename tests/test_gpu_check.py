"""``make gpu-check`` in its tiny CPU mode: every check of the GPU script runs, so the script keeps working
between GPU runs (it has not run on a GPU in this project yet: see the README's 'GPUs' section)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_gpu_check_passes_in_its_tiny_cpu_mode(tmp_path: Path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "COLORLAB_CACHE": str(tmp_path / "cache")}
    env.pop("COLORLAB_DATA", None)  # the script writes its own photos
    out = tmp_path / "gpu_check.json"
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "gpu_check.py"), "--tiny", "--out", str(out)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "tiny CPU mode: NOT a GPU check" in done.stdout
    report = json.loads(out.read_text())
    assert report["ok"] and report["machine"]["tiny"]
    families = {key.split("/")[0] for key in report["families"]}
    assert families == {"regression", "classification", "nogan", "pix2pix", "vae", "bigcolor", "chromagan",
                        "restoration", "upscale"}  # fmt: skip
    for key, row in report["families"].items():
        assert row["losses_finite"] and row["weights_changed"] and row["steps"] == 2, (key, row)
    assert report["colorize"]["max_level_difference"] <= 2
    assert report["experiment"]["backend"] == "gloo" and report["experiment"]["returncode"] == 0
    assert report["loader"]["images_per_second"] > 0 and report["loader"]["step_images_per_second"] > 0
