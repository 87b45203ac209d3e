"""benchmarks/bench_memory.py (the 512² memory rehearsal) on the tiny model: the fitted line per PWG mode,
the predictions it gives and its tables."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_memory import GB, chunk_table, fit_line, largest_chunk  # noqa: E402


def test_fit_line_recovers_fixed_and_per_frame_cost():
    fixed, per_frame = fit_line([1, 2, 4], [5000 + 700 * c for c in (1, 2, 4)])
    assert fixed == pytest.approx(5000)
    assert per_frame == pytest.approx(700)
    with pytest.raises(ValueError, match="at least two chunk sizes"):
        fit_line([2, 2], [1.0, 2.0])


def test_largest_chunk_under_a_limit():
    # 24 GB = 22888 MiB: (22888 - 5000) // 700 = 25 frames; the float16 estimate halves both terms
    assert largest_chunk(5000, 700, 24 * GB) == 25
    assert largest_chunk(2500, 350, 24 * GB) == 58
    assert largest_chunk(30000, 700, 24 * GB) == 0  # the weights alone do not fit
    with pytest.raises(ValueError, match="not a growth"):
        largest_chunk(5000, 0, 24 * GB)


def test_chunk_table_predicts_the_official_batch_sizes():
    rows = [{"mode": "off", "chunk": c, "peak": 5000 + 700 * c} for c in (1, 2, 4)]
    lines, fits = chunk_table(rows, ["off"])
    assert fits["off"]["per_frame_mib"] == pytest.approx(700)
    row = lines[-1].split(" | ")
    # chunk 24: 5000 + 16800 MiB = 22.8 GB
    assert row[-3].split(" / ")[-1] == f"{(5000 + 700 * 24) / GB:.1f}"
    assert row[-2] == "25 / 101"  # 80 GB = 76294 MiB


def test_bench_memory_runs_on_the_tiny_model(tmp_path):
    out = tmp_path / "memory.json"
    command = [sys.executable, str(ROOT / "benchmarks" / "bench_memory.py"), "--model", "embedded:tiny"]
    command += ["--res", "64", "--chunks", "1,2", "--modes", "off,unet", "--frames", "", "--out", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (
        "#### Peak memory by chunk size (embedded:tiny, 64², one step, float32, CPU peak RSS)"
        in result.stdout
    )
    report = json.loads(out.read_text())
    assert [(r["mode"], r["chunk"]) for r in report["chunk_sweep"]] == [
        ("off", 1),
        ("off", 2),
        ("unet", 1),
        ("unet", 2),
    ]
    for row in report["chunk_sweep"]:
        assert row["peak"] >= row["loaded"] > 100  # MiB: torch and the model are resident
    assert set(report["fits"]) == {"off", "unet"}
    assert report["frame_sweep"] == []


def test_fit_record_is_what_the_memory_line_reads(tmp_path, monkeypatch):
    from argparse import Namespace

    from bench_memory import MODES, fit_record

    from latentman.generation import memory

    fits = {m: {"fixed_mib": 5000.0, "per_frame_mib": 100.0 * (i + 1)} for i, m in enumerate(MODES)}
    record = fit_record(Namespace(res=512, model="embedded:sd15-random"), fits, "--res 512")
    assert record["per_frame_mib"] == {"off": 100.0, "unet": 200.0, "full": 300.0, "decoder": 400.0}
    path = tmp_path / "fit.json"
    path.write_text(json.dumps(record))
    monkeypatch.setattr(memory, "REHEARSAL_FILE", path)
    est = memory.estimate(memory.SD15_WIDTHS, 0, 512, 2, "full", torch.float32)
    assert est.total == 2 * 300 * 2**20
    with pytest.raises(SystemExit, match="every PWG mode"):
        fit_record(Namespace(res=512, model="m"), {"off": fits["off"]}, "")


def test_a_stopped_run_resumes_from_its_saved_rows(tmp_path):
    """Every row is saved as it is measured; --resume measures only the missing ones and keeps the rest
    exactly (a 512² sweep takes hours on a CPU)."""
    out = tmp_path / "memory.json"
    base = [sys.executable, str(ROOT / "benchmarks" / "bench_memory.py"), "--model", "embedded:tiny"]
    base += ["--res", "64", "--chunks", "1,2", "--frames", "", "--out", str(out)]
    first = subprocess.run(base + ["--modes", "off"], capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    kept = json.loads(out.read_text())["rows"]
    assert [(r["mode"], r["chunk"]) for r in kept] == [("off", 1), ("off", 2)]
    second = subprocess.run(
        base + ["--modes", "off,unet", "--resume"], capture_output=True, text=True, timeout=600
    )
    assert second.returncode == 0, second.stderr[-3000:]
    assert "PWG off" not in second.stderr and second.stderr.count("PWG unet") == 2
    assert "kept 2 measured rows" in second.stdout
    report = json.loads(out.read_text())
    assert report["finished"] and report["chunk_sweep"][:2] == kept
    assert [(r["mode"], r["chunk"]) for r in report["rows"]] == [
        ("off", 1),
        ("off", 2),
        ("unet", 1),
        ("unet", 2),
    ]
