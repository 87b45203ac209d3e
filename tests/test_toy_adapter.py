"""The toy motion adapter's training (smoke scale): consistent clips, resumable and reproducible stages, the
exported MotionAdapter loaded back through the workflow's loader."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from latentman.body import load_body
from latentman.toy import domain
from latentman_dev.toy import adapter_train
from latentman_dev.toy.dataset import render_clip

ROOT = Path(__file__).resolve().parents[1]


def test_one_phase_clips_keep_the_pattern_still():
    """A standing body in a striped shirt: with one phase per clip consecutive frames barely change; with
    the image model's per-frame phase the stripes jump (what the adapter must not learn)."""
    body = load_body("builtin")
    outfit = domain.Outfit(
        "red", "blue", "black", "striped", (236, 188, 150), (30, 22, 18), ((150,) * 3,) * 2
    )
    changes = {}
    for one_phase in (True, False):
        clip = render_clip(body, "stand", 5, 4, 128, outfit=outfit, vary=False, one_phase=one_phase)
        shirt = domain.garment_map(clip.iuv)["shirt"]
        both = shirt[1:] & shirt[:-1]
        diff = np.abs(clip.images[1:].astype(int) - clip.images[:-1].astype(int)).sum(-1)
        changes[one_phase] = diff[both].mean()
    assert changes[True] < 10 < changes[False], changes


def test_adapter_names_map_back_to_the_motion_adapter():
    """Every motion-module parameter of the workflow's wrapped motion UNet has its MotionAdapter name."""
    from diffusers import UNet2DConditionModel

    from latentman.models.embedded import tiny_unet_config
    from latentman.models.motion_adapter import build_motion_adapter

    torch.manual_seed(0)
    unet = UNet2DConditionModel(**tiny_unet_config())
    recipe = adapter_train.AdapterRecipe().scaled_down()
    adapter = build_motion_adapter(unet.config, seed=3, max_seq_length=recipe.max_seq_length)
    wrapped = adapter_train.build_motion_unet(unet, recipe, adapter)
    names = set(adapter_train.motion_parameters(wrapped))
    assert names == {n for n, _ in adapter.named_parameters()}
    back = adapter_train.adapter_from(wrapped, recipe)
    for name, value in adapter.state_dict().items():
        assert torch.equal(back.state_dict()[name], value), name


def test_smoke_training_resumes_to_the_same_weights_and_exports(tmp_path):
    """The script at smoke scale, then stage 1 again interrupted after one step and resumed: the same
    checkpoint bytes; the export loads through load_motion_adapter and holds the last stage's weights."""
    from safetensors.torch import load_file

    from latentman.models.motion_adapter import load_motion_adapter

    run = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tools" / "train_toy_adapter.py"),
            "--smoke",
            str(tmp_path / "a"),
            "--held-out",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "toy adapter training: finished" in run.stdout
    table = (tmp_path / "a" / "checkpoints" / "held_out.tsv").read_text().splitlines()
    assert [line.split("\t")[0] for line in table] == ["adapter", "identity", "stage1", "stage2"]
    assert table[0].split("\t") == [
        "adapter",
        "held_out_loss",
        "vs_identity",
        "x0_spread_t999",
        "x0_spread_t800",
        "x0_spread_t600",
    ]
    cells = [line.split("\t") for line in table[1:]]
    assert cells[0][2] == "+0.000" and all(float(row[1]) > 0 for row in cells)
    # the spreads are ratios to the clip's own frames: finite and positive
    assert all(0 < float(value) < 1e4 for row in cells for value in row[3:])
    first = (tmp_path / "a" / "checkpoints" / "adapter_stage1.safetensors").read_bytes()
    recipe = adapter_train.AdapterRecipe().scaled_down()
    paths = adapter_train.AdapterPaths(
        tmp_path / "a" / "work", tmp_path / "b" / "checkpoints", tmp_path / "b" / "export"
    )
    models = adapter_train.load_frozen(paths)
    far = time.monotonic() + 3600
    assert not adapter_train.train_stage(recipe, paths, 0, far, models, interrupt_after=1)
    assert adapter_train.train_stage(recipe, paths, 0, far, models)
    assert paths.stage(1).read_bytes() == first
    trained = load_file(str(tmp_path / "a" / "checkpoints" / "adapter_stage2.safetensors"))
    assert any(("proj_out" in n and v.abs().max() > 0) for n, v in trained.items())  # it left the init
    adapter, _, digest, note = load_motion_adapter(
        str(tmp_path / "a" / "motion_adapter"), tmp_path / "models", models.unet.config
    )
    assert note == "" and digest
    state = adapter.state_dict()
    for name, value in trained.items():
        assert torch.allclose(state[name].float(), value, atol=1e-3, rtol=1e-2), name


def test_loss_weights_restore_the_high_timesteps():
    """snr_truncated: 1 + min(1/SNR, cap), so the noisiest steps weigh cap + 1 and the cleanest about 1;
    x0_high_noise: max(1, 1/SNR); uniform leaves the plain ε-MSE."""
    recipe = adapter_train.AdapterRecipe()
    alphas = adapter_train._alphas(recipe)
    t = torch.tensor([0, 300, 999])
    assert torch.equal(adapter_train.loss_weights(alphas, t, "uniform", 5.0), torch.ones(3))
    weights = adapter_train.loss_weights(alphas, t, "snr_truncated", 5.0)
    a = alphas[300]
    assert weights[0] == pytest.approx(1.0, abs=1e-2)
    assert weights[1] == pytest.approx(1 + (1 - a) / a)
    assert weights[2] == pytest.approx(6.0)
    assert recipe.loss_weighting == ("uniform", "uniform", "snr_truncated", "x0_high_noise")
    # x0_high_noise: the x_0-MSE (weight 1/SNR) where the noise dominates, the plain ε-MSE elsewhere
    weights = adapter_train.loss_weights(alphas, t, "x0_high_noise", 5.0)
    assert weights[0] == 1.0 and weights[1] == 1.0
    assert weights[2] == pytest.approx((1 - alphas[999]) / alphas[999]) and weights[2] > 100
    with pytest.raises(ValueError, match="unknown loss weighting"):
        adapter_train.loss_weights(alphas, t, "x0", 5.0)
