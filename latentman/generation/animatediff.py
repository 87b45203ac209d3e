"""The AnimateDiff backbone (``method: animatediff``): the project's denoising loop with a motion UNet.

``UNetMotionModel.from_unet2d(unet, adapter)`` adds AnimateDiff's motion modules (temporal self-attention
over the frames at every resolution) to the configured SD1.5 UNet. :class:`MotionUNet` puts it behind the
2-D UNet's call, so the pipeline, the ControlNet residuals, the cross-frame attention processors, SLA and
PWG are the same code as for the other backbones:

* the pipeline's batch ``(2·F, 4, g, g)`` = ``[uncond frames ; cond frames]`` becomes the motion UNet's
  ``(2, 4, F, g, g)``; inside it, the frames are flattened back in that same order, so the ControlNet's
  ``(2·F, …)`` residuals and the processors' CFG halves line up unchanged;
* the whole video goes through one UNet call per step (the motion modules need every frame);
* motion modules carry a fixed number of position encodings (32 in the v1-5-2 adapter, trained on
  16-frame clips). Videos longer than ``animatediff.context_length`` frames run each motion transformer
  block on overlapping windows of that many frames, ``context_stride`` apart (the last window ends at the
  last frame), blended with FreeNoise's pyramid weights (FreeNoise: Qiu et al. 2023; diffusers'
  ``FreeNoiseTransformerBlock``, which runs the feed-forward once after blending, and raises an
  IndexError for videos shorter than the window). Here the whole block runs per window (position
  encodings restart at 0 in each) and shorter videos take one window: plain AnimateDiff.
* ``animatediff.temporal_attention: positional_corrected`` replaces those windows by AnimateZero's causal,
  positional-corrected windows (:mod:`latentman.generation.animatezero`); first-frame insertion is there too.
"""

from __future__ import annotations

import torch

from latentman.errors import ConfigError, LatentmanError
from latentman.generation import animatezero

#: The pipeline always runs classifier-free guidance: its UNet batch holds two halves.
CFG_HALVES = 2


def window_starts(frames: int, length: int, stride: int) -> list[int]:
    """First frame of every window: every ``stride`` frames, plus a last window ending at the last frame."""
    if frames <= length:
        return [0]
    starts = list(range(0, frames - length + 1, stride))
    if starts[-1] + length < frames:
        starts.append(frames - length)
    return starts


