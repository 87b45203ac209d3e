"""Config and prompt-table validation: every mistake is one line naming the key and value."""

import copy
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from latentman.checks import validate_prompts_against_config
from latentman.config import (
    deep_merge,
    grids,
    load_config,
    load_prompts,
    resolve_variant,
    validate_config,
)
from latentman.errors import ConfigError
from latentman.sweeps import register_sweeps

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def default_config():
    return load_config(REPO / "config.yaml")


def test_shipped_config_and_prompts_are_valid(default_config):
    validate_config(default_config)
    prompts = load_prompts(REPO / "prompts.tsv")
    assert len(prompts) >= 4
    assert prompts["frames"].dtype.kind == "i" and prompts["seed"].dtype.kind == "i"
    validate_prompts_against_config(prompts, default_config)


def _set(config, dotted, value):
    node = config
    *parents, last = dotted.split(".")
    for key in parents:
        node = node[key]
    node[last] = value


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("render.resolution", 100, ["render.resolution", "100", "multiple of 64"]),
        ("render.resolution", "512", ["render.resolution", "wrong type", "integer"]),
        ("generation.defaults.num_inference_steps", -5, ["num_inference_steps", "-5"]),
        ("generation.defaults.method", "sora", ["generation.defaults.method", "sora", "t2v_zero"]),
        ("generation.defaults.pwg.delta", 0, ["pwg.delta", "0"]),
        ("generation.defaults.reference", "next", ["reference", "next", "prev_new"]),
        ("device", "tpu", ["device", "tpu", "cuda"]),
        ("models.stable_diffusion", "", ["models.stable_diffusion"]),
        ("models.unknown_model", "x", ["models", "unknown key", "unknown_model"]),
        ("motion.frame_step", 0, ["motion.frame_step", "0"]),
        ("render.camera.yfov_deg", 270, ["render.camera.yfov_deg", "270"]),
        ("correspondence.references", ["prev", "sideways"], ["correspondence.references[1]", "sideways"]),
        ("run_variants", ["t2v_zero", "nope"], ["run_variants", "nope"]),
        ("variants.bad name!", {"method": "t2v_zero"}, ["variants", "bad name!"]),
        # JSON Schema counts 4.0 as an integer; a config does not
        ("generation.defaults.num_inference_steps", 4.0, ["num_inference_steps = 4.0", "wrong type"]),
        ("generation.defaults.seed", 2**63, ["generation.defaults.seed", "maximum of 9223372036854775807"]),
        ("generation.video_fps", 0.01, ["generation.video_fps = 0.01", "minimum of 1"]),
        ("variants." + "v" * 300, {}, ["variants: name 'vvvv", "longer than 100 characters"]),
    ],
)
def test_invalid_config_value_is_named(default_config, key, value, expected):
    config = copy.deepcopy(default_config)
    _set(config, key, value)
    with pytest.raises(ConfigError) as info:
        validate_config(config)
    message = str(info.value)
    assert "\n" not in message
    for fragment in expected:
        assert fragment in message, (fragment, message)


def test_step_range_outside_schedule(default_config):
    config = copy.deepcopy(default_config)
    config["variants"]["latentman"]["pwg"]["steps"] = [4, 40]
    with pytest.raises(
        ConfigError, match=r"variants\.latentman\.pwg\.steps = \[4, 40\] is outside the schedule"
    ):
        validate_config(config)


def test_motion_dynamics_longer_than_the_schedule(default_config):
    config = copy.deepcopy(default_config)
    config["variants"]["t2v_zero"]["t2v_zero"] = {"motion_dynamics": True, "delta_t": 20}
    with pytest.raises(
        ConfigError, match=r"variants\.t2v_zero\.t2v_zero\.delta_t = 20 is outside the schedule"
    ):
        validate_config(config)
    config["variants"]["t2v_zero"]["t2v_zero"]["motion_dynamics"] = False  # then delta_t is not used
    validate_config(config)


def test_per_frame_noise_with_motion_dynamics_is_refused(default_config):
    config = copy.deepcopy(default_config)
    config["variants"]["t2v_zero"].update(initial_noise="per_frame", t2v_zero={"motion_dynamics": True})
    with pytest.raises(ConfigError, match=r"variants\.t2v_zero\.initial_noise = 'per_frame' has no effect"):
        validate_config(config)
    config["variants"]["t2v_zero"]["t2v_zero"]["motion_dynamics"] = False
    validate_config(config)


