"""AnimateZero's two controls on the AnimateDiff backbone (Wang et al. 2023, arXiv 2312.03793).

Both are options of ``method: animatediff`` (``animatediff.first_frame_insertion``,
``animatediff.temporal_attention``), off by default. Where the paper leaves a detail open, the choice made
here is stated below and in the README.

**First-frame latent insertion** (spatial appearance control). Before the video loop, frame 0 is generated
on its own as a text-to-image run: the same prompt, seed (frame 0's x_T), ControlNet condition of frame 0,
guidance scale and scheduler, through the same UNet with its motion modules switched off (the SD 1.5 UNet
the adapter was put on; with one frame, cross-frame attention is plain self-attention). Its latents x_T,
x_{t_1}, …, x_0 are kept (:func:`first_frame_trajectory`). In the video loop frame 0's latent is replaced by
that trajectory after every denoising step — after the DDIM update and PWG's correction — so every UNet and
ControlNet call, SLA (which copies from frame 0) and PWG's references see the text-to-image frame, and the
last replacement makes frame 0 of the output the text-to-image image exactly. The video's own prediction for
frame 0 is discarded at every step; frame 0 still goes through the motion modules so that the other frames
attend to it. Choices: the motion-free UNet is the "T2I model" (AnimateDiff's base); the insertion point is
after each step's update, which equals "before every UNet call" and also fixes the final latent.

**Positional-corrected window attention** (temporal consistency control). In every motion transformer
block, each temporal self-attention (diffusers' ``attn1`` and ``attn2``; both self-attention) is causal:
frame i attends to a window of W frames that ends at i — frames i−W+1 … i, padded at the front with frame 0
when i < W−1 — and the position encodings are those of a W-frame clip with frame i's query at the last
position W−1 (keys at 0 … W−1). diffusers adds the sinusoidal position encodings to the normed tokens inside
``BasicTransformerBlock.forward``, before the attention processor, so a processor cannot move them: the
block's forward is replaced (:func:`positional_corrected_forward`), the same weights and layer order. Choices:
W = min(frames, ``animatediff.context_length``). A video no longer than the window (AnimateZero's 16-frame
case) gets W = its length, so its last frame attends exactly as in plain AnimateDiff; a longer one slides a
causal window of ``context_length`` frames (the FreeNoise windows of ``temporal_attention: global`` are not
used; ``context_stride`` is ignored), so frames beyond the first window see the previous ``context_length``−1
frames, not frame 0, and every query still sees the position encodings of a ``context_length``-frame clip
(16 by default: the adapter's training clips).

Causality holds through the whole motion module with ``animatediff.motion_norm: per_frame`` (the default:
AnimateDiff's own code normalises each frame before the blocks). With ``per_video`` (diffusers'
``AnimateDiffTransformer3D``, which group-normalises over all frames) later frames still shift an earlier
frame's output through the norm's statistics.
"""

from __future__ import annotations

import math
from contextlib import contextmanager

import torch

from latentman.errors import LatentmanError

#: Elements of one chunk of attention scores (positions × heads × query frames × frames): bounds the
#: extra memory (about 0.5 GB in float32) whatever the resolution and frame count.
WINDOW_CHUNK_ELEMENTS = 2**27


# ------------------------------------------------------------------------------ positional-corrected windows
def causal_windows(frames: int, length: int) -> torch.Tensor:
    """(frames, W) frame index at each window slot, W = min(frames, length): frame i's window ends at i
    (slot W−1) and holds the W−1 frames before it, frame 0 repeated where there are fewer."""
    width = min(frames, length)
    query = torch.arange(frames)[:, None]
    slot = torch.arange(width)[None, :]
    return (query - (width - 1) + slot).clamp(min=0)


def _plain_attention(attn) -> bool:
    """No extras the window attention below leaves out (AnimateDiff's temporal attention has none)."""
    return (
        all(getattr(attn, name, None) is None for name in ("group_norm", "spatial_norm", "norm_q", "norm_k"))
        and not attn.norm_cross
        and not attn.residual_connection
        and attn.rescale_output_factor == 1.0
    )


def _check_block(block) -> None:
    """The replacement forward covers diffusers' motion-module block (layer norms, two self-attentions)."""
    if (
        getattr(block, "norm_type", None) != "layer_norm"
        or block.only_cross_attention
        or block.attn2 is None
        or not block.double_self_attention
        or getattr(block, "fuser", None) is not None
        or not (_plain_attention(block.attn1) and _plain_attention(block.attn2))
    ):
        raise LatentmanError(
            "animatediff.temporal_attention = positional_corrected: the motion adapter's transformer block "
            f"({type(block).__name__}, norm_type {getattr(block, 'norm_type', None)!r}) is not the "
            "AnimateDiff layout (layer norms, two plain temporal self-attentions); use "
            "temporal_attention: global"
        )


