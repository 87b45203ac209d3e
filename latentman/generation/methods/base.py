"""What a generation method is: the one interface the config, the workflow, the pipeline and the tables ask.

A method (a backbone, or a named preset of one) declares, in its own module of this package:

- ``name``, ``label`` (tables and plots) and ``colourmap`` (matplotlib: its rows in the plots take its
  shades);
- ``blocks``: the settings blocks of ``generation.defaults`` it reads, and ``owned_blocks``: the blocks its
  module declares (schema fragment and typed settings, :class:`SettingsBlock`);
- ``check(settings, where)`` and ``check_variant(config, overrides, where)``: what the schema cannot say;
- ``model_keys``: the ``models:`` keys its generation jobs read (their Snakemake params);
- pipeline hooks: ``prepare_unet``, ``self_attention_processor``, ``motion_dynamics``,
  ``first_frame_trajectory``, ``batch_size``, ``scheduler``, ``extend_models``.

Nothing outside :mod:`latentman.generation.methods` compares method names. The defaults below are the
Text2Video-Zero loop's (official DDIM, chunks of ``chunk_size``, the plain 2-D UNet). Heavy imports
(torch, diffusers) stay inside the hooks, so the config check at workflow start stays light.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from latentman.errors import LatentmanError

#: DDIM of the official LatentMan code (README "Generation"): the schedule of every method that does not
#: declare its own (AnimateDiff's differs).
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

#: The model keys every method's generation reads.
IMAGE_MODEL_KEYS = ("stable_diffusion", "controlnet_depth")


@dataclass(frozen=True)
class SettingsBlock:
    """A settings block of ``generation.defaults`` declared by one method's module.

    ``schema``: its JSON-schema fragment (``generation_settings.properties.<name>`` of the config schema);
    ``parse``: the resolved block (a mapping of the config) -> its typed, frozen settings object, which has
    ``as_dict()`` giving the config's spelling back.
    """

    name: str
    schema: Mapping[str, Any]
    parse: Callable[[Mapping[str, Any]], Any]


@dataclass(frozen=True)
class GenerationMethod:
    """A generation method: the Text2Video-Zero loop unless a hook says otherwise (subclasses override)."""

    name: str
    label: str
    colourmap: str
    blocks: tuple[str, ...] = ()
    owned_blocks: tuple[SettingsBlock, ...] = ()
    model_keys: tuple[str, ...] = IMAGE_MODEL_KEYS
    #: A preset's overrides of module switches ({"sla": {"enabled": True}}) applied by
    #: :func:`latentman.config.resolve_variant` unless the variant sets them itself.
    preset: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: The method whose loop a preset runs (itself for a backbone): equal settings give equal videos.
    backbone: str = ""

    def __post_init__(self):
        if not self.backbone:
            object.__setattr__(self, "backbone", self.name)

    # ------------------------------------------------------------------ configuration
    def check(self, settings: Mapping[str, Any], where: str) -> None:
        """Checks of a resolved variant's settings the schema cannot express (ConfigError, one line)."""

    def check_variant(self, config: Mapping[str, Any], overrides: Mapping[str, Any], where: str) -> None:
        """Checks that need the whole config or the variant's own overrides (ConfigError, one line)."""

    def check_models(self, settings: Mapping[str, Any], models: Mapping[str, Any], where: str) -> None:
        """Checks of a resolved variant against what is known of the models at start without loading them
        (``models``: ``unet_config``, ``unet_name``, ``adapter_frames``; a value is None when unknown), so a
        generation job never refuses a value only after deleting its previous output (ConfigError)."""

    # ------------------------------------------------------------------ generation hooks
    def extend_models(self, models, models_config: Mapping[str, Any], models_dir) -> None:
        """Add what this method needs to the loaded models (AnimateDiff: the motion UNet)."""

    def prepare_unet(self, unet, settings) -> None:
        """Check that ``unet`` fits this method and configure it for ``settings`` before the loop."""
        if getattr(unet, "is_motion_unet", False):
            raise LatentmanError(
                f"method {self.name} was given the AnimateDiff motion UNet; it runs the plain UNet"
            )

    def self_attention_processor(self, model: str, layer: int, n_layers: int, context, settings):
        """The processor of spatial self-attention layer ``layer`` (of ``n_layers``, encoder -> decoder) of
        ``model`` ("unet" or "controlnet"). Default: cross-frame attention, or plain per-frame attention
        with ``attention: none`` (the frame-independent baseline)."""
        from latentman.generation import attention

        if settings.attention == "none":
            return attention.plain_processor()
        return attention.CrossFrameAttnProcessor(context, settings.attention)

    def motion_dynamics(self, settings) -> bool:
        """Text2Video-Zero's latent translation before the loop (``t2v_zero.motion_dynamics``)."""
        return settings.t2v_zero.motion_dynamics

    def first_frame_trajectory(self, pipe, x_t, text, control, settings, timesteps):
        """Latents that replace frame 0 after every step (AnimateZero's first-frame insertion), or None."""
        return None

    def batch_size(self, settings, frames: int) -> int:
        """Frames denoised in one UNet call: ``chunk_size`` (chunks share the anchor frame)."""
        return settings.chunk_size

    def scheduler(self, settings) -> dict:
        """The DDIM settings of this method's backbone (recorded in frames.h5)."""
        return dict(OFFICIAL_SCHEDULER)