@pytest.mark.parametrize(
    "override, message",
    [
        ({"attention": "first_prev"}, "attention = 'first_prev' has no effect with method masactrl"),
        ({"t2v_zero": {"motion_dynamics": True}}, "variants.m.t2v_zero.motion_dynamics = true has no effect"),
    ],
)
def test_settings_masactrl_would_ignore_are_refused(default_config, override, message):
    config = copy.deepcopy(default_config)
    config["variants"]["m"] = {"method": "masactrl", **override}
    with pytest.raises(ConfigError, match=re.escape(message)):
        validate_config(config)


@pytest.mark.parametrize(
    "method, block, other",
    [
        ("t2v_zero", {"animatediff": {"first_frame_insertion": True}}, "animatediff"),
        ("masactrl", {"animatediff": {"context_length": 8}}, "animatediff"),
        ("t2v_zero", {"masactrl": {"start_step": 2}}, "masactrl"),
        ("animatediff", {"masactrl": {"start_step": 2}}, "masactrl"),
    ],
)
def test_another_backbones_settings_are_refused(default_config, method, block, other):
    config = copy.deepcopy(default_config)
    config["variants"]["v"] = {"method": method, **block}
    key = next(iter(block))
    message = f"variants.v.{key} = {block[key]} has no effect with method {method} (only method {other}"
    with pytest.raises(ConfigError, match=re.escape(message)):
        validate_config(config)
    config["variants"]["v"]["method"] = other  # the same block on its own backbone is accepted
    validate_config(config)


def test_another_backbones_settings_in_a_sweep_grid_are_refused(default_config):
    config = copy.deepcopy(default_config)
    config["sweeps"]["bad"] = {
        "grid": [{"t2v_zero": {"method": "t2v_zero", "animatediff": {"first_frame_insertion": True}}}],
        "prompts": None,
        "seeds": None,
    }
    register_sweeps(config)
    with pytest.raises(ConfigError, match=re.escape("variants['bad.t2v_zero'].animatediff = {")):
        validate_config(config)


def test_step_range_reversed(default_config):
    config = copy.deepcopy(default_config)
    config["variants"]["latentman"]["sla"]["steps"] = [6, 2]
    with pytest.raises(ConfigError, match=r"sla\.steps = \[6, 2\]: first step is after last step"):
        validate_config(config)


def test_resolve_variant_merges_and_latentman_switches_modules_on(default_config):
    settings = resolve_variant(default_config, "latentman")
    assert settings["sla"]["enabled"] and settings["pwg"]["enabled"]
    assert settings["pwg"]["delta"] == default_config["generation"]["defaults"]["pwg"]["delta"]
    config = copy.deepcopy(default_config)
    config["variants"]["latentman_no_pwg"] = {"method": "latentman", "pwg": {"enabled": False}}
    settings = resolve_variant(config, "latentman_no_pwg")
    assert settings["sla"]["enabled"] and not settings["pwg"]["enabled"]
    assert not resolve_variant(default_config, "t2v_zero")["sla"]["enabled"]
    with pytest.raises(ConfigError, match="variant 'missing' is not defined"):
        resolve_variant(default_config, "missing")


def test_deep_merge_does_not_mutate():
    base = {"a": {"b": 1, "c": 2}}
    merged = deep_merge(base, {"a": {"b": 5}})
    assert merged == {"a": {"b": 5, "c": 2}} and base == {"a": {"b": 1, "c": 2}}


def test_grids():
    assert grids(512) == {"latent": 64, "guidance": 256}
    assert grids(128) == {"latent": 16, "guidance": 64}


