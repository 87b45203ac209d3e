"""benchmarks/bench_fp16.py (float16 against float32, module boundaries) on the tiny model: every check
holds, the gradients of the three PWG modes point the float32 way, and a wrong dtype at a boundary shows."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_fp16 import BoundaryLog, expected_boundaries  # noqa: E402


def test_bench_fp16_on_the_tiny_model(tmp_path):
    out = tmp_path / "fp16.json"
    command = [sys.executable, str(ROOT / "benchmarks" / "bench_fp16.py"), "--model", "embedded:tiny"]
    command += ["--res", "64", "--frames", "2", "--steps", "2", "--out", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert all(report["checks"].values()), report["checks"]
    summary = report["summary"]
    assert summary["guided_steps"] == 2
    for mode in ("unet", "full", "decoder"):
        assert len(summary["grad_cosine_vs_float32"][mode]) == 2
        assert min(summary["grad_cosine_vs_float32"][mode]) > 0.99
    assert summary["boundaries"]["unet"] == ["float16 on cpu"]
    assert summary["boundaries"]["vae_decoder"] == ["float32 on cpu"]
    assert summary["frames_mean_abs_diff"] < 2


def test_boundary_log_sees_a_float32_tensor_entering_a_float16_module():
    layer = torch.nn.Linear(4, 4).half()
    log = BoundaryLog({"unet": layer})
    try:
        layer(torch.zeros(2, 4, dtype=torch.float16))
        layer.float()(torch.zeros(2, 4))  # a float32 activation reaching the module
    finally:
        seen = log.close()
    assert seen == {"unet": ["float16 on cpu", "float32 on cpu"]}
    assert expected_boundaries("float16")["unet"] == "float16"
