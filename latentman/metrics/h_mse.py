"""H_MSE: temporal consistency of a generated video along the body's cross-frame correspondences.

Inputs: frames `(F, H, W, 3)` uint8 from `results/videos/{prompt}/{variant}/frames.h5` and the guidance-grid
correspondences of `results/correspondence/{prompt}/prev.h5`: `source` `(F, g, g)` int32 (flat index
s = row*g + col into frame i-1 for pixel q of frame i, -1 = unmatched) and `iuv` `(F, g, g, 3)` uint8.

Two metrics:

* :func:`h_mse` -- paper Eq. 9, computed correctly: float64 on the 0..255 scale, frames sampled on the
  guidance grid with NEAREST sampling (the top-left sample of each block, as the correspondences were
  computed), per consecutive pair the mean over matched pairs (q, s) and RGB channels of
  (I_i[q] - I_{i-1}[s])^2, then the mean over the N-1 pairs. A pair without matches is skipped and reported.
* :func:`h_mse_by_part` -- the same restricted to the target pixels q of each body part group
  (:data:`PART_GROUPS`), with the group's area; :func:`part_areas` gives a group's size on any grid (e.g.
  the latent grid SLA copies on). Diagnostics for tools/h_mse_by_part.py, not in the eval record.
* :func:`h_mse_official` -- the official code's computation (inference.py:126-141), kept so numbers can be set
  beside the paper's Table 1. See its docstring for every difference.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
from scipy.interpolate import griddata

from latentman.errors import IntermediateFileError

# Texture atlas of the official metric: 24 DensePose parts laid out as 6 columns x 4 rows of square tiles.
ATLAS_COLUMNS = 6
ATLAS_ROWS = 4
NUM_PARTS = 24

#: DensePose part indices (1-based, 0 = background) of each body part group, in the order of
#: latentman.body.labels.PART_NAMES (DensePose's own numbering). Spelled out here rather than derived from
#: PART_NAMES because importing latentman.body loads torch (seconds) into every evaluation job;
#: tests/test_h_mse_by_part.py checks the two agree.
PART_GROUPS: dict[str, tuple[int, ...]] = {
    "torso": (1, 2),
    "head": (23, 24),
    "upper_arms": (15, 16, 17, 18),
    "lower_arms": (19, 20, 21, 22),
    "hands": (3, 4),
    "upper_legs": (7, 8, 9, 10),
    "lower_legs": (11, 12, 13, 14),
    "feet": (5, 6),
}
#: Result key of :func:`h_mse_by_part` for the cells whose part is in no group (background, I = 0).
UNASSIGNED = "unassigned"


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


def _pair_squared_errors(
    small: np.ndarray, source_map: np.ndarray, i: int, cells: np.ndarray | None = None
) -> np.ndarray:
    """(n, 3) squared differences (I_i[q] - I_{i-1}[s])^2 of pair i's matches, q limited to `cells`.

    small: (F, g*g, 3) float64 frames on the guidance grid; cells: (g*g,) bool or None (every q). The one
    per-pair routine of Eq. 9: :func:`h_mse` and :func:`h_mse_by_part` both go through it.
    """
    flat = source_map[i].reshape(-1)
    matched = flat >= 0
    if cells is not None:
        matched &= cells
    diff = small[i][matched] - small[i - 1][flat[matched]]
    return diff**2


def _pair_means(
    small: np.ndarray, source_map: np.ndarray, cells: np.ndarray | None = None
) -> tuple[list[float | None], list[int]]:
    """Per consecutive pair i = 1..F-1: the mean squared error (None without matches) and the match count."""
    means: list[float | None] = []
    counts: list[int] = []
    for i in range(1, small.shape[0]):
        squared = _pair_squared_errors(small, source_map, i, None if cells is None else cells[i])
        counts.append(int(squared.shape[0]))
        means.append(float(np.mean(squared)) if squared.shape[0] else None)
    return means, counts


def _small_frames(frames: np.ndarray, source_map: np.ndarray) -> np.ndarray:
    """Checked frames sampled on the guidance grid, (F, g*g, 3) float64 on 0..255."""
    _check_inputs(frames, source_map)
    grid = source_map.shape[1]
    return sample_nearest(frames, grid).astype(np.float64).reshape(frames.shape[0], grid * grid, 3)


def h_mse(frames: np.ndarray, source_map: np.ndarray) -> HMSE:
    """Paper Eq. 9 on the 0..255 scale.

    frames: (F, H, W, 3) uint8; source_map: (F, g, g) int32 flat indices into frame i-1 (-1 unmatched; frame 0
    is ignored). Returns the mean over the F-1 consecutive pairs (pairs without matches skipped).
    """
    frames = np.asarray(frames)
    source_map = np.asarray(source_map)
    per_pair, _ = _pair_means(_small_frames(frames, source_map), source_map)
    skipped = [i for i, value in enumerate(per_pair, start=1) if value is None]
    values = [v for v in per_pair if v is not None]
    return HMSE(float(np.mean(values)) if values else None, per_pair, skipped)


@dataclass
class PartHMSE:
    """Eq. 9 restricted to the target pixels q of one part group (see :func:`h_mse_by_part`)."""

    mean: float | None  # mean over the pairs that have a matched pixel of the group; None if none has
    pairs: int  # matched pairs (q, s) it averages over, all frame pairs together
    area_cells: float  # mean cells of the group per frame on the IUV's grid
    per_pair: list[float | None]  # per frame pair i = 1..F-1, None without a matched pixel of the group
    per_pair_counts: list[int]  # matched pairs (q, s) of the group per frame pair

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def _group_masks(parts: np.ndarray, groups: Mapping[str, Iterable[int]]) -> dict[str, np.ndarray]:
    """Boolean masks (same shape as `parts`) per group, plus UNASSIGNED for the cells of no group."""
    masks = {name: np.isin(parts, list(indices)) for name, indices in groups.items()}
    if UNASSIGNED in masks:
        raise ValueError(f"{UNASSIGNED!r} is reserved for the cells of no group; rename that group")
    covered = np.zeros(parts.shape, dtype=bool)
    for mask in masks.values():
        covered |= mask
    masks[UNASSIGNED] = ~covered
    return masks


def _part_indices(iuv: np.ndarray) -> np.ndarray:
    iuv = np.asarray(iuv)
    if iuv.ndim != 4 or iuv.shape[-1] != 3 or iuv.shape[1] != iuv.shape[2]:
        raise IntermediateFileError(f"IUV maps have shape {iuv.shape}, expected (F, g, g, 3)")
    return iuv[..., 0]


def part_areas(
    iuv: np.ndarray, groups: Mapping[str, Iterable[int]] = PART_GROUPS
) -> dict[str, dict[str, float | None]]:
    """Size of each part group on the IUV's own grid (e.g. the correspondence file's `/latent/iuv`).

    Per group (and UNASSIGNED): `area_cells`, the mean number of cells per frame, and `interior_fraction`,
    the share of its cells whose 4 neighbours all belong to the group too (None without cells). A part one
    or two cells wide has no interior cells, so every cell of it straddles its border.
    """
    parts = _part_indices(iuv)
    out = {}
    for name, mask in _group_masks(parts, groups).items():
        padded = np.pad(mask, ((0, 0), (1, 1), (1, 1)))  # outside the grid counts as outside the group
        interior = (
            mask & padded[:, :-2, 1:-1] & padded[:, 2:, 1:-1] & padded[:, 1:-1, :-2] & padded[:, 1:-1, 2:]
        )
        total = int(mask.sum())
        out[name] = {
            "area_cells": total / mask.shape[0],
            "interior_fraction": int(interior.sum()) / total if total else None,
        }
    return out


def h_mse_by_part(
    frames: np.ndarray,
    source_map: np.ndarray,
    iuv: np.ndarray,
    groups: Mapping[str, Iterable[int]] = PART_GROUPS,
) -> dict[str, PartHMSE]:
    """Eq. 9 per body part group: :func:`h_mse` restricted to target pixels q whose part I = iuv[i, q, 0]
    is in the group.

    frames, source_map as :func:`h_mse`; iuv: (F, g, g, 3) on the same guidance grid (the correspondence
    file's `/guidance/iuv`, whose I is the part of q in frame i). Per pair the mean over the group's matched
    pairs and RGB channels, then the mean over the pairs that have some. The result holds every group plus
    UNASSIGNED (the cells of no group, background included), so the count-weighted union of all entries is
    :func:`h_mse` (see :func:`combine_parts`).
    """
    frames = np.asarray(frames)
    source_map = np.asarray(source_map)
    small = _small_frames(frames, source_map)
    parts = _part_indices(iuv)
    if parts.shape != source_map.shape:
        raise IntermediateFileError(
            f"IUV maps of shape {np.asarray(iuv).shape} do not fit correspondences of shape "
            f"{source_map.shape}; use the IUV of the same grid (`/guidance/iuv` with `/guidance/source`)"
        )
    out = {}
    for name, mask in _group_masks(parts, groups).items():
        per_pair, counts = _pair_means(small, source_map, mask.reshape(mask.shape[0], -1))
        values = [v for v in per_pair if v is not None]
        out[name] = PartHMSE(
            mean=float(np.mean(values)) if values else None,
            pairs=sum(counts),
            area_cells=float(mask.sum()) / mask.shape[0],
            per_pair=per_pair,
            per_pair_counts=counts,
        )
    return out


def combine_parts(parts: Mapping[str, PartHMSE]) -> float | None:
    """Whole-body Eq. 9 from per-group results: per pair the count-weighted mean, then the mean over pairs.

    Equal to :func:`h_mse` (up to rounding) when `parts` is a complete :func:`h_mse_by_part` result.
    """
    entries = list(parts.values())
    per_pair = []
    for k in range(len(entries[0].per_pair)):
        count = sum(e.per_pair_counts[k] for e in entries)
        if count:
            per_pair.append(
                sum(e.per_pair[k] * e.per_pair_counts[k] for e in entries if e.per_pair_counts[k]) / count
            )
    return float(np.mean(per_pair)) if per_pair else None


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
