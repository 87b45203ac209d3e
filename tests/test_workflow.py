"""End to end: the whole Snakemake workflow on the tiny config in .test/ (2 prompts x 4 frames, 64x64).

The repository is copied to a temporary directory (results/ excluded) so the run starts from nothing,
as from a clean clone. One run (the session fixture `tiny_run`) feeds all tests here.
"""

import json
import re
import subprocess
import sys
import time

import h5py
import numpy as np
import pandas as pd
import pytest
from conftest import run_tiny

pytestmark = pytest.mark.slow

PROMPTS = ("walker", "jumper")
VARIANTS = ("t2v_zero", "latentman")
RULES = ("motion", "render", "correspondence", "generate", "encode_video", "evaluate", "aggregate", "plots")
# what a new generation setting reruns per video: the frames, their videos, their evaluation
GENERATION_RULES = ("encode_video", "evaluate", "generate")


def planned_job_list(result: subprocess.CompletedProcess) -> list[tuple[str, str]]:
    """(rule, wildcards) of every job in a dry run's job descriptions but the target rule 'all', sorted."""
    jobs, rule = [], None
    for line in result.stdout.splitlines():
        line = line.strip()
        if re.match(r"^(local)?rule \w+:$", line):
            rule = line.split()[-1].rstrip(":")
            jobs.append((rule, ""))
        elif line.startswith("wildcards:") and rule is not None:
            jobs[-1] = (rule, line.removeprefix("wildcards:").strip())
    return sorted(job for job in jobs if job[0] != "all")


def dry_run_with(workdir, override: str, prompts: dict[str, dict] | None = None):
    """A dry run over the finished tiny run with config ``override`` (YAML) and edited prompt rows."""
    if prompts is not None:
        table = pd.read_csv(workdir / ".test" / "prompts.tsv", sep="\t", dtype=str, keep_default_na=False)
        for prompt, changes in prompts.items():
            for column, value in changes.items():
                table.loc[table["id"] == prompt, column] = value
        table.to_csv(workdir / "edited_prompts.tsv", sep="\t", index=False)
        override += "\nprompts: edited_prompts.tsv\n"
    (workdir / "override.yaml").write_text(override)
    result = run_tiny(workdir, "-n", "--configfile", ".test/config.yaml", "override.yaml")
    assert result.returncode == 0, result.stderr[-3000:]
    return planned_job_list(result)


AGGREGATES = [("aggregate", "sweep=default"), ("plots", "sweep=default")]


def galleries(*prompts: str) -> list[tuple[str, str]]:
    """The report's pages that rerun: the sweep's summary and the pages of the prompts whose files changed."""
    return [("gallery", "sweep=default")] + [
        ("gallery_prompt", f"sweep=default, prompt={p}") for p in prompts
    ]


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
    jobs = dry_run_with(workdir, "variants:\n  latentman:\n    pwg: {delta: 0.02}\n")
    # one generate + one evaluate per prompt of the changed variant, then the table and plots
    expected = [(rule, f"prompt={p}, variant=latentman") for rule in GENERATION_RULES for p in PROMPTS]
    assert jobs == sorted(expected + AGGREGATES + galleries(*PROMPTS))


def test_a_new_frame_rate_re_encodes_the_videos_and_never_regenerates(tiny_run):
    workdir, _ = tiny_run
    jobs = dry_run_with(workdir, "generation:\n  video_fps: 4\n")
    # the report's gallery pages show the videos, so they may follow; nothing upstream of the videos does
    jobs = [job for job in jobs if not job[0].startswith("gallery")]
    assert jobs == sorted(("encode_video", f"prompt={p}, variant={v}") for p in PROMPTS for v in VARIANTS)


def test_new_appearance_text_reruns_only_that_prompts_generation(tiny_run):
    workdir, _ = tiny_run
    jobs = dry_run_with(workdir, "", {"walker": {"prompt": "a red robot"}})
    expected = [(rule, f"prompt=walker, variant={v}") for rule in GENERATION_RULES for v in VARIANTS]
    assert jobs == sorted(expected + AGGREGATES + galleries("walker"))


