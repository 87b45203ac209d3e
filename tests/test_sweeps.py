"""Sweep expansion: names, count, registration into variants, and the three errors; variants with equal
settings share one video; a target path naming an unknown sweep, prompt or variant is one line."""

import copy
import re
import subprocess
import sys

import pytest
from conftest import REPO

from latentman.config import deep_merge, load_config, resolve_variant, validate_config
from latentman.errors import ConfigError
from latentman.sweeps import (
    expand_sweep,
    generation_key,
    register_sweeps,
    select_sweep,
    shared_results,
    sweep_prompts,
)


@pytest.fixture(scope="module")
def shipped():
    return load_config("config.yaml")


def test_paper_sweep_names_count_and_settings(shipped):
    config = copy.deepcopy(shipped)
    expanded = register_sweeps(config)
    validate_config(config)
    names = [v.name for v in expanded["paper"]]
    assert names == [
        "paper.t2v_zero",
        "paper.t2v_zero.pwg",
        "paper.t2v_zero.sla",
        "paper.t2v_zero.sla.pwg",
        "paper.masactrl",
        "paper.masactrl.pwg",
        "paper.masactrl.sla",
        "paper.masactrl.sla.pwg",
        "paper.animatediff",
        "paper.animatediff.pwg",
        "paper.animatediff.sla",
        "paper.animatediff.sla.pwg",
        "paper.animatezero",
        "paper.animatezero.pwg",
        "paper.animatezero.sla",
        "paper.animatezero.sla.pwg",
    ]
    # the AnimateDiff rows keep the toy model's (official) schedule; AnimateZero adds its two controls
    zero = resolve_variant(config, "paper.animatezero.sla")
    assert zero["method"] == "animatediff" and zero["sla"]["enabled"] and not zero["pwg"]["enabled"]
    assert zero["animatediff"]["beta_schedule"] == "scaled_linear"
    assert zero["animatediff"]["steps_offset"] == 0
    assert zero["animatediff"]["first_frame_insertion"]
    assert zero["animatediff"]["temporal_attention"] == "positional_corrected"
    plain = resolve_variant(config, "paper.animatediff")
    assert not plain["animatediff"]["first_frame_insertion"]
    assert plain["animatediff"]["temporal_attention"] == "global"
    assert [v.name for v in expanded["backbones"]] == [
        "backbones.t2v_zero",
        "backbones.masactrl",
        "backbones.animatediff",
    ]
    settings = resolve_variant(config, "paper.masactrl.sla.pwg")
    assert settings["method"] == "masactrl"
    assert settings["sla"] == {"enabled": True, "steps": [0, 7]}
    assert settings["pwg"]["enabled"] and settings["pwg"]["steps"] == [8, 15]
    base = resolve_variant(config, "paper.t2v_zero")
    assert not base["sla"]["enabled"] and not base["pwg"]["enabled"] and base["pwg"]["steps"] == [4, 13]


def test_seeds_add_suffix_and_group():
    variants = expand_sweep("s", {"grid": [{"a": {"guidance_scale": 5.0}, "b": {}}], "seeds": [1, 2]})
    assert [(v.name, v.group, v.seed) for v in variants] == [
        ("s.a.s1", "s.a", 1),
        ("s.a.s2", "s.a", 2),
        ("s.b.s1", "s.b", 1),
        ("s.b.s2", "s.b", 2),
    ]
    assert variants[1].overrides == {"guidance_scale": 5.0, "seed": 2}


def test_unknown_sweep_lists_defined(shipped):
    config = copy.deepcopy(shipped)
    expanded = register_sweeps(config)
    defined = r"defined sweeps: animatediff, animatediff_controls, backbones, paper, pwg_gradient"
    with pytest.raises(ConfigError, match=rf"unknown sweep 'nope'.*{defined}"):
        select_sweep(expanded, "nope")


@pytest.mark.parametrize(
    "sweep",
    [
        {"grid": []},
        {"grid": [{"a": {}}, {}]},
        {"grid": [{"a": {}}], "seeds": []},
        {"grid": [{"a": {}}], "prompts": []},
    ],
)
def test_grid_expanding_to_nothing(sweep):
    with pytest.raises(ConfigError, match="expands to nothing"):
        expand_sweep("empty", sweep)


