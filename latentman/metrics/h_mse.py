"""H_MSE: temporal consistency of a generated video along the body's cross-frame correspondences.

Inputs: frames `(F, H, W, 3)` uint8 from `results/videos/{prompt}/{variant}/frames.h5` and the guidance-grid
correspondences of `results/correspondence/{prompt}/prev.h5`: `source` `(F, g, g)` int32 (flat index
s = row*g + col into frame i-1 for pixel q of frame i, -1 = unmatched) and `iuv` `(F, g, g, 3)` uint8.

Two metrics:

* :func:`h_mse` -- paper Eq. 9, computed correctly: float64 on the 0..255 scale, frames sampled on the
  guidance grid with NEAREST sampling (the top-left sample of each block, as the correspondences were
  computed), per consecutive pair the mean over matched pairs (q, s) and RGB channels of
  (I_i[q] - I_{i-1}[s])^2, then the mean over the N-1 pairs. A pair without matches is skipped and reported.
* :func:`h_mse_official` -- the official code's computation (inference.py:126-141), kept so numbers can be set
  beside the paper's Table 1. See its docstring for every difference.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.interpolate import griddata

from latentman.errors import IntermediateFileError

# Texture atlas of the official metric: 24 DensePose parts laid out as 6 columns x 4 rows of square tiles.
ATLAS_COLUMNS = 6
ATLAS_ROWS = 4
NUM_PARTS = 24


@dataclass
class HMSE:
    """Mean over frame pairs plus per-pair values (None for a skipped pair)."""

    mean: float | None
    per_pair: list[float | None]
    skipped_pairs: list[int] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"mean": self.mean, "per_pair": self.per_pair, "skipped_pairs": self.skipped_pairs}


def sample_nearest(frames: np.ndarray, grid: int) -> np.ndarray:
    """(F, H, W, C) -> (F, grid, grid, C): the top-left sample of each (H/grid, W/grid) block."""
    frames = np.asarray(frames)
    height, width = frames.shape[1:3]
    if height % grid or width % grid:
        raise IntermediateFileError(
            f"frames of size {height}x{width} are not a multiple of the correspondence grid {grid}; "
            "rerun rule 'correspondence' with the render resolution the frames were generated at"
        )
    return frames[:, :: height // grid, :: width // grid]


def _check_inputs(frames: np.ndarray, source: np.ndarray) -> None:
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise IntermediateFileError(f"frames have shape {frames.shape}, expected (F, H, W, 3)")
    if source.ndim != 3 or source.shape[1] != source.shape[2]:
        raise IntermediateFileError(f"correspondence source has shape {source.shape}, expected (F, g, g)")
    if source.shape[0] != frames.shape[0]:
        raise IntermediateFileError(
            f"{frames.shape[0]} frames but correspondences for {source.shape[0]} frames; "
            "regenerate the video or rerun rule 'correspondence' for this prompt"
        )


def h_mse(frames: np.ndarray, source_map: np.ndarray) -> HMSE:
    """Paper Eq. 9 on the 0..255 scale.

    frames: (F, H, W, 3) uint8; source_map: (F, g, g) int32 flat indices into frame i-1 (-1 unmatched; frame 0
    is ignored). Returns the mean over the F-1 consecutive pairs (pairs without matches skipped).
    """
    frames = np.asarray(frames)
    source_map = np.asarray(source_map)
    _check_inputs(frames, source_map)
    grid = source_map.shape[1]
    small = sample_nearest(frames, grid).astype(np.float64).reshape(frames.shape[0], grid * grid, 3)
    per_pair: list[float | None] = []
    skipped: list[int] = []
    for i in range(1, frames.shape[0]):
        flat = source_map[i].reshape(-1)
        matched = flat >= 0
        if not matched.any():
            per_pair.append(None)
            skipped.append(i)
            continue
        diff = small[i][matched] - small[i - 1][flat[matched]]
        per_pair.append(float(np.mean(diff**2)))
    values = [v for v in per_pair if v is not None]
    return HMSE(float(np.mean(values)) if values else None, per_pair, skipped)


def resize_bilinear(frames: np.ndarray, size: int) -> np.ndarray:
    """(F, H, W, C) uint8 -> (F, size, size, C) uint8, half-pixel-centred bilinear (OpenCV INTER_LINEAR).

    Rounds half up as OpenCV does (its 2x path averages 2x2 blocks as (a+b+c+d+2)>>2, its fixed-point path
    adds half before the shift): equal to cv2.resize at 2x and 4x (tests/data/opencv_resize.npz).
    """
    frames = np.asarray(frames, dtype=np.float64)
    height, width = frames.shape[1:3]

    def axis(n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pos = np.clip((np.arange(size) + 0.5) * n_in / size - 0.5, 0, n_in - 1)
        low = np.floor(pos).astype(int)
        high = np.minimum(low + 1, n_in - 1)
        return low, high, pos - low

    y0, y1, wy = axis(height)
    x0, x1, wx = axis(width)
    wy = wy[None, :, None, None]
    wx = wx[None, None, :, None]
    top = frames[:, y0][:, :, x0] * (1 - wx) + frames[:, y0][:, :, x1] * wx
    bottom = frames[:, y1][:, :, x0] * (1 - wx) + frames[:, y1][:, :, x1] * wx
    return np.clip(np.floor(top * (1 - wy) + bottom * wy + 0.5), 0, 255).astype(np.uint8)


def atlas_coordinates(iuv: np.ndarray, tile: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Texel (row, col) of every body pixel of one (g, g, 3) IUV map, plus the pixel mask.

    Our atlas stands in for DensePose's UV lookup table (absent from the official release): part p (1..24)
    owns the tile at column (p-1) % 6, row (p-1) // 6; inside it column = U * (tile-1)/255 and
    row = (255 - V) * (tile-1)/255 (the official code flips v the same way).
    """
    part = iuv[..., 0].astype(int)
    body = part > 0
    p = part[body] - 1
    u = iuv[..., 1][body].astype(np.float64)
    v = iuv[..., 2][body].astype(np.float64)
    col = (p % ATLAS_COLUMNS) * tile + u * (tile - 1) / 255.0
    row = (p // ATLAS_COLUMNS) * tile + (255.0 - v) * (tile - 1) / 255.0
    return row, col, body


def lift_to_atlas(image: np.ndarray, iuv: np.ndarray, tile: int) -> np.ndarray:
    """(g, g, 3) uint8 image + (g, g, 3) IUV -> (4*tile, 6*tile, 3) uint8 atlas texture.

    As the official code: linear scattered-data interpolation (griddata) of the body pixels' colours, then
    kept only at the 4 floor/ceil integer neighbours of each scattered point; NaN (outside the hull)
    becomes 0; cast to uint8.
    """
    shape = (ATLAS_ROWS * tile, ATLAS_COLUMNS * tile)
    atlas = np.zeros(shape + (3,), dtype=np.uint8)
    row, col, body = atlas_coordinates(iuv, tile)
    if row.size == 0:
        return atlas
    colours = image[body].astype(np.float64)
    grid_r, grid_c = np.mgrid[0 : shape[0], 0 : shape[1]]
    points = np.stack([row, col], axis=1)
    if row.size >= 3 and np.linalg.matrix_rank(points - points.mean(0)) == 2:
        dense = griddata(points, colours, (grid_r, grid_c), method="linear")
    else:  # griddata needs a 2-D hull; fall back to the points themselves
        dense = np.full(shape + (3,), np.nan)
        dense[np.rint(row).astype(int), np.rint(col).astype(int)] = colours
    mask = np.zeros(shape, dtype=bool)
    for r in (np.floor(row), np.ceil(row)):
        for c in (np.floor(col), np.ceil(col)):
            mask[r.astype(int).clip(0, shape[0] - 1), c.astype(int).clip(0, shape[1] - 1)] = True
    dense = np.nan_to_num(dense, nan=0.0)
    dense[~mask] = 0
    # the official code casts float -> uint8 (truncation)
    atlas[:] = np.clip(dense, 0, 255).astype(np.uint8)
    return atlas


def h_mse_official(frames: np.ndarray, iuv: np.ndarray, tile: int | None = None) -> HMSE:
    """The official code's H_MSE (inference.py:126-141), for comparison with the paper's Table 1.

    frames: (F, H, W, 3) uint8; iuv: (F, g, g, 3) uint8 IUV maps on the guidance grid (the correspondence
    file's `/guidance/iuv`). Differences from :func:`h_mse` (paper Eq. 9), all on purpose, as the official
    code does:

    1. frames are resized bilinearly (not sampled) to the IUV grid g (the official code: 256 at 512^2 frames,
       which is our guidance grid; for 128^2 frames it is 64);
    2. pixels are compared through a texture atlas, not along the Hungarian matches: each body pixel is
       lifted to a texel via its (I, U, V), a dense atlas is interpolated linearly and masked to the 4 integer
       neighbours of each lifted point. The official code uses DensePose's SMPL UV lookup table (not
       released); ours is a 6x4 grid of 24 part tiles of `tile` texels (default g // 4,
       so the atlas is (g, 1.5 g)) -- see :func:`atlas_coordinates`;
    3. differences and squares are taken in uint8 arithmetic, so they wrap modulo 256:
       ((a - b) mod 256)^2 mod 256 -- correct only for |a - b| <= 15 (e.g. 200 vs 100 gives 16);
    4. pairs are circular (np.roll): frame 0 is also compared with frame F-1, so there are F pairs;
    5. the result is one global mean over all pairs, texels and channels where both atlases are nonzero.

    `per_pair` holds each pair's masked mean (pair k compares frame k with frame k-1, k = 0 with frame F-1).
    """
    frames = np.asarray(frames)
    iuv = np.asarray(iuv)
    if iuv.ndim != 4 or iuv.shape[-1] != 3 or iuv.shape[0] != frames.shape[0]:
        raise IntermediateFileError(
            f"IUV maps have shape {iuv.shape}, expected ({frames.shape[0]}, g, g, 3) "
            f"for {frames.shape[0]} frames"
        )
    grid = iuv.shape[1]
    tile = tile or max(grid // 4, 2)
    small = resize_bilinear(frames, grid)
    atlases = np.stack([lift_to_atlas(small[i], iuv[i], tile) for i in range(frames.shape[0])])
    previous = np.roll(atlases, 1, axis=0)
    # uint8 arithmetic on purpose (official bug): subtraction and square both wrap modulo 256
    with np.errstate(over="ignore"):
        diff = (atlases - previous) ** 2
    mask = (atlases != 0) & (previous != 0)
    total = float(np.sum(diff.astype(np.float64) * mask))
    count = int(mask.sum())
    per_pair: list[float | None] = []
    skipped: list[int] = []
    for k in range(frames.shape[0]):
        n = int(mask[k].sum())
        if n == 0:
            per_pair.append(None)
            skipped.append(k)
        else:
            per_pair.append(float(np.sum(diff[k].astype(np.float64) * mask[k]) / n))
    return HMSE(total / count if count else None, per_pair, skipped)