def pyramid_weights(length: int) -> torch.Tensor:
    """FreeNoise's window weights: 1, 2, …, peak, …, 2, 1 (frames near a window's centre count most)."""
    half = torch.arange(1, (length + 1) // 2 + 1, dtype=torch.float32)
    tail = half.flip(0)[1:] if length % 2 else half.flip(0)
    return torch.cat([half, tail])


class WindowedMotionBlock(torch.nn.Module):
    """A motion module's transformer block over windows of ``context_length`` frames.

    Input and output ``(B·h·w, F, C)``: one token sequence over the frames per spatial position.
    """

    def __init__(self, block: torch.nn.Module, context_length: int = 16, context_stride: int = 4):
        super().__init__()
        self.block = block
        self.context_length = context_length
        self.context_stride = context_stride
        # global: AnimateDiff's attention (windows above); positional_corrected: AnimateZero's causal windows
        self.temporal_attention = "global"

    def forward(self, hidden_states: torch.Tensor, **kwargs) -> torch.Tensor:
        if self.temporal_attention == "positional_corrected":
            return animatezero.positional_corrected_forward(
                self.block, hidden_states, self.context_length, **kwargs
            )
        frames = hidden_states.shape[1]
        length = self.context_length
        if frames <= length:
            return self.block(hidden_states, **kwargs)
        weights = pyramid_weights(length).to(hidden_states)[None, :, None]
        total = torch.zeros_like(hidden_states)
        count = torch.zeros((1, frames, 1), dtype=hidden_states.dtype, device=hidden_states.device)
        for start in window_starts(frames, length, self.context_stride):
            window = self.block(hidden_states[:, start : start + length], **kwargs)
            total[:, start : start + length] += window * weights
            count[:, start : start + length] += weights
        return total / count


class FrameGroupNorm(torch.nn.Module):
    """A motion module's input GroupNorm with its statistics per frame or over the whole video.

    diffusers' ``AnimateDiffTransformer3D`` calls its norm on ``(B, C, F, h, w)``, so the statistics span
    all F frames; AnimateDiff's own ``TemporalTransformer3DModel`` (the code that trained the released
    adapters) normalises ``(B·F, C, h, w)``: each frame alone. ``per_frame`` restores the latter, so a frame's
    features no longer depend on the other frames before the temporal attention (and AnimateZero's causal
    windows are causal through the whole module). Same weights either way.
    """

    def __init__(self, norm: torch.nn.GroupNorm):
        super().__init__()
        self.norm = norm
        self.mode = "per_frame"

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        if self.mode == "per_video" or hidden_states.dim() != 5:
            return self.norm(hidden_states)
        batch, channels, frames, height, width = hidden_states.shape
        per_frame = hidden_states.transpose(1, 2).reshape(batch * frames, channels, height, width)
        normed = self.norm(per_frame).reshape(batch, frames, channels, height, width)
        return normed.transpose(1, 2)


class MotionUNet(torch.nn.Module):
    """A ``UNetMotionModel`` called like a 2-D UNet on ``(2·F, 4, g, g)`` (see the module docstring)."""

    #: the methods' prepare_unet hooks tell it from the plain UNet2DConditionModel
    is_motion_unet = True

    def __init__(self, motion, adapter_id: str = ""):
        super().__init__()
        self.motion = motion
        self.adapter_id = adapter_id
        self.blocks: list[WindowedMotionBlock] = []
        self.norms: list[FrameGroupNorm] = []
        holders = [
            m for m in motion.modules() if isinstance(getattr(m, "motion_modules", None), torch.nn.ModuleList)
        ]
        for holder in holders:
            for motion_module in holder.motion_modules:
                wrapped = [WindowedMotionBlock(b) for b in motion_module.transformer_blocks]
                motion_module.transformer_blocks = torch.nn.ModuleList(wrapped)
                self.blocks += wrapped
                motion_module.norm = FrameGroupNorm(motion_module.norm)
                self.norms.append(motion_module.norm)

    @property
    def config(self):
        return self.motion.config

    @property
    def dtype(self):
        return self.motion.dtype

    @property
    def max_frames(self) -> int:
        """Position encodings of the motion modules: the longest window they can take."""
        return int(self.motion.config.motion_max_seq_length)

    @property
    def attn_processors(self):
        return self.motion.attn_processors

    def set_attn_processor(self, processors) -> None:
        self.motion.set_attn_processor(processors)

    def enable_gradient_checkpointing(self) -> None:
        self.motion.enable_gradient_checkpointing()

    def disable_gradient_checkpointing(self) -> None:
        self.motion.disable_gradient_checkpointing()

    def set_windows(
        self,
        context_length: int,
        context_stride: int,
        temporal_attention: str = "global",
        motion_norm: str = "per_frame",
    ) -> None:
        for block in self.blocks:
            block.context_length, block.context_stride = context_length, context_stride
            block.temporal_attention = temporal_attention
        for norm in self.norms:
            norm.mode = motion_norm

    def forward(self, sample, timestep, encoder_hidden_states, **kwargs):
        from diffusers.models.unets.unet_2d_condition import UNet2DConditionOutput

        batch = sample.shape[0]
        if batch % CFG_HALVES:
            raise LatentmanError(f"animatediff: UNet batch {batch} is not {CFG_HALVES} CFG halves of frames")
        frames = batch // CFG_HALVES
        video = sample.view(CFG_HALVES, frames, *sample.shape[1:]).permute(0, 2, 1, 3, 4)
        out = self.motion(video, timestep, encoder_hidden_states, return_dict=False, **kwargs)[0]
        return UNet2DConditionOutput(sample=out.permute(0, 2, 1, 3, 4).reshape(sample.shape))


def motion_unet(unet, adapter, adapter_id: str = "") -> MotionUNet:
    """The motion UNet of ``unet`` (a UNet2DConditionModel) and ``adapter`` (a checked MotionAdapter)."""
    from diffusers import UNetMotionModel
    from diffusers.utils import logging as diffusers_logging

    # from_unet2d casts to the UNet's dtype and warns that no module needs float32: noise in every job log
    level = diffusers_logging.get_verbosity()
    diffusers_logging.set_verbosity_error()
    try:
        motion = UNetMotionModel.from_unet2d(unet, adapter)
    finally:
        diffusers_logging.set_verbosity(level)
    return MotionUNet(motion.eval(), adapter_id)


def set_motion_windows(unet, ad) -> None:
    """Check that ``unet`` is a motion UNet whose adapter can take ``ad.context_length`` frames and set
    its windows, temporal attention and norm from ``ad`` (the variant's ``animatediff`` settings)."""
    if not getattr(unet, "is_motion_unet", False):
        raise ConfigError(
            "method animatediff needs the motion UNet: generate_video builds it from models.motion_adapter "
            "(latentman.generation.animatediff.motion_unet for a pipeline built by hand)"
        )
    if ad.context_length > unet.max_frames:
        raise ConfigError(
            f"animatediff.context_length = {ad.context_length} is longer than the motion adapter's "
            f"{unet.max_frames} position encodings (models.motion_adapter = {unet.adapter_id!r}); "
            f"use at most {unet.max_frames} (AnimateDiff v1-5-2 was trained on 16-frame clips)"
        )
    unet.set_windows(ad.context_length, ad.context_stride, ad.temporal_attention, ad.motion_norm)