def test_name_used_twice_with_different_settings(shipped):
    with pytest.raises(ConfigError, match="'d.sla' is produced twice"):
        expand_sweep(
            "d", {"grid": [{"": {}, "sla": {"sla": {"enabled": True}}}, {"": {}, "sla": {"seed": 3}}]}
        )
    config = copy.deepcopy(shipped)
    config["variants"]["paper.t2v_zero"] = {"method": "masactrl"}
    with pytest.raises(ConfigError, match="'paper.t2v_zero' is already defined"):
        register_sweeps(config)


def test_expanded_step_ranges_are_validated(shipped):
    config = copy.deepcopy(shipped)
    config["sweeps"] = {"bad": {"grid": [{"far": {"pwg": {"enabled": True, "steps": [4, 40]}}}]}}
    register_sweeps(config)
    with pytest.raises(
        ConfigError, match=r"variants\['bad\.far'\]\.pwg\.steps = \[4, 40\] is outside the schedule"
    ):
        validate_config(config)


def test_sweep_prompts_default_and_unknown():
    assert sweep_prompts({"prompts": None}, ["a", "b"]) == ["a", "b"]
    assert sweep_prompts({"prompts": ["b"]}, ["a", "b"]) == ["b"]
    with pytest.raises(ConfigError, match="unknown prompt id"):
        sweep_prompts({"prompts": ["zz"]}, ["a", "b"])


# ------------------------------------------------------------------------- equal settings, one video
def test_paper_sweep_reuses_the_default_runs_videos(shipped):
    """paper.t2v_zero is the default t2v_zero, paper.t2v_zero.sla.pwg is latentman (the t2v_zero backbone
    with SLA and PWG, same step ranges): both reuse the run variants' videos; nothing else is shared."""
    config = copy.deepcopy(shipped)
    register_sweeps(config)
    shared = shared_results(config)
    assert {k: v for k, v in shared.items() if k.startswith("paper.")} == {
        "paper.t2v_zero": "t2v_zero",
        "paper.t2v_zero.sla.pwg": "latentman",
    }
    # a later sweep reuses an earlier sweep's video, and a run variant is never mapped away
    assert shared["pwg_gradient.t2v_zero.sla"] == "paper.t2v_zero.sla"
    assert shared["backbones.t2v_zero"] == "latentman"
    assert not set(shared) & set(config["run_variants"])
    assert set(shared.values()) <= set(config["variants"]) - set(shared)


def test_a_differing_setting_or_seed_is_not_shared(shipped):
    config = copy.deepcopy(shipped)
    config["sweeps"] = {
        "s": {"grid": [{"t2v_zero": {"method": "t2v_zero"}, "g6": {"guidance_scale": 6.0}}], "seeds": [42]}
    }
    config["variants"]["same"] = {"method": "t2v_zero"}
    config["variants"]["latentman_no_sla"] = {"method": "latentman", "sla": {"enabled": False}}
    config["variants"]["t2v_pwg"] = {"method": "t2v_zero", "pwg": {"enabled": True, "steps": [4, 13]}}
    register_sweeps(config)
    shared = shared_results(config)
    # an explicit seed is another video than each prompt's own seed, another guidance scale too
    assert "s.t2v_zero.s42" not in shared and "s.g6.s42" not in shared
    assert shared["same"] == "t2v_zero"
    # latentman with SLA switched off is the t2v_zero backbone with PWG only
    assert shared["t2v_pwg"] == "latentman_no_sla"
    masa = deep_merge(resolve_variant(config, "t2v_zero"), {"method": "masactrl"})
    assert generation_key(masa) != generation_key(resolve_variant(config, "t2v_zero"))


def test_run_variants_come_first(shipped):
    config = copy.deepcopy(shipped)
    config["variants"] = {"a": {"method": "t2v_zero"}, "b": {"method": "t2v_zero"}}
    config["run_variants"] = ["b"]
    config["sweeps"] = None
    assert shared_results(config) == {"a": "b"}


# ---------------------------------------------------------------- dry runs of the tiny config (in parallel)
DRY_RUNS = {
    "no_sweep_name": ["sweep"],
    "misspelt_prompt": ["results/videos/walkr/latentman/video.mp4"],
    "misspelt_variant": ["results/eval/walker/latentmann.json"],
    "unknown_table": ["results/tables/nosuch.csv"],
    # forced, so the plan is the same whatever results/ holds: the default run plus the paper sweep
    "all_and_paper": ["-F", "all", "sweep", "--config", "sweep=paper"],
}