def test_new_motion_text_reruns_that_prompts_chain_only(tiny_run):
    workdir, _ = tiny_run
    jobs = dry_run_with(workdir, "", {"walker": {"motion": "a person jumps in place"}})
    expected = [
        ("motion", "prompt=walker"),
        ("render", "prompt=walker"),
        ("correspondence_preview", "prompt=walker"),
    ]
    expected += [("correspondence", f"prompt=walker, reference={r}") for r in ("prev", "prev_new")]
    expected += [(rule, f"prompt=walker, variant={v}") for rule in GENERATION_RULES for v in VARIANTS]
    assert jobs == sorted(expected + AGGREGATES + galleries("walker"))


def test_an_evaluation_only_model_reruns_evaluation_only(tiny_run):
    workdir, _ = tiny_run
    jobs = dry_run_with(workdir, f"models:\n  clip_eval: {workdir}\n")
    expected = [("evaluate", f"prompt={p}, variant={v}") for p in PROMPTS for v in VARIANTS]
    assert jobs == sorted(expected + AGGREGATES + galleries(*PROMPTS))


def test_report_builds(tiny_run):
    workdir, _ = tiny_run
    result = run_tiny(workdir, "--report", "report.html")
    assert result.returncode == 0, result.stderr[-3000:]
    html = (workdir / "report.html").read_text(errors="replace")
    assert len(html) > 10_000
    assert "H_MSE" in html or "h_mse" in html
    # the report holds the gallery pages (tests/test_report.py opens them in Chromium)
    for page in ("default.html", "default/walker.html", "default/jumper.html"):
        assert f'"results/gallery/{page}"' in html, page


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
    """Motion dynamics, first+previous attention, reference 'first', masked MasaCtrl, chunked PWG, and the
    AnimateDiff backbone with AnimateZero's controls, SLA and PWG."""
    workdir, _ = tiny_run
    result = run_tiny(workdir, "sweep", "--config", "sweep=switches")
    assert result.returncode == 0, result.stderr[-4000:]
    table = pd.read_csv(workdir / "results" / "tables" / "switches.csv")
    assert len(table) == 6 and np.isfinite(table["h_mse_mean"]).all()
    assert (workdir / "results" / "correspondence" / "walker" / "first.h5").exists()
    videos = {}
    for name in table["variant"]:
        with h5py.File(workdir / "results" / "videos" / "walker" / name / "frames.h5", "r") as h5:
            videos[name] = h5["frames"][()]
            assert json.loads(h5.attrs["settings"])["name"] == name
    # the AnimateDiff variant records its backbone's schedule, its motion adapter and AnimateZero's controls
    with h5py.File(workdir / "results/videos/walker/switches.animatezero_sla_pwg/frames.h5", "r") as h5:
        assert json.loads(h5.attrs["scheduler"])["beta_schedule"] == "linear"
        assert json.loads(h5.attrs["model_ids"])["motion_adapter"] == "embedded:tiny"
        controls = json.loads(h5.attrs["settings"])["animatediff"]
        assert controls["first_frame_insertion"] and controls["temporal_attention"] == "positional_corrected"
    # each switch changes the video
    frames = list(videos.values())
    assert all(not np.array_equal(frames[0], other) for other in frames[1:])


def test_every_rule_says_what_it_does(repo_root):
    """`snakemake --list-rules` lists each rule with its docstring."""
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--list-rules"], cwd=repo_root, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-2000:]
    listed = dict(
        re.match(r"^(\w+) \((.+)\)$", line).groups()
        for line in result.stdout.splitlines()
        if re.match(r"^\w+ \(.+\)$", line)
    )
    expected = {"all", "motion", "render", "correspondence", "correspondence_preview", "embedded_models"}
    expected |= {"generate", "encode_video", "evaluate", "aggregate", "plots", "sweep"}
    expected |= {"gallery", "gallery_prompt", "gallery_pages"}
    assert set(listed) == expected, result.stdout
    assert all(len(text) > 30 for text in listed.values())
