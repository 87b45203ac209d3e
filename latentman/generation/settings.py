"""The generation settings of one variant as a typed object, built once from the validated config.

The config schema (schemas/config.schema.yaml, ``generation_settings``) and
:func:`latentman.config.check_variant_settings` check every value when the workflow starts; this object
only gives the resolved variant a shape, so the pipeline, the attention processors and the PWG study read
``settings.pwg.delta`` instead of re-checking dictionary keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from latentman.errors import ConfigError


@dataclass(frozen=True)
class StepWindow:
    """A module switched on for the denoising step indices ``steps = (first, last)``, inclusive."""

    enabled: bool
    steps: tuple[int, int]

    def active(self, step: int) -> bool:
        return self.enabled and self.steps[0] <= step <= self.steps[1]


@dataclass(frozen=True)
class PwgSettings(StepWindow):
    delta: float = 0.01
    gradient: str = "unet"


@dataclass(frozen=True)
class T2VZeroSettings:
    motion_dynamics: bool
    delta_t: int
    lambda_: float  # config key "lambda"


@dataclass(frozen=True)
class MasaCtrlSettings:
    start_step: int
    start_layer: int
    masked: bool


#: ``animatediff.temporal_attention``: AnimateDiff's own, or AnimateZero's positional-corrected windows.
TEMPORAL_ATTENTION = ("global", "positional_corrected")
#: ``animatediff.motion_norm``: the motion modules' GroupNorm statistics per frame (AnimateDiff's own code,
#: which trained the released adapters) or over all frames of the video (diffusers' UNetMotionModel).
MOTION_NORM = ("per_frame", "per_video")


@dataclass(frozen=True)
class AnimateDiffSettings:
    """Motion-module windows (FreeNoise-style), the backbone's DDIM schedule (AnimateDiff model cards) and
    AnimateZero's controls (:mod:`latentman.generation.animatezero`)."""

    context_length: int
    context_stride: int
    beta_schedule: str
    timestep_spacing: str
    steps_offset: int
    # AnimateZero: frame 0 follows a separate text-to-image run of frame 0 (off: AnimateDiff)
    first_frame_insertion: bool = False
    # global (AnimateDiff's temporal attention) or positional_corrected (AnimateZero's causal windows)
    temporal_attention: str = "global"
    motion_norm: str = "per_frame"

    def __post_init__(self):
        # the schema checks configs at workflow start; this also covers settings built by hand
        if self.motion_norm not in MOTION_NORM:
            raise ConfigError(
                f"animatediff.motion_norm = {self.motion_norm!r}: expected {' or '.join(MOTION_NORM)}"
            )
        if self.temporal_attention not in TEMPORAL_ATTENTION:
            raise ConfigError(
                f"animatediff.temporal_attention = {self.temporal_attention!r}: expected "
                f"{' or '.join(TEMPORAL_ATTENTION)}"
            )
        if not isinstance(self.first_frame_insertion, bool):
            raise ConfigError(
                f"animatediff.first_frame_insertion = {self.first_frame_insertion!r}: expected true or false"
            )


#: DDIM of the official LatentMan code (DESIGN §6), used by every backbone but animatediff.
OFFICIAL_SCHEDULER = dict(
    num_train_timesteps=1000,
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    clip_sample=False,
    set_alpha_to_one=False,
    steps_offset=0,
    timestep_spacing="leading",
    prediction_type="epsilon",
)


@dataclass(frozen=True)
class GenerationSettings:
    name: str
    method: str
    seed: int | None
    num_inference_steps: int
    guidance_scale: float
    controlnet_scale: float
    prompt_suffix: str
    negative_prompt: str
    attention: str
    initial_noise: str
    reference: str
    sla: StepWindow
    pwg: PwgSettings
    chunk_size: int
    dtype: str
    t2v_zero: T2VZeroSettings
    masactrl: MasaCtrlSettings
    animatediff: AnimateDiffSettings

    @classmethod
    def from_config(cls, settings: Mapping[str, Any]) -> GenerationSettings:
        """From a resolved variant (:func:`latentman.config.resolve_variant`) of a validated config."""
        if isinstance(settings, GenerationSettings):
            return settings
        sla, pwg, t2v, masa = (settings[key] for key in ("sla", "pwg", "t2v_zero", "masactrl"))
        return cls(
            name=str(settings.get("name", "")),
            method=settings["method"],
            seed=settings["seed"],
            num_inference_steps=int(settings["num_inference_steps"]),
            guidance_scale=float(settings["guidance_scale"]),
            controlnet_scale=float(settings["controlnet_scale"]),
            prompt_suffix=settings["prompt_suffix"] or "",
            negative_prompt=settings["negative_prompt"] or "",
            attention=settings["attention"],
            initial_noise=settings["initial_noise"],
            reference=settings["reference"],
            sla=StepWindow(bool(sla["enabled"]), tuple(sla["steps"])),
            pwg=PwgSettings(bool(pwg["enabled"]), tuple(pwg["steps"]), float(pwg["delta"]), pwg["gradient"]),
            chunk_size=int(settings["chunk_size"]),
            dtype=settings["dtype"],
            t2v_zero=T2VZeroSettings(bool(t2v["motion_dynamics"]), int(t2v["delta_t"]), float(t2v["lambda"])),
            masactrl=MasaCtrlSettings(
                int(masa["start_step"]), int(masa["start_layer"]), bool(masa["masked"])
            ),
            animatediff=AnimateDiffSettings(**settings["animatediff"]),
        )

    @property
    def needs_correspondence(self) -> bool:
        return self.sla.enabled or self.pwg.enabled

    @property
    def motion_dynamics(self) -> bool:
        return self.method != "masactrl" and self.t2v_zero.motion_dynamics

    @property
    def scheduler(self) -> dict:
        """The resolved DDIM settings of this variant's backbone (recorded in frames.h5)."""
        if self.method != "animatediff":
            return dict(OFFICIAL_SCHEDULER)
        ad = self.animatediff
        return OFFICIAL_SCHEDULER | dict(
            beta_schedule=ad.beta_schedule, timestep_spacing=ad.timestep_spacing, steps_offset=ad.steps_offset
        )

    def with_pwg(self, **changes) -> GenerationSettings:
        return replace(self, pwg=replace(self.pwg, **changes))

    def as_dict(self) -> dict:
        """The config's spelling (frames.h5 ``settings``, eval JSON): the keys of generation.defaults."""
        out = asdict(self)
        for key in ("sla", "pwg"):
            out[key]["steps"] = list(out[key]["steps"])
        out["t2v_zero"]["lambda"] = out["t2v_zero"].pop("lambda_")
        return out
