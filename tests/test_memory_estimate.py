"""The one memory line before denoising (issue 32): the estimate from the 512² rehearsal, its scaling with
frame size, dtype and PWG mode, the chunk size it advises when memory is short, the line in a job's log."""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

from latentman.generation import memory

REPO = Path(__file__).resolve().parents[1]

FIT = {
    "res": 512,
    "dtype": "float32",
    "per_frame_mib": {"off": 300.0, "unet": 900.0, "full": 1500.0, "decoder": 600.0},
}
GiB = memory.GIB


@pytest.fixture
def fit_file(tmp_path, monkeypatch):
    path = tmp_path / "memory_rehearsal.json"
    path.write_text(json.dumps(FIT))
    monkeypatch.setattr(memory, "REHEARSAL_FILE", path)
    return path


def test_estimate_scales_with_frames_area_dtype_and_mode(fit_file):
    weights = 5 * GiB
    est = memory.estimate(memory.SD15_WIDTHS, weights, 512, 8, "unet", torch.float32)
    assert est.per_frame == 900 * 2**20 and est.total == weights + 8 * 900 * 2**20
    assert (
        memory.estimate(memory.SD15_WIDTHS, weights, 256, 8, "unet", torch.float32).per_frame == 225 * 2**20
    )
    assert (
        memory.estimate(memory.SD15_WIDTHS, weights, 512, 8, "unet", torch.float16).per_frame == 450 * 2**20
    )
    assert memory.estimate(memory.SD15_WIDTHS, weights, 512, 8, None, torch.float32).per_frame == 300 * 2**20
    assert (
        memory.estimate(memory.SD15_WIDTHS, weights, 512, 8, "full", torch.float32).per_frame == 1500 * 2**20
    )


def test_other_architectures_get_the_weights_alone(fit_file):
    est = memory.estimate((32, 64), 10 * 2**20, 64, 4, "unet", torch.float32)
    assert est.per_frame is None and est.total is None
    line = memory.memory_line(est, 8 * GiB, torch.device("cpu"), "unet")
    assert line.startswith("memory: weights 0.0 GiB; no estimate of the working memory for this UNet")
    with pytest.raises(ValueError, match="no per-frame estimate"):
        est.largest_chunk(GiB)


def test_a_missing_rehearsal_file_never_stops_a_run(tmp_path, monkeypatch):
    monkeypatch.setattr(memory, "REHEARSAL_FILE", tmp_path / "absent.json")
    assert memory.estimate(memory.SD15_WIDTHS, GiB, 512, 8, None, torch.float32).total is None


def test_a_rehearsal_file_without_every_mode_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "partial.json"
    path.write_text(json.dumps({"res": 512, "per_frame_mib": {"off": 1.0}}))
    monkeypatch.setattr(memory, "REHEARSAL_FILE", path)
    with pytest.raises(ValueError, match="off, unet, full and decoder"):
        memory.estimate(memory.SD15_WIDTHS, GiB, 512, 8, None, torch.float32)


def test_the_line_advises_the_chunk_size_that_fits(fit_file):
    est = memory.estimate(memory.SD15_WIDTHS, 4 * GiB, 512, 24, "full", torch.float16)  # 750 MiB per frame
    short = memory.memory_line(est, 8 * GiB, torch.device("cuda:0"), "full")
    # (8 GiB - 4 GiB) // 750 MiB = 5 frames
    assert "about 21.6 GiB with PWG (full gradient) for 24 frames per UNet call" in short
    assert short.endswith("8.0 GiB free on cuda:0 -- more than is free: generation.chunk_size 5 would fit")
    roomy = memory.memory_line(est, 80 * GiB, torch.device("cuda:0"), "full")
    assert "more than is free" not in roomy
    assert "not even one frame per call fits" in memory.memory_line(est, 4 * GiB, torch.device("cpu"), "full")
    assert "free memory on cpu unknown" in memory.memory_line(est, None, torch.device("cpu"), "full")


def test_weight_bytes_count_each_tensor_in_its_dtype():
    layer = torch.nn.Linear(10, 10)  # 110 float32 parameters
    norm = torch.nn.BatchNorm1d(10).half()  # 20 float16 parameters + 20 float16 buffers + int64 counter
    assert memory.weight_bytes(layer) == 440
    assert memory.weight_bytes(layer, norm) == 440 + 40 * 2 + 8


def test_free_bytes_of_the_host():
    free = memory.free_bytes(torch.device("cpu"))
    assert free is not None and free > 2**26


def test_the_pipeline_says_its_memory_before_denoising(caplog):
    from latentman.config import load_config, resolve_variant
    from latentman.generation.pipeline import LatentmanPipeline
    from latentman.models import build_tiny, load_models

    with tempfile.TemporaryDirectory() as tmp:
        build_tiny(Path(tmp) / "embedded-tiny")
        models = load_models({"stable_diffusion": "embedded:tiny", "controlnet_depth": "embedded:tiny"}, tmp)
    pipe = LatentmanPipeline(models, "cpu", "float32")
    settings = resolve_variant(load_config(REPO / "config.yaml"), "t2v_zero") | {"num_inference_steps": 1}
    control = np.zeros((2, 64, 64), np.uint8)
    with caplog.at_level(logging.INFO, logger="latentman.generation.pipeline"):
        pipe("a person", "", control, None, settings, 0, progress=False)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("memory: ")]
    assert len(lines) == 1 and "no estimate of the working memory for this UNet" in lines[0]
    assert "GiB free on cpu" in lines[0]


def test_the_shipped_rehearsal_is_the_512_fit_of_sd15():
    """latentman/data/memory_rehearsal.json is bench_memory.py's fit at 512² (BENCHMARKS.md): every PWG mode,
    each gradient mode costing more per frame than no PWG, and the paper's 8-frame chunk with the official
    gradient (``unet``) in float16 estimated between the weights alone and an 80 GB GPU."""
    fit = memory.rehearsal()
    assert fit is not None and fit["res"] == 512 and fit["model"] == "embedded:sd15-random"
    per_frame = fit["per_frame_mib"]
    assert set(per_frame) == {"off", "unet", "full", "decoder"}
    assert 0 < per_frame["off"] < per_frame["decoder"] < per_frame["unet"] < per_frame["full"]
    weights = 2 * 10**9  # SD1.5 + ControlNet + VAE + CLIP text encoder in float16, about 2 GB
    est = memory.estimate(memory.SD15_WIDTHS, weights, 512, 8, "unet", torch.float16)
    assert weights < est.total < 80 * 10**9
    assert est.per_frame == int(per_frame["unet"] * 2**20 / 2)  # float16 halves the float32 fit
