"""MasaCtrl (the paper's second backbone): mutual self-attention. From ``masactrl.start_step`` and
``masactrl.start_layer`` (of SD1.5's 16 self-attention layers) the UNet's self-attention of every frame
reads the first frame's keys and values; before that, plain self-attention. ``masked`` restricts it to
foreground/background with the render's masks. The ControlNet keeps plain self-attention.

Owns the ``masactrl`` settings block.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from latentman.errors import ConfigError
from latentman.generation.methods.base import GenerationMethod, SettingsBlock


@dataclass(frozen=True)
class MasaCtrlSettings:
    start_step: int
    start_layer: int
    masked: bool

    @classmethod
    def from_config(cls, block: Mapping[str, Any]) -> MasaCtrlSettings:
        return cls(int(block["start_step"]), int(block["start_layer"]), bool(block["masked"]))

    def as_dict(self) -> dict:
        return asdict(self)


BLOCK = SettingsBlock(
    name="masactrl",
    schema={
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "start_step": {"type": "integer", "minimum": 0, "maximum": 999},
            "start_layer": {"type": "integer", "minimum": 0, "maximum": 16},
            "masked": {"type": "boolean"},
        },
    },
    parse=MasaCtrlSettings.from_config,
)


#: Spatial self-attention layers of SD1.5's UNet: ``masactrl.start_layer`` counts these.
SD15_LAYERS = 16


def scaled_start_layer(start_layer: int, n_layers: int) -> int:
    """MasaCtrl's start layer counts SD1.5's 16 self-attention layers; scale it for other UNets."""
    return int(round(start_layer * n_layers / SD15_LAYERS))


def self_attention_layers(unet_config: Mapping[str, Any]) -> int:
    """The spatial self-attention layers of a diffusers UNet2DConditionModel config (16 for SD1.5): one per
    transformer layer of the cross-attention down blocks, the mid block and the up blocks."""
    per_block = unet_config.get("layers_per_block", 2)
    transformers = unet_config.get("transformer_layers_per_block", 1)
    down = unet_config.get("down_block_types", ())
    up = unet_config.get("up_block_types", ())

    def each(value, count):
        return list(value) if isinstance(value, (list, tuple)) else [value] * count

    per_block_down = each(per_block, len(down))
    per_block_up = list(reversed(per_block_down)) if not isinstance(per_block, int) else [per_block] * len(up)
    layers_down = each(transformers, len(down))
    layers_up = list(reversed(layers_down))
    total = sum(n * t for kind, n, t in zip(down, per_block_down, layers_down) if "CrossAttn" in kind)
    total += sum((n + 1) * t for kind, n, t in zip(up, per_block_up, layers_up) if "CrossAttn" in kind)
    if "CrossAttn" in str(unet_config.get("mid_block_type", "UNetMidBlock2DCrossAttn")):
        total += layers_down[-1] if layers_down else 1
    return total


def check_start_layer(start_layer: int, n_layers: int, model: str, where: str) -> None:
    """ConfigError when ``start_layer`` leaves no layer of a UNet with ``n_layers`` to MasaCtrl."""
    if scaled_start_layer(start_layer, n_layers) >= n_layers:
        raise ConfigError(
            f"{where}.masactrl.start_layer = {start_layer} has no effect: it is layer "
            f"{scaled_start_layer(start_layer, n_layers)} of the {n_layers} self-attention layers of {model} "
            "(0-based), so no layer gets mutual self-attention; use a smaller start_layer or method t2v_zero"
        )


class MasaCtrl(GenerationMethod):
    def check(self, settings: Mapping[str, Any], where: str) -> None:
        # MasaCtrl has its own attention (mutual self-attention) and no latent motion: say so, do not ignore
        if settings["attention"] != "first":
            raise ConfigError(
                f"{where}.attention = {settings['attention']!r} has no effect with method masactrl (mutual "
                "self-attention to the first frame from masactrl.start_step); leave attention at 'first' "
                "or use method t2v_zero"
            )
        if settings["t2v_zero"]["motion_dynamics"]:
            raise ConfigError(
                f"{where}.t2v_zero.motion_dynamics = true has no effect with method masactrl; switch it off "
                "or use method t2v_zero"
            )
        check_start_layer(settings["masactrl"]["start_layer"], SD15_LAYERS, "SD1.5's UNet", where)
        steps, start = settings["num_inference_steps"], settings["masactrl"]["start_step"]
        if start >= steps:
            raise ConfigError(
                f"{where}.masactrl.start_step = {start} is outside the schedule (0..{steps - 1})"
            )

    def check_models(self, settings: Mapping[str, Any], models: Mapping[str, Any], where: str) -> None:
        if models.get("unet_config") is not None:
            layers = self_attention_layers(models["unet_config"])
            check_start_layer(settings["masactrl"]["start_layer"], layers, models["unet_name"], where)

    def self_attention_processor(self, model: str, layer: int, n_layers: int, context, settings):
        from latentman.generation import attention

        if model != "unet":
            return attention.plain_processor()  # MasaCtrl controls the UNet only
        masa = settings.masactrl
        start = scaled_start_layer(masa.start_layer, n_layers)
        return attention.MutualSelfAttnProcessor(context, layer, masa.start_step, start, masa.masked)

    def motion_dynamics(self, settings) -> bool:
        return False


METHOD = MasaCtrl(
    name="masactrl",
    label="MasaCtrl",
    colourmap="Oranges",
    blocks=("masactrl",),
    owned_blocks=(BLOCK,),
)
