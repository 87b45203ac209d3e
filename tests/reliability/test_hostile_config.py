"""Hostile configs and prompt tables, round two (issue 30 classes 1, 4, 5 and 6): non-finite and absurd
numbers, config files that are folders, binary or carry a key twice, values a stage would refuse only inside a
job (deleting that job's previous output first), and settings that would be silently ignored. Each stops at
start with one line naming the key and value; the cases call the validation the workflow runs at start
(rules/common.smk) in process, and a few run `snakemake -n` to see the same line there.
"""

import copy
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import copy_repo

from latentman import checks, cli
from latentman import config as config_module
from latentman.checks import validate_prompts_against_config
from latentman.config import deep_merge, load_config, load_prompts, validate_config
from latentman.errors import ConfigError
from latentman.sweeps import register_sweeps

REPO = Path(__file__).resolve().parents[2]
HEADER = "id\tmotion\tprompt\tnegative_prompt\tframes\tseed\n"
CAPTION = "a person in a red shirt, blue trousers and white shoes"


@pytest.fixture(scope="module")
def base():
    return load_config(REPO / "config.yaml")


def start(config: dict, prompts_path: Path | str | None = None) -> None:
    """What rules/common.smk runs before any job (less the model-file checks)."""
    validate_config(config, source="config")
    register_sweeps(config)
    validate_config(config, source="config (with expanded sweeps)")
    path = prompts_path or REPO / config["prompts"]
    validate_prompts_against_config(load_prompts(path), config, source=str(path))


def _set(config: dict, dotted: str, value) -> dict:
    node = config
    *parents, last = dotted.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return config


def stops(config: dict, *fragments: str, prompts_path=None) -> str:
    with pytest.raises(ConfigError) as info:
        start(config, prompts_path)
    message = str(info.value)
    assert "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    return message


# ----------------------------------------------------------------------------- class 1: NaN and inf
NAN, INF = float("nan"), float("inf")
NON_FINITE = [
    ("generation.defaults.guidance_scale", NAN, "generation.defaults.guidance_scale = nan"),
    ("generation.defaults.guidance_scale", INF, "generation.defaults.guidance_scale = inf"),
    ("generation.defaults.guidance_scale", -INF, "generation.defaults.guidance_scale = -inf"),
    ("generation.defaults.controlnet_scale", NAN, "generation.defaults.controlnet_scale = nan"),
    ("generation.defaults.pwg.delta", NAN, "generation.defaults.pwg.delta = nan"),
    ("generation.defaults.pwg.delta", INF, "generation.defaults.pwg.delta = inf"),
    ("generation.defaults.t2v_zero.lambda", NAN, "generation.defaults.t2v_zero.lambda = nan"),
    ("generation.video_fps", NAN, "generation.video_fps = nan"),
    ("motion.fps", INF, "motion.fps = inf"),
    ("motion.fps", NAN, "motion.fps = nan"),
    ("render.max_fit_error_mm", INF, "render.max_fit_error_mm = inf"),
    ("render.camera.fill", NAN, "render.camera.fill = nan"),
    ("render.camera.yfov_deg", NAN, "render.camera.yfov_deg = nan"),
    ("render.camera.elevation_deg", NAN, "render.camera.elevation_deg = nan"),
    ("render.camera.auto_follow_below", NAN, "render.camera.auto_follow_below = nan"),
    ("correspondence.surface_radius", NAN, "correspondence.surface_radius = nan"),
    ("variants.t2v_zero.guidance_scale", NAN, "variants.t2v_zero.guidance_scale = nan"),
]


@pytest.mark.parametrize(("key", "value", "fragment"), NON_FINITE, ids=[f"{k}={v}" for k, v, _ in NON_FINITE])
def test_non_finite_number_is_named(base, key, value, fragment):
    message = stops(_set(copy.deepcopy(base), key, value), fragment, "not a finite number")
    assert message.startswith("config: ")


def test_nan_inside_a_sweep_grid_names_its_path(base):
    config = copy.deepcopy(base)
    config["sweeps"]["paper"]["grid"][0]["t2v_zero"]["guidance_scale"] = NAN
    stops(config, "sweeps.paper.grid[0].t2v_zero.guidance_scale = nan", "not a finite number")


