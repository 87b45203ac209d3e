"""The generation settings of one variant as a typed object, built once from the validated config, and the
DDIM scheduler they ask for.

The config schema (schemas/config.schema.yaml with each method's block, latentman.generation.methods) and
:func:`latentman.config.check_variant_settings` check every value when the workflow starts; this object
only gives the resolved variant a shape, so the pipeline, the attention processors and the PWG study read
``settings.pwg.delta`` instead of re-checking dictionary keys. The method-owned blocks (``t2v_zero``,
``masactrl``, ``animatediff``, ...) are typed by the module of the method that declares them and read as
attributes: ``settings.masactrl.start_step``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from latentman.generation.methods import OFFICIAL_SCHEDULER, get_method, settings_blocks


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
    #: the method-owned blocks by name (typed by their method's module), in registry order
    blocks: Mapping[str, Any]

    def __getattr__(self, name: str) -> Any:
        # settings.masactrl, settings.animatediff, ...: the blocks read like fields
        blocks = self.__dict__.get("blocks")
        if blocks is not None and name in blocks:
            return blocks[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @classmethod
    def from_config(cls, settings: Mapping[str, Any]) -> GenerationSettings:
        """From a resolved variant (:func:`latentman.config.resolve_variant`) of a validated config."""
        if isinstance(settings, GenerationSettings):
            return settings
        sla, pwg = settings["sla"], settings["pwg"]
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
            blocks={name: block.parse(settings[name]) for name, block in settings_blocks().items()},
        )

    @property
    def needs_correspondence(self) -> bool:
        return self.sla.enabled or self.pwg.enabled

    @property
    def method_spec(self):
        """This variant's :class:`~latentman.generation.methods.GenerationMethod` (hooks of the loop)."""
        return get_method(self.method)

    @property
    def motion_dynamics(self) -> bool:
        return self.method_spec.motion_dynamics(self)

    @property
    def scheduler(self) -> dict:
        """The resolved DDIM settings of this variant's backbone (recorded in frames.h5)."""
        return self.method_spec.scheduler(self)

    def with_pwg(self, **changes) -> GenerationSettings:
        return replace(self, pwg=replace(self.pwg, **changes))

    def as_dict(self) -> dict:
        """The config's spelling (frames.h5 ``settings``, eval JSON): the keys of generation.defaults."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "blocks"}
        for key in ("sla", "pwg"):
            out[key] = asdict(out[key]) | {"steps": list(out[key].steps)}
        return out | {name: block.as_dict() for name, block in self.blocks.items()}


def make_scheduler(settings: GenerationSettings | None = None):
    """DDIM as the official code (README "Generation"): scaled_linear 0.00085–0.012, no clipping, offset 0,
    leading; or the variant's backbone schedule (``settings.scheduler``: AnimateDiff's differs)."""
    from diffusers import DDIMScheduler

    return DDIMScheduler(**(OFFICIAL_SCHEDULER if settings is None else settings.scheduler))
