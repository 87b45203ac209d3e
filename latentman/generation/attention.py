"""Attention processors: cross-frame attention (Text2Video-Zero / LatentMan) and MasaCtrl mutual attention.

Installed with ``set_attn_processor`` on the UNet and the ControlNet; they change **self-attention only**
(calls without ``encoder_hidden_states``); text cross-attention runs the plain computation.

Batch layout of every call: ``(2·n, L, C)`` = ``[uncond frames ; cond frames]`` of the current chunk
(CFG order of the official code). Each CFG half attends to the keys/values of its own anchor.

Long videos run in chunks: the shared :class:`FrameContext` tells the processors which video frames the
batch holds; the anchor (frame 0) and the last frame of each chunk are cached per layer for the current
step, keyed by frame index, so later chunks attend to exactly the keys/values the earlier chunks computed,
also when gradient checkpointing (PWG) recomputes a chunk's blocks after its own forward pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F


@dataclass
class FrameContext:
    """What the batch holds right now (set by the pipeline before every network call)."""

    frames: list[int] = field(default_factory=list)  # video frame index of each batch frame
    step: int = 0
    masks: torch.Tensor | None = None  # (F, H, W) bool foreground masks (masked MasaCtrl)


def _plain(attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **_):
    """Plain attention (diffusers' AttnProcessor2_0 computation, without the rarely used branches)."""
    query, key, value, residual, shape = _qkv(attn, hidden_states, encoder_hidden_states)
    out = F.scaled_dot_product_attention(query, key, value)
    return _finish(attn, out, residual, shape)


def _heads(attn, x):
    b, length, _ = x.shape
    return x.view(b, length, attn.heads, -1).transpose(1, 2)


def _qkv(attn, hidden_states, encoder_hidden_states):
    residual = hidden_states
    shape = None
    if hidden_states.ndim == 4:
        b, c, h, w = hidden_states.shape
        shape = (b, c, h, w)
        hidden_states = hidden_states.view(b, c, h * w).transpose(1, 2)
    if attn.group_norm is not None:
        hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
    context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
    if encoder_hidden_states is not None and attn.norm_cross:
        context = attn.norm_encoder_hidden_states(context)
    query = _heads(attn, attn.to_q(hidden_states))
    key = _heads(attn, attn.to_k(context))
    value = _heads(attn, attn.to_v(context))
    return query, key, value, residual, shape


def _finish(attn, out, residual, shape):
    b = out.shape[0]
    out = out.transpose(1, 2).reshape(b, -1, attn.heads * out.shape[-1])
    out = attn.to_out[1](attn.to_out[0](out))
    if shape is not None:
        out = out.transpose(-1, -2).reshape(shape)
    if attn.residual_connection:
        out = out + residual
    return out / attn.rescale_output_factor


class CrossFrameAttnProcessor:
    """Self-attention keys/values from the anchor frame (frame 0) of each CFG half, detached.

    ``mode="first"``: every frame attends to frame 0 only (official code). ``mode="first_prev"``: keys and
    values of frame 0 and of the previous frame, concatenated (Text2Video-Zero's option). Frame 0 attends
    to itself, so a one-frame batch reproduces plain self-attention exactly.
    """

    def __init__(self, context: FrameContext, mode: str = "first"):
        self.context = context
        self.mode = mode
        self.cache: dict[str, tuple[int, torch.Tensor, torch.Tensor]] = {}

    def _cached(self, name, k, v, step):
        # copies: a slice of the chunk's keys would keep all of the chunk's frames alive (every layer,
        # every chunk of the step), and memory grew with the video's length (BENCHMARKS.md, 512² rehearsal)
        self.cache[name] = (step, k.detach().clone(), v.detach().clone())
        # entries of earlier steps are never read again
        for stale in [key for key, entry in self.cache.items() if entry[0] != step]:
            del self.cache[stale]

    def _get(self, name, step):
        entry = self.cache.get(name)
        if entry is None or entry[0] != step:
            raise RuntimeError(f"cross-frame attention: no cached '{name}' keys for step {step}")
        return entry[1], entry[2]

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kw):
        if encoder_hidden_states is not None:
            return _plain(attn, hidden_states, encoder_hidden_states)
        query, key, value, residual, shape = _qkv(attn, hidden_states, None)
        frames, step = self.context.frames, self.context.step
        n = len(frames)
        b, heads, length, dim = key.shape
        if b != 2 * n:
            raise RuntimeError(f"cross-frame attention: batch {b} is not 2 x {n} frames")
        key = key.view(2, n, heads, length, dim)
        value = value.view(2, n, heads, length, dim)
        if frames[0] == 0:
            self._cached("anchor", key[:, 0], value[:, 0], step)
        anchor_k, anchor_v = self._get("anchor", step)
        keys, values = [], []
        for j, frame in enumerate(frames):
            k_j, v_j = anchor_k, anchor_v
            if self.mode == "first_prev":
                if frame == 0:
                    prev_k, prev_v = anchor_k, anchor_v
                elif j > 0:
                    prev_k, prev_v = key[:, j - 1].detach(), value[:, j - 1].detach()
                else:
                    prev_k, prev_v = self._get(f"frame {frame - 1}", step)
                k_j = torch.cat([k_j, prev_k], dim=2)
                v_j = torch.cat([v_j, prev_v], dim=2)
            keys.append(k_j)
            values.append(v_j)
        # Keyed by frame index, not "last": a checkpointed recomputation of this chunk runs after its
        # forward pass and must still find the previous chunk's last frame.
        self._cached(f"frame {frames[-1]}", key[:, -1], value[:, -1], step)
        # only the previous chunk's last frame is read again (by this chunk's recomputation or the next chunk)
        for old in [name for name in self.cache if name.startswith("frame ")]:
            if int(old.split()[1]) < frames[0] - 1:
                del self.cache[old]
        key = torch.stack(keys, dim=1).reshape(b, heads, -1, dim)
        value = torch.stack(values, dim=1).reshape(b, heads, -1, dim)
        out = F.scaled_dot_product_attention(query, key, value)
        return _finish(attn, out, residual, shape)