# ----------------------------------------------------------------------------- class 1: absurd sizes
TOO_LARGE = [
    ("render.resolution", 4096, ["render.resolution = 4096", "maximum of 1024"]),
    ("render.resolution", 64 * 10**9, ["render.resolution", "maximum of 1024"]),
    ("generation.defaults.num_inference_steps", 10**9, ["num_inference_steps = 1000000000", "maximum"]),
    ("generation.defaults.chunk_size", 100000, ["chunk_size = 100000", "maximum of 512"]),
    ("generation.defaults.guidance_scale", 1e6, ["guidance_scale = 1000000.0", "maximum of 100"]),
    ("generation.defaults.controlnet_scale", 1000, ["controlnet_scale = 1000", "maximum of 10"]),
    ("generation.defaults.pwg.delta", 1e9, ["pwg.delta = 1000000000.0", "maximum of 1000"]),
    ("generation.defaults.sla.steps", [0, 10**9], ["sla.steps[1] = 1000000000", "maximum of 999"]),
    ("generation.defaults.t2v_zero.lambda", 1e6, ["t2v_zero.lambda = 1000000.0", "maximum of 512"]),
    ("generation.defaults.t2v_zero.delta_t", 10**6, ["t2v_zero.delta_t = 1000000", "maximum of 999"]),
    ("generation.defaults.masactrl.start_step", 10**6, ["masactrl.start_step = 1000000", "maximum of 999"]),
    ("generation.defaults.animatediff.context_length", 10**6, ["context_length = 1000000", "maximum of 512"]),
    ("motion.frame_step", 1000, ["motion.frame_step = 1000", "maximum of 100"]),
    ("motion.fps", 1e6, ["motion.fps = 1000000.0", "maximum of 1000"]),
    ("correspondence.surface_radius", 50.0, ["surface_radius = 50.0", "maximum of 2"]),
    ("render.min_body_pixels", 70000, ["render.min_body_pixels = 70000", "256x256", "65536"]),
]


@pytest.mark.parametrize(("key", "value", "fragments"), TOO_LARGE, ids=[f"{k}={v}" for k, v, _ in TOO_LARGE])
def test_absurd_size_is_refused(base, key, value, fragments):
    stops(_set(copy.deepcopy(base), key, value), *fragments)


def test_sweep_seed_list_is_bounded(base):
    config = copy.deepcopy(base)
    config["sweeps"]["paper"]["seeds"] = list(range(1001))
    stops(config, "sweeps.paper.seeds has 1001 entries; at most 1000 are allowed")


def test_sweep_grid_product_is_bounded_before_expanding(base):
    config = copy.deepcopy(base)
    axis = {f"o{i}": {} for i in range(100)}
    config["sweeps"]["huge"] = {"grid": [axis, axis, axis, axis]}  # 10^8 variants: never expanded
    began = time.perf_counter()
    stops(config, "sweeps.huge", "100 x 100 x 100 x 100 options", "100000000 variants", "at most 1000")
    assert time.perf_counter() - began < 5


def test_videos_per_run_are_bounded(base, monkeypatch):
    monkeypatch.setattr(checks, "MAX_VIDEOS", 5)
    stops(copy.deepcopy(base), "run_variants: 2 variants x 4 prompts = 8 videos", "at most 5")


def test_prompt_rows_are_bounded(base, tmp_path):
    path = tmp_path / "many.tsv"
    row = f"a{{}}\ta person walks\t{CAPTION}\t\t4\t1\n"
    path.write_text(HEADER + "".join(row.format(i) for i in range(config_module.MAX_PROMPT_ROWS + 1)))
    stops(copy.deepcopy(base), "10001 rows", "at most 10000", prompts_path=path)


def test_large_prompt_table_starts_fast_and_parses_the_schema_once(base, tmp_path):
    path = tmp_path / "large.tsv"
    row = f"a{{}}\ta person walks\t{CAPTION}\t\t4\t{{}}\n"
    path.write_text(HEADER + "".join(row.format(i, i) for i in range(3000)))
    config_module._schema_file.cache_clear()
    began = time.perf_counter()
    prompts = load_prompts(path)
    elapsed = time.perf_counter() - began
    assert len(prompts) == 3000
    assert config_module._schema_file.cache_info().misses == 1  # one parse, not one per row
    assert elapsed < 10, elapsed


# ----------------------------------------------------------------------------- class 4: config files
def test_folder_as_config_file(tmp_path):
    with pytest.raises(ConfigError, match=r"config file .*folder.* is a folder; expected a YAML file"):
        load_config(tmp_path)


def test_binary_config_file(tmp_path):
    path = tmp_path / "weights.bin"
    path.write_bytes(b"\x00\xff\xfe\x89PNG\r\n\x1a\n" * 8)
    with pytest.raises(ConfigError, match=r"weights.bin: not UTF-8 text \(byte 1"):
        load_config(path)


