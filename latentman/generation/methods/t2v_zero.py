"""Text2Video-Zero (the paper's first backbone): ControlNet depth, cross-frame attention to the first frame
of the chunk, one shared x_T; optionally its condition-free motion dynamics (latent translation).

Owns the ``t2v_zero`` settings block (motion dynamics), which every method on this loop reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from latentman.errors import ConfigError
from latentman.generation.methods.base import GenerationMethod, SettingsBlock


@dataclass(frozen=True)
class T2VZeroSettings:
    motion_dynamics: bool
    delta_t: int
    lambda_: float  # config key "lambda"

    @classmethod
    def from_config(cls, block: Mapping[str, Any]) -> T2VZeroSettings:
        return cls(bool(block["motion_dynamics"]), int(block["delta_t"]), float(block["lambda"]))

    def as_dict(self) -> dict:
        return {"motion_dynamics": self.motion_dynamics, "delta_t": self.delta_t, "lambda": self.lambda_}


BLOCK = SettingsBlock(
    name="t2v_zero",
    schema={
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "motion_dynamics": {"type": "boolean"},
            "delta_t": {"type": "integer", "minimum": 0, "maximum": 999},
            "lambda": {"type": "number", "minimum": -512, "maximum": 512},
        },
    },
    parse=T2VZeroSettings.from_config,
)


class TextToVideoZero(GenerationMethod):
    """The base loop (:class:`GenerationMethod`'s defaults) and the checks of its motion dynamics."""

    def check(self, settings: Mapping[str, Any], where: str) -> None:
        dynamics, steps = settings["t2v_zero"], settings["num_inference_steps"]
        if dynamics["motion_dynamics"] and settings["initial_noise"] == "per_frame":
            raise ConfigError(
                f"{where}.initial_noise = 'per_frame' has no effect with t2v_zero.motion_dynamics = true "
                "(every frame's x_T is derived from the first frame's); switch one of them off"
            )
        if dynamics["motion_dynamics"] and dynamics["delta_t"] >= steps:
            raise ConfigError(
                f"{where}.t2v_zero.delta_t = {dynamics['delta_t']} is outside the schedule: motion dynamics "
                f"denoises delta_t of the {steps} steps (allowed 0..{steps - 1})"
            )


METHOD = TextToVideoZero(
    name="t2v_zero",
    label="Text2Video-Zero",
    colourmap="Blues",
    blocks=("t2v_zero",),
    owned_blocks=(BLOCK,),
)