HEADER = "id\tmotion\tprompt\tnegative_prompt\tframes\tseed\n"


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ("a\twalk\ta robot\t\t8\t1\na\trun\ta cat\t\t8\t2\n", ["id 'a' appears more than once"]),
        ("a\twalk\t   \t\t8\t1\n", ["line 2", "prompt"]),
        ("a\t\ta robot\t\t8\t1\n", ["line 2", "motion"]),
        ("a\twalk\ta robot\t\teight\t1\n", ["line 2", "frames", "'eight'", "whole number"]),
        ("a\twalk\ta robot\t\t1\t1\n", ["line 2", "frames", "1"]),
        ("a\twalk\ta robot\t\t8\t-3\n", ["line 2", "seed", "-3"]),
        ("bad id\twalk\ta robot\t\t8\t1\n", ["id", "bad id"]),
    ],
)
def test_invalid_prompt_table_is_named(tmp_path, rows, expected):
    path = tmp_path / "prompts.tsv"
    path.write_text(HEADER + rows)
    with pytest.raises(ConfigError) as info:
        load_prompts(path)
    message = str(info.value)
    assert "\n" not in message
    for fragment in expected:
        assert fragment in message, (fragment, message)


def test_every_bad_prompt_row_is_reported_at_once(tmp_path):
    path = tmp_path / "prompts.tsv"
    rows = "a\twalk\ta robot\t\teight\t1\nb\twalk\ta cat\t\t8\t1\nc\twalk\ta dog\t\t8\t-2\n"
    path.write_text(HEADER + rows)
    with pytest.raises(ConfigError) as info:
        load_prompts(path)
    lines = str(info.value).splitlines()
    assert len(lines) == 2
    assert "line 2 (id 'a'): column frames = 'eight'" in lines[0]
    assert "line 4 (id 'c'): seed = -2" in lines[1]


def test_prompt_table_files_that_are_not_tables(tmp_path):
    empty = tmp_path / "empty.tsv"
    empty.write_bytes(b"")
    with pytest.raises(ConfigError, match=r"empty\.tsv: the file is empty; expected a header line"):
        load_prompts(empty)
    with pytest.raises(
        ConfigError, match=r"is a folder; expected a tab-separated file \(config key: prompts\)"
    ):
        load_prompts(tmp_path)
    binary = tmp_path / "binary.tsv"
    binary.write_bytes(b"id\tmotion\n\xff\xfe\x00")
    with pytest.raises(ConfigError, match=r"binary\.tsv: not UTF-8 text"):
        load_prompts(binary)


def test_trailing_tabs_pass_and_extra_fields_are_named(tmp_path):
    path = tmp_path / "prompts.tsv"
    path.write_text(HEADER.rstrip("\n") + "\t\n" + "a\twalk\ta robot\t\t8\t1\t\t\n")
    assert load_prompts(path).loc["a", "frames"] == 8
    path.write_text(HEADER + "a\twalk\ta robot\t\t8\t1\n" + "b\twalk\ta shiny\trobot\t\t8\t1\n")
    with pytest.raises(ConfigError) as info:
        load_prompts(path)
    message = str(info.value)
    assert "line 3 (id 'b'): field 7 ('1') has no column: the header has 6" in message


def test_prompt_table_unknown_column_and_empty(tmp_path):
    path = tmp_path / "prompts.tsv"
    path.write_text("id\tmotion\tprompt\tframes\tseed\tcolour\na\twalk\tx\t8\t1\tred\n")
    with pytest.raises(ConfigError, match="unknown column.*colour"):
        load_prompts(path)
    path.write_text(HEADER)
    with pytest.raises(ConfigError, match="no rows"):
        load_prompts(path)
    with pytest.raises(ConfigError, match="not found"):
        load_prompts(tmp_path / "absent.tsv")


def test_prompt_whitespace_stripped_and_optional_columns(tmp_path):
    path = tmp_path / "prompts.tsv"
    path.write_text("id\tmotion\tprompt\tframes\tseed\na\t walk \t a robot \t8\t1\n")
    table = load_prompts(path)
    assert table.loc["a", "motion"] == "walk" and table.loc["a", "negative_prompt"] == ""


def test_missing_motion_file_is_named(tmp_path, default_config):
    path = tmp_path / "prompts.tsv"
    path.write_text(HEADER.rstrip("\n") + "\tmotion_file\n" + "a\twalk\tx\t\t8\t1\t/nonexistent/m.npz\n")
    with pytest.raises(ConfigError, match="motion_file '/nonexistent/m.npz' not found"):
        validate_prompts_against_config(load_prompts(path), default_config)