class MutualSelfAttnProcessor(CrossFrameAttnProcessor):
    """MasaCtrl mutual self-attention: from step ``start_step`` on, in layers >= ``start_layer``, each
    frame's queries attend to the anchor frame's keys/values; plain self-attention before.

    ``masked``: foreground queries attend to anchor foreground keys, background to background (the
    render's mask at this layer's token resolution); when the anchor has no key of a query's class the
    query attends to all anchor keys.
    """

    def __init__(self, context: FrameContext, layer: int, start_step: int, start_layer: int, masked: bool):
        super().__init__(context, "first")
        self.layer, self.start_step, self.start_layer, self.masked = layer, start_step, start_layer, masked

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kw):
        if encoder_hidden_states is not None:
            return _plain(attn, hidden_states, encoder_hidden_states)
        active = self.context.step >= self.start_step and self.layer >= self.start_layer
        if not active:
            # The anchor cache is still needed by later chunks once the layer becomes active.
            return _plain(attn, hidden_states)
        if not self.masked or self.context.masks is None:
            return super().__call__(attn, hidden_states)
        query, key, value, residual, shape = _qkv(attn, hidden_states, None)
        frames, step = self.context.frames, self.context.step
        n = len(frames)
        b, heads, length, dim = key.shape
        key = key.view(2, n, heads, length, dim)
        value = value.view(2, n, heads, length, dim)
        if frames[0] == 0:
            self._cached("anchor", key[:, 0], value[:, 0], step)
        anchor_k, anchor_v = self._get("anchor", step)
        side = int(round(length**0.5))
        masks = self.context.masks
        small = F.interpolate(masks[None].float(), size=(side, side), mode="nearest")[0] > 0.5
        small = small.view(masks.shape[0], length).to(query.device)
        anchor_fg = small[0]
        bias = torch.zeros(n, length, length, device=query.device, dtype=query.dtype)
        for j, frame in enumerate(frames):
            if frame == 0:
                continue  # the source keeps plain self-attention, as the official MasaCtrl code
            allowed = small[frame][:, None] == anchor_fg[None, :]
            allowed |= ~allowed.any(dim=1, keepdim=True)
            bias[j] = torch.where(allowed, 0.0, float("-inf"))
        key = anchor_k[:, None].expand(2, n, heads, length, dim).reshape(b, heads, length, dim)
        value = anchor_v[:, None].expand(2, n, heads, length, dim).reshape(b, heads, length, dim)
        bias = bias[None, :, None].expand(2, n, 1, length, length).reshape(b, 1, length, length)
        out = F.scaled_dot_product_attention(query, key, value, attn_mask=bias)
        return _finish(attn, out, residual, shape)


def _spatial_self_attention(name: str) -> bool:
    """attn1 of the spatial transformers; AnimateDiff's motion modules (temporal attention over the frames
    of one pixel, also named attn1/attn2) keep their own processors."""
    return ".attn1." in name and "motion_modules" not in name


def self_attention_names(model) -> list[str]:
    """Self-attention (attn1) processor names in encoder -> mid -> decoder order."""
    names = [name for name in model.attn_processors if _spatial_self_attention(name)]
    order = {"down_blocks": 0, "mid_block": 1, "up_blocks": 2}
    return sorted(names, key=lambda name: (order.get(name.split(".")[0], 3), names.index(name)))


def plain_processor():
    """Plain self-attention (diffusers' own processor): frames attend to themselves only."""
    from diffusers.models.attention_processor import AttnProcessor2_0

    return AttnProcessor2_0()


def install(unet, controlnet, context: FrameContext, settings) -> None:
    """Install the processors of ``settings``' method (its ``self_attention_processor`` hook) on the spatial
    self-attention of the UNet and the ControlNet; every other attention (text cross-attention, AnimateDiff's
    motion modules) runs diffusers' plain processor."""
    method = settings.method_spec
    for kind, model in (("unet", unet), ("controlnet", controlnet)):
        names = self_attention_names(model)
        processors = {}
        for name in model.attn_processors:
            if _spatial_self_attention(name):
                layer = names.index(name)
                processors[name] = method.self_attention_processor(kind, layer, len(names), context, settings)
            else:
                processors[name] = plain_processor()
        model.set_attn_processor(processors)