@pytest.mark.parametrize("kind", ["folder", "binary", "duplicate"])
def test_cli_config_loading_is_one_line(tmp_path, monkeypatch, capsys, kind):
    monkeypatch.chdir(REPO)
    path = tmp_path / "folder"
    if kind == "folder":
        path.mkdir()
    elif kind == "binary":
        path = tmp_path / "blob.yaml"
        path.write_bytes(bytes(range(256)))
    else:
        path = tmp_path / "dup.yaml"
        path.write_text("render:\n  resolution: 64\n  resolution: 128\n")
    assert cli.main(["sweeps", "--configfile", str(path)]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    assert err.startswith("latentman: error: ")
    assert {"folder": "is a folder", "binary": "not UTF-8 text", "duplicate": "'resolution' appears twice"}[
        kind
    ] in err


# ----------------------------------------------------------------------------- class 6: duplicate YAML keys
DUPLICATE_KEYS = {
    "top_level": ("device: cpu\nprompts: a.tsv\ndevice: cuda\n", "line 3: key 'device'", "first at line 1"),
    "nested": (
        "render:\n  resolution: 64\n  backend: auto\n  resolution: 128\n",
        "line 4: key 'resolution'",
        "line 2",
    ),
    "in_a_variant": (
        "variants:\n  v:\n    sla: {enabled: true}\n    sla: {enabled: false}\n",
        "line 4: key 'sla'",
        "line 3",
    ),
    "flow_mapping": ("render: {resolution: 64, resolution: 128}\n", "line 1: key 'resolution'", "line 1"),
    "in_a_sweep_axis": (
        "sweeps:\n  s:\n    grid:\n      - a: {}\n        a: {sla: {enabled: true}}\n",
        "line 5: key 'a'",
        "line 4",
    ),
}


@pytest.mark.parametrize("case", sorted(DUPLICATE_KEYS))
def test_duplicate_yaml_key_names_key_and_line(tmp_path, case):
    text, *fragments = DUPLICATE_KEYS[case]
    path = tmp_path / f"{case}.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert "\n" not in message and "appears twice" in message
    for fragment in fragments:
        assert fragment in message, message


def test_merge_key_override_is_not_a_duplicate(tmp_path):
    path = tmp_path / "merge.yaml"
    path.write_text("a: &x {p: 1, q: 2}\nb:\n  <<: *x\n  p: 3\n")
    assert load_config(path)["b"] == {"p": 3, "q": 2}


# ----------------------------------------------------------------------------- class 6: the prompt table
PROMPT_CASES = {
    "arabic_indic_frames": (
        f"a\ta person walks\t{CAPTION}\t\t٨\t1\n",
        ["column frames = '٨'", "ASCII digits"],
    ),
    "fullwidth_seed": (
        f"a\ta person walks\t{CAPTION}\t\t8\t４２\n",
        ["column seed = '４２'", "ASCII digits"],
    ),
    "devanagari_frames": (f"a\ta person walks\t{CAPTION}\t\t८\t1\n", ["column frames = '८'", "ASCII digits"]),
    "underscore_digits": (
        f"a\ta person walks\t{CAPTION}\t\t1_0\t1\n",
        ["column frames = '1_0'", "ASCII digits"],
    ),
    "superscript": (f"a\ta person walks\t{CAPTION}\t\t8\t1²\n", ["column seed = '1²'", "whole number"]),
    "two_shirt_colours": (
        "a\ta person walks\ta person in a red blue shirt, blue trousers and white shoes\t\t8\t1\n",
        ["id 'a'", "two colours for the shirt (red, blue)"],
    ),
    "shuffled": (
        "a\ta person walks\tblue trousers and white shoes, a person in a red shirt\t\t8\t1\n",
        ["id 'a'", "not in the grammar's order", CAPTION],
    ),
    "pattern_on_trousers": (
        "a\ta person walks\ta person in a red shirt, striped blue trousers and white shoes\t\t8\t1\n",
        ["a pattern on the trousers"],
    ),
    "missing_garment": (
        "a\ta person walks\ta person in a red shirt\t\t8\t1\n",
        ["no colour for the trousers, shoes"],
    ),
    "garment_twice": (
        "a\ta person walks\ta person in a red shirt, green shirt and white shoes\t\t8\t1\n",
        ["names the shirt twice"],
    ),
}


@pytest.mark.parametrize("case", sorted(PROMPT_CASES))
def test_bad_prompt_row(base, tmp_path, case):
    rows, fragments = PROMPT_CASES[case]
    path = tmp_path / f"{case}.tsv"
    path.write_text(HEADER + rows, encoding="utf-8")
    stops(copy.deepcopy(base), *fragments, prompts_path=path)


@pytest.mark.parametrize("column", ["seed", "prompt", "id"])
def test_duplicate_prompt_column(base, tmp_path, column):
    path = tmp_path / "dup.tsv"
    header = HEADER.rstrip("\n") + f"\t{column}\n"
    path.write_text(header + f"a\ta person walks\t{CAPTION}\t\t8\t1\tx\n")
    stops(copy.deepcopy(base), f"column(s) '{column}' appear more than once", prompts_path=path)


# ----------------------------------------------------------------------------- class 6: ignored settings
def test_block_of_another_method_is_refused(base):
    config = _set(copy.deepcopy(base), "variants.t2v_zero.masactrl", {"start_layer": 4})
    stops(config, "variants.t2v_zero.masactrl", "has no effect with method t2v_zero", "method masactrl")


def test_animatediff_block_on_masactrl_is_refused(base):
    config = copy.deepcopy(base)
    config["variants"]["m"] = {"method": "masactrl", "animatediff": {"context_length": 8}}
    stops(config, "variants.m.animatediff", "has no effect with method masactrl")


def test_masactrl_start_layer_past_sd15_layers(base):
    config = copy.deepcopy(base)
    config["variants"]["m"] = {"method": "masactrl", "masactrl": {"start_layer": 16}}
    stops(config, "variants.m.masactrl.start_layer = 16 has no effect", "16 self-attention layers of SD1.5")


def test_masactrl_start_layer_past_the_configured_unet(base):
    config = copy.deepcopy(base)
    config["variants"]["m"] = {"method": "masactrl", "masactrl": {"start_layer": 15}}
    start(copy.deepcopy(config))  # the toy UNet's 10 layers: layer 9 is the last one, still used
    config["models"].update(stable_diffusion="embedded:tiny", controlnet_depth="embedded:tiny")
    stops(
        config, "variants.m.masactrl.start_layer = 15 has no effect", "layer 7 of the 7 self-attention layers"
    )


# ----------------------------------------------------------------------------- class 5: job-time refusals
def test_animatediff_context_longer_than_the_adapter(base):
    config = copy.deepcopy(base)
    config["variants"]["ad"] = {"method": "animatediff", "animatediff": {"context_length": 64}}
    stops(config, "variants.ad.animatediff.context_length = 64", "32 position encodings")


def test_builtin_motion_longer_than_60_s(base, tmp_path):
    config = _set(copy.deepcopy(base), "motion.fps", 5)
    path = tmp_path / "long.tsv"
    path.write_text(HEADER + f"a\ta person walks\t{CAPTION}\t\t200\t1\n")
    stops(config, "id 'a'", "frames = 200", "399 motion frames at motion.fps = 5", "60 s", prompts_path=path)


def test_mdm_motion_longer_than_mdm_makes(base, tmp_path):
    config = _set(copy.deepcopy(base), "models.mdm", str(tmp_path / "model.pt"))
    config["motion"]["fps"] = 40  # 100 video frames x step 2 at 40 fps: 5 s, 100 MDM frames: fine
    path = tmp_path / "mdm.tsv"
    path.write_text(HEADER + f"a\ta person walks\t{CAPTION}\t\t100\t1\n")
    start(config, path)
    config["motion"]["fps"] = 10  # the same frames at 10 fps: 19.8 s, beyond MDM's 9.8 s
    stops(config, "id 'a'", "frames = 100", "MDM makes at most 196", prompts_path=path)


def test_sweep_naming_an_unknown_prompt_stops_at_start(base):
    config = copy.deepcopy(base)
    config["sweeps"]["paper"]["prompts"] = ["walk_red", "nope"]
    stops(config, "sweeps.paper.prompts: unknown prompt id(s) 'nope'", "walk_red")


# ----------------------------------------------------------------------------- valid configs unchanged
@pytest.mark.parametrize("extra", [None, "configs/paper.yaml", ".test/config.yaml"])
def test_shipped_configs_still_validate(extra):
    config = load_config(REPO / "config.yaml")
    if extra:
        config = deep_merge(config, load_config(REPO / extra))
    start(config, REPO / config["prompts"])


# ----------------------------------------------------------------------------- snakemake -n (2 subprocesses)
@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    return copy_repo(tmp_path_factory.mktemp("hostile_config") / "repo")


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("render:\n  resolution: 64\n  resolution: 128\n", ["line 3: key 'resolution' appears twice"]),
        (
            "generation:\n  defaults:\n    guidance_scale: .nan\n",
            ["guidance_scale = nan", "not a finite number"],
        ),
    ],
    ids=["duplicate_key", "nan"],
)
def test_snakemake_stops_before_any_job(repo, text, fragments):
    path = repo / "hostile.yaml"
    path.write_text(text)
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--configfile", str(path)],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("latentman config error")]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert not (repo / "results").exists()
