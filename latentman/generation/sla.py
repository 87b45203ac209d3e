"""Spatial Latent Alignment (paper §3.4; official code §8.6 step 1).

At the start of a denoising step, before any network call, every frame i ≥ 1 (ascending) copies the latent
of its matched pixels from its reference frame: ``x[i][:, q] = x[ref(i)][:, source_i[q]]``. The reference
(frame i−1 for prev/prev_new) was already aligned in this pass, so matched content chains from frame 0.
"""

from __future__ import annotations

import numpy as np
import torch


def spatial_latent_alignment(
    latents: torch.Tensor, source: np.ndarray | torch.Tensor, reference_index: np.ndarray | torch.Tensor
) -> torch.Tensor:
    """Return aligned latents.

    latents: (F, C, g, g); source: (F, g, g) int flat index into the reference frame, −1 unmatched;
    reference_index: (F,) int, −1 for frame 0. Unmatched latents are unchanged.
    """
    out = latents.detach().clone()
    n, c, g, _ = out.shape
    source = torch.as_tensor(np.asarray(source), dtype=torch.long, device=out.device).view(n, g * g)
    refs = np.asarray(reference_index)
    flat = out.view(n, c, g * g)
    for i in range(1, n):
        matched = source[i] >= 0
        if not bool(matched.any()):
            continue
        ref = flat[int(refs[i])]
        flat[i][:, matched] = ref[:, source[i][matched]]
    return out
