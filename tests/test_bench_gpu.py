"""benchmarks/bench_gpu.py (the GPU lines) on the CPU at toy size: every row, finite latents, and the host
round trips per denoising step counted and independent of the number of steps."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_bench(tmp_path: Path, steps: int) -> dict:
    out = tmp_path / f"bench_{steps}.json"
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "bench_gpu.py"),
            "--device",
            "cpu",
            "--dtype",
            "float32",
            "--model",
            "embedded:tiny",
            "--res",
            "64",
            "--frames",
            "2",
            "--steps",
            str(steps),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| run | s / step | peak MB | host calls / step | finite |" in result.stdout
    return json.loads(out.read_text())


def test_bench_gpu_rows_and_host_calls_per_step(tmp_path):
    short, long = run_bench(tmp_path, 3), run_bench(tmp_path, 5)
    for report in (short, long):
        rows = report["rows"]
        assert set(rows) == {
            "baseline",
            "sla",
            "pwg",
            "sla_pwg",
            "ours_plain",
            "diffusers",
            "ours_vs_diffusers",
        }
        for name in ("baseline", "sla", "pwg", "sla_pwg", "ours_plain"):
            assert rows[name]["finite"] and rows[name]["s_per_step"] > 0 and rows[name]["peak_mb"] > 0
        assert rows["ours_vs_diffusers"] > 0
    for name in ("baseline", "sla", "pwg", "sla_pwg"):
        # a fixed number of host copies per step (on the CPU every call counts, the scheduler's too), and
        # PWG's own a handful: none grows with the video's steps
        assert short["rows"][name]["host_calls_per_step"] == long["rows"][name]["host_calls_per_step"] <= 16
