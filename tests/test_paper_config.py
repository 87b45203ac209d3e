"""configs/paper.yaml: the paper's settings merged over config.yaml (issue 32 item 1).

The values are read back from the merged, sweep-expanded config; the plan of the paper sweep comes from a
real `snakemake -n` with the models swapped to embedded:tiny; with the real repo ids absent from the Hugging
Face cache, the start-up check is one line naming the key and the repo id.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from latentman.config import deep_merge, load_config, load_prompts, resolve_variant, validate_config
from latentman.sweeps import register_sweeps

REPO = Path(__file__).resolve().parent.parent
PAPER = "configs/paper.yaml"

# The official code's quality phrase and negative prompt (config.yaml's comments quote them).
SUFFIX = ", best quality, extremely detailed, HD, ultra-realistic, 8K, HQ, masterpiece, HDR"
NEGATIVE = (
    "longbody, lowres, bad anatomy, bad hands, missing fingers, extra digit, fewer digits, cropped, worst "
    "quality, low quality, deformed body, bloated, ugly, unrealistic"
)
# backbone -> (DDIM steps, SLA steps A, PWG steps B): the paper's T2V-Zero and MasaCtrl rows; AnimateDiff
# (beyond the paper) takes T2V-Zero's.
PAPER_STEPS = {
    "t2v_zero": (100, [0, 39], [20, 69]),
    "masactrl": (50, [0, 19], [20, 39]),
    "animatediff": (100, [0, 39], [20, 69]),
    "animatezero": (100, [0, 39], [20, 69]),
}
REPO_IDS = {
    "stable_diffusion": "stable-diffusion-v1-5/stable-diffusion-v1-5",
    "controlnet_depth": "lllyasviel/control_v11f1p_sd15_depth",
    "motion_adapter": "guoyww/animatediff-motion-adapter-v1-5-2",
}


@pytest.fixture(scope="module")
def paper():
    """config.yaml with configs/paper.yaml merged over it (as Snakemake merges --configfile), validated
    before and after its sweeps are expanded: (config, expanded sweeps)."""
    config = deep_merge(load_config(REPO / "config.yaml"), load_config(REPO / PAPER))
    validate_config(config, source=PAPER)
    sweeps = register_sweeps(config)
    validate_config(config, source=f"{PAPER} (with expanded sweeps)")
    return config, sweeps


def test_paper_config_has_the_papers_settings(paper):
    config, _ = paper
    assert config["models"] == {**config["models"], **REPO_IDS}
    assert config["prompts"] == "prompts_sd15.tsv"
    prompts = load_prompts(REPO / config["prompts"])
    assert len(prompts) == 4 and set(prompts["frames"]) == {8}  # the paper's 8 frames
    assert config["render"]["resolution"] == 512
    defaults = config["generation"]["defaults"]
    assert defaults["num_inference_steps"] == 100
    assert (defaults["guidance_scale"], defaults["controlnet_scale"]) == (9.0, 1.0)
    assert (defaults["prompt_suffix"], defaults["negative_prompt"]) == (SUFFIX, NEGATIVE)
    assert defaults["reference"] == "prev_new"
    assert defaults["pwg"]["delta"] == 0.01 and defaults["pwg"]["gradient"] == "unet"
    assert defaults["masactrl"] == {"start_step": 4, "start_layer": 10, "masked": False}
    # AnimateDiff's own schedule (config.yaml's defaults), not the toy model's official-schedule anchor.
    shipped = load_config(REPO / "config.yaml")["generation"]["defaults"]["animatediff"]
    assert defaults["animatediff"] == shipped
    assert shipped["beta_schedule"] == "linear" and shipped["timestep_spacing"] == "linspace"
    latentman = resolve_variant(config, "latentman")
    assert (latentman["num_inference_steps"], latentman["sla"]["steps"], latentman["pwg"]["steps"]) == (
        100,
        [0, 39],
        [20, 69],
    )
    assert latentman["sla"]["enabled"] and latentman["pwg"]["enabled"]
    assert config["run_variants"] == ["t2v_zero", "latentman"]


def test_paper_sweep_reads_each_backbones_steps_ranges_and_modules(paper):
    config, sweeps = paper
    names = [variant.name for variant in sweeps["paper"]]
    expected = [
        f"paper.{backbone}{modules}"
        for backbone in PAPER_STEPS
        for modules in ("", ".pwg", ".sla", ".sla.pwg")
    ]
    assert sorted(names) == sorted(expected)
    shipped_schedule = load_config(REPO / "config.yaml")["generation"]["defaults"]["animatediff"]
    for name in names:
        settings = resolve_variant(config, name)
        backbone = name.split(".")[1]
        steps, sla, pwg = PAPER_STEPS[backbone]
        assert settings["num_inference_steps"] == steps, name
        assert (settings["sla"]["steps"], settings["pwg"]["steps"]) == (sla, pwg), name
        assert settings["sla"]["enabled"] == (".sla" in name), name
        assert settings["pwg"]["enabled"] == name.endswith(".pwg"), name
        assert settings["pwg"]["delta"] == 0.01 and settings["guidance_scale"] == 9.0, name
        assert settings["method"] == ("animatediff" if backbone == "animatezero" else backbone), name
        if backbone == "masactrl":
            assert (settings["masactrl"]["start_step"], settings["masactrl"]["start_layer"]) == (4, 10)
        if settings["method"] == "animatediff":
            for key in ("beta_schedule", "timestep_spacing", "steps_offset"):
                assert settings["animatediff"][key] == shipped_schedule[key], (name, key)
            zero = backbone == "animatezero"
            assert settings["animatediff"]["first_frame_insertion"] == zero, name
            assert settings["animatediff"]["temporal_attention"] == (
                "positional_corrected" if zero else "global"
            ), name
    # config.yaml's other sweeps are restated at the paper's scale too
    assert set(sweeps) == set(load_config(REPO / "config.yaml")["sweeps"])
    for sweep in ("pwg_gradient", "backbones", "animatediff", "animatediff_controls"):
        for variant in sweeps[sweep]:
            settings = resolve_variant(config, variant.name)
            backbone = variant.name.split(".")[1]
            if sweep == "animatediff_controls":
                backbone = "animatediff"
            if settings["method"] == "animatediff":  # AnimateDiff's own schedule, not the toy's
                assert settings["animatediff"]["beta_schedule"] == shipped_schedule["beta_schedule"]
            assert (settings["num_inference_steps"], settings["sla"]["steps"], settings["pwg"]["steps"]) == (
                PAPER_STEPS[backbone]
            ), variant.name


def dry_run(tmp_path: Path, *configfiles: str) -> subprocess.Popen:
    """`snakemake -n sweep --config sweep=paper` in the repository, forced (the plan does not depend on
    what results/ holds), with an empty Hugging Face cache."""
    cache = tmp_path / "hf-cache"
    cache.mkdir(exist_ok=True)
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "snakemake", "sweep", "-n", "-F", "--cores", "1"]
    command += ["--configfile", *configfiles, "--config", "sweep=paper"]
    return subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


@pytest.mark.slow
def test_paper_sweep_plan_and_the_missing_weights_line(tmp_path):
    tiny = tmp_path / "tiny.yaml"
    tiny.write_text("models:\n" + "".join(f'  {key}: "embedded:tiny"\n' for key in REPO_IDS))
    no_adapter = tmp_path / "no_adapter.yaml"
    no_adapter.write_text(
        'models:\n  stable_diffusion: "embedded:tiny"\n  controlnet_depth: "embedded:tiny"\n'
    )
    running = {
        "tiny": dry_run(tmp_path, PAPER, str(tiny)),
        "real": dry_run(tmp_path, PAPER),
        "no_adapter": dry_run(tmp_path, PAPER, str(no_adapter)),
    }
    # communicate, not wait: a dry run's plan fills the pipe before the process ends
    done = {}
    for name, process in running.items():
        stdout, stderr = process.communicate(timeout=600)
        done[name] = (process.returncode, stdout, stderr)

    returncode, stdout, stderr = done["tiny"]
    assert returncode == 0, stderr[-4000:]
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", stdout + stderr, flags=re.MULTILINE))
    # 4 prompts of prompts_sd15.tsv x 16 variants (4 backbones x {-, SLA} x {-, PWG}) = 64 videos.
    expected = {"motion": 4, "render": 4, "correspondence": 8, "generate": 64, "evaluate": 64}
    expected.update({"aggregate": 1, "plots": 1, "sweep": 1, "total": 157})
    assert {key: int(counts.get(key, 0)) for key in expected} == expected, stdout[-3000:]

    for case, key in (("real", "stable_diffusion"), ("no_adapter", "motion_adapter")):
        returncode, stdout, stderr = done[case]
        assert returncode == 1, stderr[-4000:]
        assert "Traceback" not in stderr, stderr[-4000:]
        lines = [line for line in stderr.splitlines() if line.startswith("latentman ")]
        assert len(lines) == 1, stderr[-4000:]
        assert lines[0].startswith(
            f"latentman config error: models.{key} = '{REPO_IDS[key]}': no such folder"
        )
        assert f"the Hugging Face repository {REPO_IDS[key]} is not in the local cache" in lines[0]
        assert f"hf download {REPO_IDS[key]}" in lines[0]
