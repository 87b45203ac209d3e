"""Sweep expansion: names, count, registration into variants, and the three errors."""

import copy

import pytest

from latentman.config import load_config, resolve_variant, validate_config
from latentman.errors import ConfigError
from latentman.sweeps import expand_sweep, register_sweeps, select_sweep, sweep_prompts


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
    with pytest.raises(ConfigError, match=r"unknown sweep 'nope'.*defined sweeps: paper"):
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