@pytest.fixture(scope="module")
def dry_runs():
    """Each case's finished `snakemake -n` on .test/config.yaml (started together: parsing dominates)."""
    # --configfile takes several files: --cores after it keeps the targets targets
    base = [sys.executable, "-m", "snakemake", "-n", "--configfile", ".test/config.yaml", "--cores", "1"]
    running = {
        name: subprocess.Popen(
            base + args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for name, args in DRY_RUNS.items()
    }
    return {name: (p.wait(timeout=300), *p.communicate()) for name, p in running.items()}


@pytest.mark.parametrize(
    "case, expected",
    [
        (
            "no_sweep_name",
            "latentman config error: the sweep target needs a sweep name: snakemake --cores all sweep "
            "--config sweep=NAME (defined sweeps: ",
        ),
        (
            "misspelt_prompt",
            "latentman target error: unknown prompt id 'walkr' in a target path (prompt table "
            ".test/prompts.tsv; did you mean 'walker'? valid: walker, jumper)",
        ),
        (
            "misspelt_variant",
            "latentman target error: unknown variant 'latentmann' in a target path (did you mean "
            "'latentman'? valid: t2v_zero, latentman, paper.t2v_zero,",
        ),
        (
            "unknown_table",
            "latentman target error: unknown sweep 'nosuch' in a target path (sweeps: default "
            "(run_variants), paper, ",
        ),
    ],
    ids=lambda value: value if value in DRY_RUNS else "",
)
def test_a_bad_target_is_one_line_naming_the_valid_names(dry_runs, case, expected):
    returncode, stdout, stderr = dry_runs[case]
    assert returncode == 1, stderr[-3000:]
    assert "Traceback" not in stderr and "Exception" not in stderr, stderr[-3000:]
    lines = [line for line in stderr.splitlines() if line.startswith("latentman ")]
    assert len(lines) == 1 and lines[0].startswith(expected), stderr[-3000:]


def test_the_paper_sweep_generates_only_new_videos(dry_runs):
    """2 prompts x (2 run variants + 8 paper variants - 2 equal to the run variants) = 16 videos, not 20;
    every variant is still evaluated (2 x 10), paper.t2v_zero on t2v_zero's frames."""
    returncode, stdout, stderr = dry_runs["all_and_paper"]
    assert returncode == 0, stderr[-3000:]
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", stdout, flags=re.M))
    assert (counts["generate"], counts["evaluate"]) == ("16", "20")
    assert "output: results/videos/walker/paper.t2v_zero/frames.h5" not in stdout
    evaluation = re.search(r"input: (\S+), \S+\n\s+output: results/eval/walker/paper.t2v_zero.json", stdout)
    assert evaluation and evaluation.group(1) == "results/videos/walker/t2v_zero/frames.h5"


def test_the_table_records_which_rows_reused_a_video():
    """A reused video carries the settings (and name) of the variant that generated it."""
    from latentman.metrics.aggregate import aggregate, to_markdown

    def record(variant, generated_by, prompt, h):
        settings = {"name": generated_by, "method": "t2v_zero", "sla": {"enabled": False}}
        settings["pwg"] = {"enabled": False}
        return {"variant": variant, "prompt": prompt, "settings": settings, "h_mse": {"mean": h}}

    records = [
        record("t2v_zero", "t2v_zero", "p1", 10.0),
        record("paper.t2v_zero", "t2v_zero", "p1", 10.0),
        record("paper.g6.s1", "paper.g6.s1", "p1", 12.0),
        record("paper.g6.s2", "other.s2", "p1", 14.0),
    ]
    for r in records:
        r["h_mse_official"] = r["h_mse"]
    table = aggregate(records, {"paper.g6.s1": "paper.g6", "paper.g6.s2": "paper.g6"})
    assert dict(zip(table["variant"], table["same_as"])) == {
        "t2v_zero": "",
        "paper.t2v_zero": "t2v_zero",
        "paper.g6": "other.s2",
    }
    assert to_markdown(table).endswith(
        "Same settings, so the videos were generated once and reused: paper.t2v_zero = t2v_zero; "
        "paper.g6 = other.s2.\n"
    )
