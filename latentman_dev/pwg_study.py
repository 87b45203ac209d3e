"""How well does each PWG gradient mode follow the true gradient of the PWG loss?

At every guided step of one generation, :func:`gradient_study` takes the three gradients of
:func:`latentman.generation.pwg.guidance_gradients` for the same latents: ``full`` is the exact gradient
∇_{x_t} ω of the PWG loss ω with respect to the latents (autograd through the UNet's and the ControlNet's
two CFG copies, the VAE decoder and the direct path of x̂0; checked against central differences in
tests/test_generation.py), so the cosine of ``unet`` (the official code) and ``decoder`` (ε held constant)
with ``full`` says how far each is from a descent direction of ω. It also records ω per guided step, with
guidance and without it (the same run with δ → 0), so a reader sees whether guidance lowers the loss it
descends.
"""

from __future__ import annotations

import numpy as np
import torch

from latentman.generation.settings import GenerationSettings


def _cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.flatten().double(), b.flatten().double()
    denominator = float(a.norm() * b.norm())
    return float(a @ b) / denominator if denominator > 0 else float("nan")


def gradient_study(pipe, prompt, negative_prompt, control, correspondence, settings, seed, mask=None) -> dict:
    """Cosines with the true gradient and ω per guided step; ``settings`` must have PWG enabled."""
    settings = GenerationSettings.from_config(settings)
    if not settings.pwg.enabled:
        raise ValueError("gradient_study needs settings with pwg.enabled")
    records: list[dict] = []

    def probe(step, frames, grads, loss):
        full = grads["full"]
        records.append(
            {
                "step": int(step),
                "frames": [int(f) for f in frames],
                "loss": float(loss),
                "cos_unet": _cosine(grads["unet"], full),
                "cos_decoder": _cosine(grads["decoder"], full),
                "cos_full": 1.0,
                "norm_full": float(full.norm()),
                "norm_unet": float(grads["unet"].norm()),
                "norm_decoder": float(grads["decoder"].norm()),
            }
        )

    pipe.gradient_probe = probe
    try:
        pipe(prompt, negative_prompt, control, correspondence, settings, seed, mask=mask, progress=False)
    finally:
        pipe.gradient_probe = None
    guided = list(pipe.guidance_losses)
    unguided_settings = settings.with_pwg(delta=1e-12)
    pipe(prompt, negative_prompt, control, correspondence, unguided_settings, seed, mask=mask, progress=False)
    unguided = list(pipe.guidance_losses)
    return {
        "mode": settings.pwg.gradient,
        "delta": settings.pwg.delta,
        "per_chunk": records,
        "loss_guided": [loss for _, loss in guided],
        "loss_unguided": [loss for _, loss in unguided],
        "steps": [step for step, _ in guided],
        "mean_cos_unet": float(np.nanmean([r["cos_unet"] for r in records])),
        "mean_cos_decoder": float(np.nanmean([r["cos_decoder"] for r in records])),
    }