def _window_attention(attn, normed: torch.Tensor, encodings: torch.Tensor, windows: torch.Tensor):
    """Attention of every frame's query (at the last position) over its window; (N, F, C) -> (N, F, C).

    ``encodings``: (W, C) position encodings of one window; ``windows``: (F, W) frame indices. The window
    tokens are never built: to_k(x_j + P_s) = to_k(x_j) + (to_k(P_s) − to_k(0)) (a linear layer), so the
    score of slot s is q_i·k_j + q_i·kp_s, and the output Σ_s a_s (v_j + vp_s) sums the weights of the
    slots holding the same frame (frame 0's padding) into one weight per frame. Memory is that of
    (N, heads, F, F) scores, in chunks of query frames for long videos.
    """
    n, frames, _ = normed.shape
    heads = attn.heads

    def split(x):  # (..., L, heads·d) -> (..., heads, L, d)
        return x.unflatten(-1, (heads, -1)).transpose(-3, -2)

    zero = encodings.new_zeros(1, encodings.shape[-1])
    query = split(attn.to_q(normed + encodings[-1]))  # every query at the window's last position
    key, value = split(attn.to_k(normed)), split(attn.to_v(normed))  # (N, heads, F, d)
    key_shift = split(attn.to_k(encodings) - attn.to_k(zero))  # (heads, W, d)
    value_shift = split(attn.to_v(encodings) - attn.to_v(zero))
    scale = query.shape[-1] ** -0.5
    per_frame = max(1, WINDOW_CHUNK_ELEMENTS // max(1, n * heads * frames))
    out = []
    for start in range(0, frames, per_frame):
        rows = windows[start : start + per_frame]  # (count, W)
        q = query[:, :, start : start + rows.shape[0]]  # (N, heads, count, d)
        index = rows.expand(n, heads, -1, -1)
        scores = torch.gather(q @ key.transpose(-1, -2), -1, index) + q @ key_shift.transpose(-1, -2)
        weights = torch.softmax(scores.float() * scale, dim=-1).to(q.dtype)  # (N, heads, count, W)
        per_key = torch.zeros(q.shape[:-1] + (frames,), dtype=q.dtype, device=q.device)
        per_key.scatter_add_(-1, index, weights)  # padding slots of frame 0 add up
        out.append(per_key @ value + weights @ value_shift)
    hidden = torch.cat(out, dim=2).transpose(1, 2).flatten(-2)  # (N, F, heads·d)
    return attn.to_out[1](attn.to_out[0](hidden))


def positional_corrected_forward(block, hidden_states: torch.Tensor, context_length: int, **kwargs):
    """``BasicTransformerBlock.forward`` of a motion module with positional-corrected window attention.

    hidden_states: (B·h·w, F, C), one token sequence over the frames per spatial position. Same layers as
    diffusers' forward: x += attn1(norm1 x); x += attn2(norm2 x); x += ff(norm3 x), with the position
    encodings added after each norm as diffusers does, but per query window (module docstring).
    """
    _check_block(block)
    if kwargs.get("encoder_hidden_states") is not None:
        raise LatentmanError("positional-corrected motion attention is self-attention: got encoder states")
    frames = hidden_states.shape[1]
    windows = causal_windows(frames, context_length).to(hidden_states.device)
    width = windows.shape[1]
    if block.pos_embed is not None:
        available = block.pos_embed.pe.shape[1]
        if width > available:
            raise LatentmanError(
                f"positional-corrected window of {width} frames is longer than the adapter's {available} "
                "position encodings; lower animatediff.context_length"
            )
        encodings = block.pos_embed.pe[0, :width].to(hidden_states.dtype)
    else:
        encodings = hidden_states.new_zeros(width, hidden_states.shape[-1])
    x = hidden_states
    for norm, attn in ((block.norm1, block.attn1), (block.norm2, block.attn2)):
        x = x + _window_attention(attn, norm(x), encodings, windows)
    return x + block.ff(block.norm3(x))


# ------------------------------------------------------------------------------ first-frame insertion
def _identity(hidden_states, *args, **kwargs):
    return hidden_states


@contextmanager
def motion_modules_off(motion_unet):
    """Inside: every motion module of ``motion_unet`` (a MotionUNet) passes its input through, so the UNet
    is the SD UNet it was built from (the text-to-image model of first-frame insertion)."""
    from diffusers.models.unets.unet_motion_model import AnimateDiffTransformer3D

    modules = [m for m in motion_unet.motion.modules() if isinstance(m, AnimateDiffTransformer3D)]
    for module in modules:
        module.forward = _identity  # an instance attribute: shadows the class's forward until deleted
    try:
        yield
    finally:
        for module in modules:
            del module.forward


def first_frame_trajectory(pipe, x_t, text, control, settings, timesteps) -> torch.Tensor | None:
    """Frame 0's text-to-image latents (K+1, 4, g, g): x_T then the latent after each of the K steps.

    None unless ``animatediff.first_frame_insertion`` is on (called by the animatediff method's hook).
    ``pipe`` is the LatentmanPipeline (its scheduler already set to ``timesteps``), ``x_t`` the video's
    initial latents (frame 0's is the seed's shared draw), ``control`` the (F, 3, H, W) ControlNet inputs.
    The update is the pipeline's own (CFG, DDIM), so the run equals a one-frame video of the motion-free
    UNet.
    """
    if not settings.animatediff.first_frame_insertion:
        return None
    x = x_t[:1].clone()
    trajectory = [x]
    with motion_modules_off(pipe.unet):
        for k, t in enumerate(timesteps):
            pipe.context.step = k
            eps_hat, _, x0, _ = pipe.predict(x, [0], t, text, control[:1], settings, False)
            _, a_prev = pipe.alphas(int(t))
            x = math.sqrt(a_prev) * x0.detach() + math.sqrt(1 - a_prev) * eps_hat.detach()
            trajectory.append(x)
    return torch.cat(trajectory)


def insert_first_frame(x: torch.Tensor, trajectory: torch.Tensor | None, index: int) -> None:
    """Replace frame 0 of the video latents ``x`` in place by ``trajectory[index]`` (no-op without one)."""
    if trajectory is not None:
        x[0] = trajectory[index].to(x.dtype)
