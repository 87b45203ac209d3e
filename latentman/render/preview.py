"""Preview of a render: the control image and the coloured IUV side by side, as GIF and MP4."""

from __future__ import annotations

import colorsys

import numpy as np


def part_palette() -> np.ndarray:
    """RGB colour ``(25, 3)`` float in [0, 1] per part label (0 = background, black)."""
    palette = np.zeros((25, 3))
    for part in range(1, 25):
        # Golden-ratio hue steps: neighbouring part numbers get clearly different colours.
        palette[part] = colorsys.hsv_to_rgb((part * 0.618034) % 1.0, 0.75, 1.0)
    return palette


def colour_iuv(iuv: np.ndarray) -> np.ndarray:
    """IUV ``(..., 3)`` uint8 → RGB ``(..., 3)`` uint8: part colour, shaded by U and striped by V."""
    iuv = np.asarray(iuv)
    part = part_palette()[iuv[..., 0]]
    u = iuv[..., 1:2].astype(np.float64) / 255.0
    v = iuv[..., 2:3].astype(np.float64) / 255.0
    # Brightness follows U; a faint stripe pattern follows V, so both coordinates are visible.
    shade = (0.45 + 0.55 * u) * (0.85 + 0.15 * np.cos(2 * np.pi * 4 * v))
    rgb = part * shade
    rgb[iuv[..., 0] == 0] = 0.0
    return np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)


def preview_frames(control: np.ndarray, iuv: np.ndarray) -> np.ndarray:
    """Frames ``(F, H, 2W, 3)`` uint8: control image (grey) | coloured IUV."""
    grey = np.repeat(np.asarray(control, dtype=np.uint8)[..., None], 3, axis=-1)
    return np.concatenate([grey, colour_iuv(iuv)], axis=2)
