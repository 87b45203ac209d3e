"""The registry of generation methods (latentman.generation.methods): what each method declares, that the
config, sweeps, tables and pipeline ask it, and that adding a method is one module (README "Adding a
generation method": the worked example below is that text)."""

from __future__ import annotations

import ast
import copy
from pathlib import Path

import numpy as np
import pytest

from latentman.config import load_config, load_schema, resolve_variant, validate_config
from latentman.errors import ConfigError
from latentman.generation import methods
from latentman.generation.methods import METHODS, backbone_of, get_method, settings_blocks
from latentman.generation.methods.t2v_zero import TextToVideoZero
from latentman.generation.settings import GenerationSettings
from latentman.metrics.aggregate import backbone_of as table_backbone
from latentman.sweeps import generation_key

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def config():
    return load_config(REPO / "config.yaml")


def test_the_registry_holds_each_method_module_once():
    assert list(METHODS) == ["t2v_zero", "masactrl", "latentman", "animatediff"]
    assert list(settings_blocks()) == ["t2v_zero", "masactrl", "animatediff"]
    assert {m.backbone for m in METHODS.values()} == {"t2v_zero", "masactrl", "animatediff"}
    assert get_method("animatediff").model_keys == ("stable_diffusion", "controlnet_depth", "motion_adapter")
    assert get_method("masactrl").model_keys == ("stable_diffusion", "controlnet_depth")
    # every method has a label and its own colour family (presets share their backbone's)
    colours = {m.backbone: m.colourmap for m in METHODS.values()}
    assert len(set(colours.values())) == len(colours) and all(m.label for m in METHODS.values())
    with pytest.raises(ConfigError, match="method 'sora' is not registered .*t2v_zero, masactrl"):
        get_method("sora")


def test_the_config_schema_takes_the_methods_enum_and_blocks_from_the_registry():
    properties = load_schema("config")["definitions"]["generation_settings"]["properties"]
    assert properties["method"]["enum"] == list(METHODS)
    for name, block in settings_blocks().items():
        assert properties[name] == dict(block.schema)
    # the YAML file itself names no method: the registry is the one list
    text = (REPO / "schemas/config.schema.yaml").read_text()
    assert "masactrl:" not in text and "start_layer" not in text


def test_the_latentman_preset_is_t2v_zero_with_sla_and_pwg(config):
    settings = resolve_variant(config, "latentman")
    assert settings["sla"]["enabled"] and settings["pwg"]["enabled"]
    config["variants"]["off"] = {"method": "latentman", "pwg": {"enabled": False}}
    assert not resolve_variant(config, "off")["pwg"]["enabled"]  # an explicit switch wins
    assert backbone_of("latentman") == "t2v_zero" == table_backbone({"method": "latentman"})
    config["variants"]["both"] = {"method": "t2v_zero", "sla": {"enabled": True}, "pwg": {"enabled": True}}
    assert generation_key(resolve_variant(config, "both")) == generation_key(settings)


def test_a_block_the_method_does_not_read_is_refused(config):
    config["variants"]["v"] = {"method": "t2v_zero", "masactrl": {"start_step": 3}}
    with pytest.raises(ConfigError, match=r"variants.v.masactrl = .* no effect with method t2v_zero .*only "):
        validate_config(config)
    # the t2v_zero block is read by three methods; masactrl reads none of it
    config["variants"]["v"] = {"method": "masactrl", "t2v_zero": {"delta_t": 3}}
    with pytest.raises(ConfigError, match="only methods t2v_zero, latentman, animatediff read it"):
        validate_config(config)
    config["variants"]["v"] = {"method": "animatediff", "t2v_zero": {"delta_t": 3}}
    validate_config(config)


