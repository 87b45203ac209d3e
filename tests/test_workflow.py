"""End to end: the whole Snakemake workflow on the tiny config in .test/ (2 prompts x 4 frames, 64x64).

The repository is copied to a temporary directory (results/ excluded) so the run starts from nothing,
as from a clean clone. One run (the session fixture `tiny_run`) feeds all tests here.
"""

import json
import re
import subprocess
import time

import h5py
import numpy as np
import pandas as pd
import pytest
from conftest import run_tiny

pytestmark = pytest.mark.slow

PROMPTS = ("walker", "jumper")
VARIANTS = ("t2v_zero", "latentman")
RULES = ("motion", "render", "correspondence", "generate", "evaluate", "aggregate", "plots")


def planned_jobs(result: subprocess.CompletedProcess) -> dict[str, int]:
    """Job counts per rule from a dry run's job table (`rule  count` lines)."""
    counts = {}
    for line in result.stdout.splitlines():
        match = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if match and match.group(1) not in ("total", "job"):
            counts[match.group(1)] = int(match.group(2))
    return counts


def test_every_stage_writes_its_files(tiny_run):
    workdir, _ = tiny_run
    results = workdir / "results"
    for prompt in PROMPTS:
        for ext in ("npz", "gif", "mp4"):
            assert (results / "motion" / f"{prompt}.{ext}").stat().st_size > 0
        for ext in ("h5", "gif", "mp4"):
            assert (results / "render" / f"{prompt}.{ext}").stat().st_size > 0
        for reference in ("prev", "prev_new"):
            assert (results / "correspondence" / prompt / f"{reference}.h5").exists()
        for variant in VARIANTS:
            video = results / "videos" / prompt / variant
            for name in ("frames.h5", "video.mp4", "video.gif"):
                assert (video / name).stat().st_size > 0
            assert (results / "eval" / prompt / f"{variant}.json").exists()
    for name in ("default.csv", "default.md"):
        assert (results / "tables" / name).exists()
    for name in ("h_mse_per_pair", "h_mse_bars", "contact_sheet"):
        assert (results / "plots" / "default" / f"{name}.png").stat().st_size > 0
    # every rule leaves a log and a benchmark file
    for rule in RULES:
        assert list((results / "logs" / rule).rglob("*.log")), rule
        assert list((results / "benchmarks" / rule).rglob("*.tsv")), rule
    # no temporary file of an atomic write is left anywhere
    assert not list(results.rglob(".tmp-*"))


def test_outputs_have_the_contracted_shapes(tiny_run):
    workdir, _ = tiny_run
    results = workdir / "results"
    with np.load(results / "motion" / "walker.npz") as motion:
        assert motion["joints"].ndim == 3 and motion["joints"].shape[1:] == (22, 3)
    with h5py.File(results / "render" / "walker.h5", "r") as h5:
        assert h5["iuv"].shape == (4, 64, 64, 3)
        assert h5["depth"].shape == (4, 64, 64)
        iuv = h5["iuv"][()]
        depth = h5["depth"][()]
        # the body is in every frame, and depth and part labels agree on where it is
        assert all((iuv[i, ..., 0] > 0).sum() > 50 for i in range(4))
        assert ((depth > 0) == (iuv[..., 0] > 0)).mean() >= 0.995
    with h5py.File(results / "correspondence" / "walker" / "prev.h5", "r") as h5:
        assert h5["latent/source"].shape == (4, 8, 8)
        assert h5["guidance/source"].shape == (4, 32, 32)
        source = h5["guidance/source"][1]
        matched = source[source >= 0]
        assert matched.size > 0 and len(np.unique(matched)) == matched.size  # injective
    with h5py.File(results / "videos" / "walker" / "latentman" / "frames.h5", "r") as h5:
        assert h5["frames"].shape == (4, 64, 64, 3) and h5["frames"].dtype == np.uint8
    evaluation = json.loads((results / "eval" / "walker" / "latentman.json").read_text())
    assert np.isfinite(evaluation["h_mse"]["mean"]) and evaluation["h_mse"]["mean"] >= 0
    assert len(evaluation["h_mse"]["per_pair"]) == 3
    table = pd.read_csv(results / "tables" / "default.csv")
    assert len(table) == 2


def test_a_rerun_does_nothing(tiny_run):
    workdir, _ = tiny_run
    start = time.perf_counter()
    result = run_tiny(workdir, "-n")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Nothing to be done" in result.stdout + result.stderr
    print(f"no-op dry run: {time.perf_counter() - start:.1f} s")


def test_changing_a_generation_setting_reruns_only_that_variant(tiny_run):
    workdir, _ = tiny_run
    override = workdir / "override.yaml"
    override.write_text("variants:\n  latentman:\n    pwg: {delta: 0.02}\n")
    result = run_tiny(workdir, "-n", "--configfile", ".test/config.yaml", str(override))
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = planned_jobs(result)
    # one generate + one evaluate per prompt of the changed variant, then the table and plots
    assert jobs.get("generate") == len(PROMPTS), jobs
    assert jobs.get("evaluate") == len(PROMPTS), jobs
    assert not {"motion", "render", "correspondence", "embedded_models"} & set(jobs), jobs


def test_report_builds(tiny_run):
    workdir, _ = tiny_run
    result = run_tiny(workdir, "--report", "report.html")
    assert result.returncode == 0, result.stderr[-3000:]
    html = (workdir / "report.html").read_text(errors="replace")
    assert len(html) > 10_000
    assert "H_MSE" in html or "h_mse" in html


def test_paper_sweep_builds_its_table(tiny_run):
    """The paper's Table 1/2 sweep (both backbones, ±SLA, ±PWG) end to end on the tiny config."""
    workdir, _ = tiny_run
    result = run_tiny(workdir, "sweep", "--config", "sweep=paper")
    assert result.returncode == 0, result.stderr[-4000:]
    table = pd.read_csv(workdir / "results" / "tables" / "paper.csv")
    assert len(table) == 8
    assert sorted(table["backbone"].unique()) == ["masactrl", "t2v_zero"]
    assert sorted(zip(table["sla"], table["pwg"], strict=True)) == sorted(
        [(a, b) for a in (0, 1) for b in (0, 1)] * 2
    )
    assert np.isfinite(table["h_mse_mean"]).all()
    # motion, renders and correspondences were reused, not rebuilt
    for rule in ("motion", "render", "correspondence"):
        assert f"rule {rule}:" not in result.stdout + result.stderr
    for name in ("h_mse_per_pair", "h_mse_bars", "contact_sheet"):
        assert (workdir / "results" / "plots" / "paper" / f"{name}.png").exists()


def test_every_generation_switch_runs_through_the_workflow(tiny_run):
    """Motion dynamics, first+previous attention, reference 'first', masked MasaCtrl, chunked PWG."""
    workdir, _ = tiny_run
    result = run_tiny(workdir, "sweep", "--config", "sweep=switches")
    assert result.returncode == 0, result.stderr[-4000:]
    table = pd.read_csv(workdir / "results" / "tables" / "switches.csv")
    assert len(table) == 5 and np.isfinite(table["h_mse_mean"]).all()
    assert (workdir / "results" / "correspondence" / "walker" / "first.h5").exists()
    videos = {}
    for name in table["variant"]:
        with h5py.File(workdir / "results" / "videos" / "walker" / name / "frames.h5", "r") as h5:
            videos[name] = h5["frames"][()]
            assert json.loads(h5.attrs["settings"])["name"] == name
    # each switch changes the video
    frames = list(videos.values())
    assert all(not np.array_equal(frames[0], other) for other in frames[1:])
