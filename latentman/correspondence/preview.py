"""Preview of a correspondence file: warped IUV beside the target frame, matched share per frame.

Input: ``results/correspondence/{prompt}/prev.h5``; output: a PNG.
"""

from __future__ import annotations

import os

import numpy as np

from latentman.correspondence.storage import read_correspondence
from latentman.io import atomic_path


def warp(iuv_ref: np.ndarray, source: np.ndarray) -> np.ndarray:
    """Reference IUV ``(g, g, 3)`` pulled onto the current frame through ``source`` ``(g, g)``."""
    out = np.zeros_like(iuv_ref)
    m = source >= 0
    out[m] = iuv_ref.reshape(-1, 3)[source[m]]
    return out


def matched_share(iuv: np.ndarray, source: np.ndarray) -> np.ndarray:
    """Share ``(F,)`` of each frame's foreground pixels with a match (NaN for frame 0 / empty)."""
    fg = (iuv[..., 0] > 0).sum((1, 2)).astype(float)
    hit = ((source >= 0) & (iuv[..., 0] > 0)).sum((1, 2))
    share = np.where(fg > 0, hit / np.maximum(fg, 1), np.nan)
    share[0] = np.nan
    return share


def _show(iuv):
    # I as hue-ish colour through a colormap, U/V modulate brightness; background black.
    import matplotlib

    rgb = matplotlib.colormaps["tab20"]((iuv[..., 0] % 20) / 20.0)[..., :3]
    rgb = rgb * (0.5 + 0.5 * iuv[..., 1:2] / 255.0)
    rgb[iuv[..., 0] == 0] = 0
    return rgb


def write_preview(corr_path: str | os.PathLike, out_path: str | os.PathLike, pairs: int = 3) -> None:
    """Write the preview PNG atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = read_correspondence(corr_path)
    grid = data["guidance"]
    n = grid["iuv"].shape[0]
    frames = np.unique(np.linspace(1, max(n - 1, 1), min(pairs, max(n - 1, 1))).astype(int)) if n > 1 else []
    rows = len(frames) + 1
    fig, axes = plt.subplots(rows, 3, figsize=(7.5, 2.6 * rows), squeeze=False)
    for r, i in enumerate(frames):
        ref = int(data["reference_index"][i])
        for c, (img, title) in enumerate(
            [
                (grid["iuv"][ref], f"frame {ref}"),
                (warp(grid["iuv"][ref], grid["source"][i]), f"{ref} warped to {i}"),
                (grid["iuv"][i], f"frame {i}"),
            ]
        ):
            axes[r, c].imshow(_show(img), interpolation="nearest")
            axes[r, c].set_title(title, fontsize=8)
            axes[r, c].axis("off")
    gs = axes[-1, 0].get_gridspec()
    for ax in axes[-1]:
        ax.remove()
    ax = fig.add_subplot(gs[-1, :])
    for name in ("latent", "guidance"):
        g = data[name]
        ax.plot(np.arange(n), matched_share(g["iuv"], g["source"]), marker="o", label=f"{name} {g['grid']}²")
    ax.set_xlabel("frame")
    ax.set_ylabel("matched foreground share")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(out_path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=80)
    plt.close(fig)