def test_the_typed_settings_read_each_block_and_write_the_config_spelling(config):
    raw = resolve_variant(config, "latentman")
    settings = GenerationSettings.from_config(raw)
    assert settings.masactrl.start_layer == raw["masactrl"]["start_layer"]
    assert settings.t2v_zero.lambda_ == raw["t2v_zero"]["lambda"]
    written = settings.as_dict()
    assert written == raw and list(written)[-3:] == ["t2v_zero", "masactrl", "animatediff"]
    assert settings.scheduler["beta_schedule"] == "scaled_linear"
    animated = GenerationSettings.from_config(
        resolve_variant(config, "latentman") | {"method": "animatediff"}
    )
    assert (
        animated.scheduler["beta_schedule"]
        == config["generation"]["defaults"]["animatediff"]["beta_schedule"]
    )
    with pytest.raises(AttributeError):
        _ = settings.no_such_block


def _method_name_comparisons(path: Path) -> list[str]:
    """Comparisons (==, !=, in) of an expression with a method's name in a Python source."""
    names = set(METHODS)
    found = []
    lines = path.read_text().splitlines()
    for node in ast.walk(ast.parse(path.read_text())):
        # "latentman" is the package's logger name too (scripting.py's terminal filter)
        if isinstance(node, ast.Compare) and "record.name" not in lines[node.lineno - 1]:
            operands = [node.left, *node.comparators]
            for operand in operands:
                values = operand.elts if isinstance(operand, ast.Tuple | ast.List | ast.Set) else [operand]
                if any(isinstance(v, ast.Constant) and v.value in names for v in values):
                    found.append(f"{path.relative_to(REPO)}:{node.lineno}")
    return found


def test_no_method_name_is_compared_outside_the_registry():
    sources = [p for p in (REPO / "latentman").rglob("*.py") if "methods" not in p.parts]
    sources += list((REPO / "workflow_scripts").glob("*.py"))
    found = [hit for path in sources for hit in _method_name_comparisons(path)]
    # rules/*.smk are Python too, but not parseable as such: no quoted method name in them at all
    for path in (REPO / "rules").glob("*.smk"):
        text = path.read_text()
        found += [f"{path.name}: {m}" for m in METHODS if f'"{m}"' in text or f"'{m}'" in text]
    assert found == []


# ------------------------------------------------------------------------------ adding a method
class IndependentFrames(TextToVideoZero):
    """Every frame generated on its own: plain self-attention, whatever ``attention`` says."""

    def self_attention_processor(self, model, layer, n_layers, context, settings):
        from latentman.generation import attention

        return attention.plain_processor()


INDEPENDENT = IndependentFrames(
    name="independent", label="Independent frames", colourmap="Purples", blocks=("t2v_zero",)
)


@pytest.fixture
def with_independent(monkeypatch):
    monkeypatch.setitem(METHODS, "independent", INDEPENDENT)
    return INDEPENDENT


def test_a_new_method_is_one_module_registered(with_independent, config, tiny_models_dir):
    """The worked example of README "Adding a generation method": the config accepts it, the tables and
    plots know it, and the pipeline runs its hook (it equals t2v_zero with attention: none)."""
    assert (
        "independent"
        in load_schema("config")["definitions"]["generation_settings"]["properties"]["method"]["enum"]
    )
    config["variants"]["solo"] = {"method": "independent"}
    validate_config(config)
    assert table_backbone({"method": "independent"}) == "independent"
    assert methods.colourmap_of("independent") == "Purples" and methods.label_of("independent")

    from latentman.generation.pipeline import LatentmanPipeline
    from latentman.models import load_models

    tiny = {"stable_diffusion": "embedded:tiny", "controlnet_depth": "embedded:tiny"}
    pipe = LatentmanPipeline(load_models(tiny, tiny_models_dir), "cpu")
    control = np.random.default_rng(0).integers(0, 255, (3, 64, 64), dtype=np.uint8)

    def frames(**overrides):
        settings = copy.deepcopy(resolve_variant(config, "t2v_zero")) | {"num_inference_steps": 2}
        return pipe("a person", "", control, None, settings | overrides, 5, progress=False)

    solo, none, cross = frames(method="independent"), frames(attention="none"), frames()
    assert np.array_equal(solo, none) and not np.array_equal(solo, cross)
