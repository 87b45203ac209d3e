"""Pixel-Wise Guidance (paper §3.5; official code §8.7).

With x̂0 the predicted clean latent of each frame, decode it, map to ``25·clamp((X+1)/2, 0, 1)``, take the
guidance grid by nearest sampling, and compare every matched pixel with its source pixel in the detached
reference image: ``ω_i = mean over matched pixels and RGB of (X'_i[q] − sg(X'_ref[s]))²``, ``ω = Σ_i ω_i``.

:func:`pixel_wise_guidance` returns ``∂ω/∂x̂0`` computed one frame at a time (exact: each ω_i depends on
its own frame's decode only, the reference being detached), so only one frame's decoder graph exists at a
time. The pipeline then maps it to the UNet input (``gradient: unet``, the official code: through the UNet
to the unconditional copy of the input), to x_t itself (``gradient: full``, the paper's ∇_{x_t}ω: both CFG
copies plus the direct path), or divides by √ᾱ_t (``gradient: decoder``: ε held constant, no UNet backward).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

#: ``pwg.gradient`` modes (see the module docstring).
GRADIENT_MODES = ("unet", "full", "decoder")

#: Undocumented ×25 of the official code (probably against fp16 gradient underflow).
PIXEL_SCALE = 25.0


def guidance_image(decoded: torch.Tensor, grid: int) -> torch.Tensor:
    """(B, 3, H, W) VAE output in [−1, 1] -> (B, 3, grid, grid) in [0, 25] (nearest: pixel (2y, 2x))."""
    image = PIXEL_SCALE * ((decoded.float() + 1) / 2).clamp(0, 1)
    return F.interpolate(image, size=(grid, grid), mode="nearest")


def frame_loss(image: torch.Tensor, reference: torch.Tensor, source: torch.Tensor) -> torch.Tensor | None:
    """ω_i for (3, G, G) images and (G, G) source indices (−1 unmatched); None when nothing is matched."""
    flat_source = source.reshape(-1)
    matched = flat_source >= 0
    if not bool(matched.any()):
        return None
    channels = image.shape[0]
    own = image.reshape(channels, -1)[:, matched]
    ref = reference.detach().reshape(channels, -1)[:, flat_source[matched]]
    return F.mse_loss(own, ref)


def pixel_wise_guidance(
    x0: torch.Tensor,
    decode: Callable[[torch.Tensor], torch.Tensor],
    frames: list[int],
    source: np.ndarray,
    reference_index: np.ndarray,
    images: dict[int, torch.Tensor],
) -> tuple[torch.Tensor, float]:
    """∂ω/∂x̂0 for the chunk's frames, and ω.

    x0: (n, 4, g, g) predicted clean latents of video frames ``frames`` (ascending); decode: latent ->
    (1, 3, H, W) in [−1, 1]; source: (F, G, G) guidance-grid correspondences of the whole video;
    reference_index: (F,); images: detached guidance images by video frame (filled in here; must already
    hold the references of frames before the chunk).
    """
    grid = source.shape[-1]
    grads = torch.zeros_like(x0, dtype=torch.float32)
    total = 0.0
    for j, frame in enumerate(frames):
        ref = int(reference_index[frame])
        latent = x0[j : j + 1].detach().float().requires_grad_(ref >= 0)
        with torch.set_grad_enabled(ref >= 0):
            image = guidance_image(decode(latent), grid)[0]
            loss = None
            if ref >= 0:
                src = torch.as_tensor(source[frame], dtype=torch.long, device=image.device)
                loss = frame_loss(image, images[ref], src)
            if loss is not None:
                (grad,) = torch.autograd.grad(loss, latent)
                grads[j] = grad[0]
                total += float(loss.detach())
        images[frame] = image.detach()
    return grads, total


def guidance_gradients(
    g_x0: torch.Tensor,
    x0: torch.Tensor,
    z_in: torch.Tensor | None,
    n: int,
    a_t: float,
    modes: tuple[str, ...],
    z_control: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """∂ω/∂x̂0 mapped to the latents for each of ``modes``; (n, 4, g, g) float32 each.

    ``x0`` is x̂0 of the chunk's n frames, computed from the UNet input ``z_in`` = [uncond ×n ; cond ×n]
    (with its graph when a mode goes through the UNet) and the ControlNet input ``z_control`` (a separate
    leaf; needed by ``full``); ``a_t`` = ᾱ_t.
    """
    out = {}
    if "unet" in modes or "full" in modes:
        leaves = [z_in] if z_control is None else [z_in, z_control]
        g, *g_control = torch.autograd.grad(x0, leaves, grad_outputs=g_x0.to(x0.dtype))
        if "unet" in modes:
            # The official code: the unconditional copy of the UNet input only (§8.7).
            out["unet"] = g[:n].float()
        if "full" in modes:
            if z_control is None:
                raise ValueError("pwg gradient 'full' needs the ControlNet input's graph (z_control)")
            # The paper's ∇_{x_t}ω: both CFG copies of the UNet input and of the ControlNet input, plus
            # the direct path of x̂0 = (x_t − √(1−ᾱ)ε)/√ᾱ.
            (gc,) = g_control
            out["full"] = (g[:n] + g[n:] + gc[:n] + gc[n:]).float() + g_x0 / math.sqrt(a_t)
    if "decoder" in modes:
        out["decoder"] = g_x0 / math.sqrt(a_t)
    return out
