"""AnimateDiff (a video backbone beyond the paper): Text2Video-Zero's loop with the motion modules of
``models.motion_adapter`` in the UNet, cross-frame attention on the spatial self-attention only, the whole
video in one UNet call (motion windows of ``context_length`` beyond that), its own DDIM schedule; and
AnimateZero's two controls (first-frame insertion, positional-corrected temporal attention).

The motion UNet is :mod:`latentman.generation.animatediff`, the controls
:mod:`latentman.generation.animatezero`.
Owns the ``animatediff`` settings block.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from latentman.errors import ConfigError
from latentman.generation.methods.base import IMAGE_MODEL_KEYS, OFFICIAL_SCHEDULER, SettingsBlock
from latentman.generation.methods.t2v_zero import TextToVideoZero

#: ``animatediff.temporal_attention``: AnimateDiff's own, or AnimateZero's positional-corrected windows.
TEMPORAL_ATTENTION = ("global", "positional_corrected")
#: ``animatediff.motion_norm``: the motion modules' GroupNorm statistics per frame (AnimateDiff's own code,
#: which trained the released adapters) or over all frames of the video (diffusers' UNetMotionModel).
MOTION_NORM = ("per_frame", "per_video")
#: The models key of the motion adapter (latentman.models.motion_adapter.KEY).
ADAPTER_KEY = "motion_adapter"


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

    @classmethod
    def from_config(cls, block: Mapping[str, Any]) -> AnimateDiffSettings:
        return cls(**block)

    def as_dict(self) -> dict:
        return asdict(self)


BLOCK = SettingsBlock(
    name="animatediff",
    schema={
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "context_length": {"type": "integer", "minimum": 1, "maximum": 512},
            "context_stride": {"type": "integer", "minimum": 1, "maximum": 512},
            "beta_schedule": {"type": "string", "enum": ["linear", "scaled_linear"]},
            "timestep_spacing": {"type": "string", "enum": ["linspace", "leading", "trailing"]},
            "steps_offset": {"type": "integer", "minimum": 0, "maximum": 999},
            "first_frame_insertion": {"type": "boolean"},
            "temporal_attention": {"type": "string", "enum": list(TEMPORAL_ATTENTION)},
            "motion_norm": {"type": "string", "enum": list(MOTION_NORM)},
        },
    },
    parse=AnimateDiffSettings.from_config,
)


class AnimateDiff(TextToVideoZero):
    def check(self, settings: Mapping[str, Any], where: str) -> None:
        super().check(settings, where)  # the t2v_zero block's motion dynamics run on this loop too
        windows = settings["animatediff"]
        if windows["context_stride"] > windows["context_length"]:
            raise ConfigError(
                f"{where}.animatediff.context_stride = {windows['context_stride']} is longer than "
                f"context_length = {windows['context_length']}: frames between the motion windows would be "
                "left out"
            )

    def check_variant(self, config: Mapping[str, Any], overrides: Mapping[str, Any], where: str) -> None:
        """An AnimateDiff variant needs an adapter, and denoises the whole video at once (no chunks)."""
        if not config["models"].get(ADAPTER_KEY):
            raise ConfigError(
                f"{where}: method animatediff needs models.{ADAPTER_KEY} (null now): a diffusers "
                "MotionAdapter folder (guoyww/animatediff-motion-adapter-v1-5-2 for SD1.5), or embedded:tiny "
                "with the tiny models"
            )
        if "chunk_size" in overrides:
            raise ConfigError(
                f"{where}.chunk_size = {overrides['chunk_size']} has no effect with method animatediff: its "
                "motion modules attend across all frames, so the whole video is denoised in one batch (long "
                "videos use animatediff.context_length windows); remove chunk_size from this variant"
            )

    def check_models(self, settings: Mapping[str, Any], models: Mapping[str, Any], where: str) -> None:
        """context_length within the adapter's position encodings (the job would refuse it)."""
        frames, length = models.get("adapter_frames"), settings["animatediff"]["context_length"]
        if frames is not None and length > frames:
            raise ConfigError(
                f"{where}.animatediff.context_length = {length} is longer than the motion adapter's {frames} "
                f"position encodings (models.{ADAPTER_KEY} = {models.get('adapter')!r}); use at most {frames}"
            )

    def extend_models(self, models, models_config: Mapping[str, Any], models_dir) -> None:
        """Replace ``models.unet`` by the motion UNet of ``models.motion_adapter``; the adapter's id, hash
        and note join the models' record."""
        from latentman.generation.animatediff import motion_unet
        from latentman.models.motion_adapter import load_motion_adapter

        value = models_config.get(ADAPTER_KEY)
        adapter, adapter_id, adapter_hash, note = load_motion_adapter(value, models_dir, models.unet.config)
        models.unet = motion_unet(models.unet, adapter, adapter_id)
        models.ids[ADAPTER_KEY], models.hashes[ADAPTER_KEY] = adapter_id, adapter_hash
        if note:
            models.note = f"{models.note}; {note}" if models.note else note

    def prepare_unet(self, unet, settings) -> None:
        from latentman.generation.animatediff import set_motion_windows

        set_motion_windows(unet, settings.animatediff)

    def first_frame_trajectory(self, pipe, x_t, text, control, settings, timesteps):
        from latentman.generation.animatezero import first_frame_trajectory

        return first_frame_trajectory(pipe, x_t, text, control, settings, timesteps)

    def batch_size(self, settings, frames: int) -> int:
        return frames  # the motion modules attend across frames: the whole video in one UNet call

    def scheduler(self, settings) -> dict:
        ad = settings.animatediff
        return OFFICIAL_SCHEDULER | dict(
            beta_schedule=ad.beta_schedule, timestep_spacing=ad.timestep_spacing, steps_offset=ad.steps_offset
        )


METHOD = AnimateDiff(
    name="animatediff",
    label="AnimateDiff",
    colourmap="Greens",
    blocks=("t2v_zero", "animatediff"),
    owned_blocks=(BLOCK,),
    model_keys=(*IMAGE_MODEL_KEYS, ADAPTER_KEY),
)