def test_bad_yaml_is_one_line(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("render: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)


def test_snakemake_stops_before_any_job_on_bad_config(tmp_path):
    """Through the real CLI: one line naming the key, exit code 1, nothing under results/."""
    config = load_config(REPO / "config.yaml")
    config["render"]["resolution"] = 96
    config["prompts"] = str(REPO / "prompts.tsv")
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "-s",
            str(REPO / "Snakefile"),
            "--configfile",
            str(bad),
            "--directory",
            str(tmp_path),
            "--cores",
            "1",
            "-n",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if "latentman config error" in line]
    assert len(lines) == 1 and "render.resolution = 96" in lines[0] and "multiple of 64" in lines[0]
    assert not (tmp_path / "results").exists()


def test_prompt_length_counted_with_the_models_tokenizer(tmp_path, default_config):
    """One 10,000-character word is one word but thousands of CLIP tokens: counted with the model's own
    tokenizer when its folder is here, before any job."""
    from transformers import CLIPTokenizer

    from latentman.models.embedded import write_tiny_tokenizer

    folder = tmp_path / "sd" / "tokenizer"
    write_tiny_tokenizer(folder)
    CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt")).save_pretrained(folder)
    config = copy.deepcopy(default_config)
    config["models"]["stable_diffusion"] = str(tmp_path / "sd")
    config["generation"]["defaults"]["prompt_suffix"] = ""
    config["generation"]["defaults"]["negative_prompt"] = "bad"
    path = tmp_path / "prompts.tsv"
    path.write_text("id\tmotion\tprompt\tframes\tseed\nlong\twalk\ta " + "x" * 10_000 + "\t8\t1\n")
    with pytest.raises(
        ConfigError,
        match=r"id 'long': the prompt .* is 1000\d tokens; prompts are encoded in at most 3 chunks of 75 "
        r"\(225 tokens\) and the rest would be dropped: shorten it",
    ):
        validate_prompts_against_config(load_prompts(path), config)
    # the word-count bound without a tokenizer (embedded:tiny) cannot see it: the exact count is the fix
    config["models"]["stable_diffusion"] = "embedded:tiny"
    validate_prompts_against_config(load_prompts(path), config)
    path.write_text(
        "id\tmotion\tprompt\tnegative_prompt\tframes\tseed\nneg\twalk\ta person\t"
        + "bad, " * 113
        + "\t8\t1\n"
    )
    with pytest.raises(ConfigError, match=r"id 'neg': the negative prompt is at least 226 tokens"):
        validate_prompts_against_config(load_prompts(path), config)


def test_prompts_longer_than_77_tokens_are_accepted_up_to_3_chunks(tmp_path, default_config, capfd):
    """The official SD1.5 suffix and negative prompt exceed CLIP's 77 tokens: they are encoded in chunks
    (generation pipeline), so up to 225 tokens pass without a warning, transformers' included."""
    from transformers import CLIPTokenizer

    from latentman.checks import count_clip_tokens
    from latentman.models.embedded import write_tiny_tokenizer

    folder = tmp_path / "sd" / "tokenizer"
    write_tiny_tokenizer(folder)
    CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt")).save_pretrained(folder)
    config = copy.deepcopy(default_config)
    config["models"]["stable_diffusion"] = str(tmp_path / "sd")
    config["generation"]["defaults"]["prompt_suffix"] = " z" * 150  # 'z' is one token of this tokenizer
    config["generation"]["defaults"]["negative_prompt"] = " ".join(["z"] * 225)
    path = tmp_path / "prompts.tsv"
    path.write_text("id\tmotion\tprompt\tframes\tseed\nlong\twalk\tz\t8\t1\n")
    capfd.readouterr()
    validate_prompts_against_config(load_prompts(path), config)
    assert "Token indices sequence length" not in capfd.readouterr().err
    config["generation"]["defaults"]["negative_prompt"] += " z"
    with pytest.raises(ConfigError, match=r"id 'long': the negative prompt is 226 tokens"):
        validate_prompts_against_config(load_prompts(path), config)
    tokenizer = CLIPTokenizer.from_pretrained(str(folder))
    assert count_clip_tokens("z" + " z" * 150, tokenizer) == (151, True)
    assert "Token indices sequence length" not in capfd.readouterr().err
