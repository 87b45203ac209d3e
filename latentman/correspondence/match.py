"""Cross-frame dense correspondences at one grid (DESIGN.md §5; official code §7).

Input: downsampled IUV maps ``(F, g, g, 3)`` uint8 (I part 0..24, U, V 0..255) and, for the
``surface`` method, each pixel's canonical surface point ``(F, g, g, 3)`` (NaN = background).
Output per frame i: ``source (g, g)`` int32, the flat index ``row·g + col`` of the matched pixel of
the reference frame, −1 if unmatched; the pair's total cost; for ``prev_new`` the aligned map P̃_i.
"""

from __future__ import annotations

import logging

import numpy as np
from scipy.spatial import cKDTree

from latentman.correspondence.solver import assign_many

log = logging.getLogger(__name__)

REFERENCES = ("prev", "first", "prev_new")
E_MAX = 63.75  # the official code rescales the spatial term so each part's largest value is this


def downsample(array: np.ndarray, grid: int, source: str = "render") -> np.ndarray:
    """Nearest-neighbour resize of ``(F, H, W, ...)`` to ``(F, grid, grid, ...)``: the top-left
    sample of each block (OpenCV INTER_NEAREST for integer factors), so labels stay valid."""
    from latentman.errors import IntermediateFileError

    h, w = array.shape[1:3]
    if grid <= 0 or h % grid or w % grid:
        raise IntermediateFileError(
            f"{source}: render resolution {h}x{w} is not divisible by the correspondence grid {grid}; "
            "set render.resolution to a multiple of 8"
        )
    return array[:, :: h // grid, :: w // grid]


def part_features(iuv: np.ndarray, part: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixels of ``part`` in one map ``(g, g, 3)`` (row-major flat indices) and their
    features ``(n, 3)`` = [U − mean U, V − mean V, E] (official-code version of Eq. 3)."""
    mask = iuv[..., 0] == part
    ys, xs = np.nonzero(mask)
    flat = ys * iuv.shape[1] + xs
    u = iuv[ys, xs, 1].astype(np.float64)
    v = iuv[ys, xs, 2].astype(np.float64)
    y0, y1, x0, x1 = ys.min(), ys.max(), xs.min(), xs.max()
    h, w = y1 - y0 + 1, x1 - x0 + 1
    # linspace(-1, 1, n) * n / 2 offsets to the bounding-box centre; n = 1 gives −0.5 like the code.
    off_x = np.linspace(-1.0, 1.0, w) * w / 2 if w > 1 else np.array([-0.5])
    off_y = np.linspace(-1.0, 1.0, h) * h / 2 if h > 1 else np.array([-0.5])
    r = np.abs(off_x[xs - x0]) + np.abs(off_y[ys - y0])
    e = r * E_MAX / r.max() if r.max() > 0 else np.zeros_like(r)
    feats = np.stack([u - u.mean(), v - v.mean(), e], axis=1)
    return flat, feats


def match_hungarian(ref: np.ndarray, cur: np.ndarray, workers: int = 1) -> tuple[np.ndarray, float, str]:
    """Per-part optimal assignment between reference map ``ref`` and current map ``cur`` ``(g, g, 3)``.

    Returns ``source`` ``(g, g)`` int32, total cost, and the solvers used (comma list). ``workers``
    threads solve the parts in parallel (same result as one).
    """
    g = cur.shape[0]
    source = np.full(g * g, -1, np.int32)
    total = 0.0
    solvers = set()
    parts = np.intersect1d(np.unique(ref[..., 0]), np.unique(cur[..., 0]))
    parts = parts[parts > 0]
    pixels = [(part_features(ref, int(p)), part_features(cur, int(p))) for p in parts]
    results = assign_many([(f_r, f_c) for (_, f_r), (_, f_c) in pixels], workers=workers)
    for ((flat_r, _), (flat_c, _)), result in zip(pixels, results):
        source[flat_c[result.cols]] = flat_r[result.rows]
        total += result.cost
        solvers.add(result.solver)
    return source.reshape(g, g), total, ",".join(sorted(solvers))


def match_surface(
    ref_points: np.ndarray, cur_points: np.ndarray, radius: float
) -> tuple[np.ndarray, float, str]:
    """Mutual nearest canonical surface points within ``radius`` (metres); injective.

    ``ref_points``/``cur_points``: ``(g, g, 3)`` float, NaN where background.
    """
    g = cur_points.shape[0]
    source = np.full(g * g, -1, np.int32)
    pr, pc = ref_points.reshape(-1, 3), cur_points.reshape(-1, 3)
    idx_r = np.flatnonzero(np.isfinite(pr).all(1))
    idx_c = np.flatnonzero(np.isfinite(pc).all(1))
    if len(idx_r) == 0 or len(idx_c) == 0:
        return source.reshape(g, g), 0.0, "mutual-nn"
    d_c, nn_c = cKDTree(pr[idx_r]).query(pc[idx_c])  # current -> reference
    _, nn_r = cKDTree(pc[idx_c]).query(pr[idx_r])  # reference -> current
    mutual = (nn_r[nn_c] == np.arange(len(idx_c))) & (d_c <= radius)
    source[idx_c[mutual]] = idx_r[nn_c[mutual]]
    return source.reshape(g, g), float(d_c[mutual].sum()), "mutual-nn"


def correspond(
    iuv: np.ndarray,
    reference: str,
    method: str = "hungarian",
    points: np.ndarray | None = None,
    radius: float = 0.02,
    workers: int = 1,
) -> dict[str, np.ndarray]:
    """Correspondences of every frame to its reference at one grid.

    ``iuv`` ``(F, g, g, 3)`` uint8; ``points`` ``(F, g, g, 3)`` canonical surface points (surface
    method). Returns ``iuv`` (the P̃ chain for prev_new, else the input), ``source`` ``(F, g, g)``
    int32, ``cost`` ``(F,)`` float64, ``reference_index`` ``(F,)`` int32 and ``solver`` (str).
    """
    if reference not in REFERENCES:
        raise ValueError(f"unknown reference mode {reference!r}; use one of {REFERENCES}")
    n, g = iuv.shape[0], iuv.shape[1]
    source = np.full((n, g, g), -1, np.int32)
    cost = np.zeros(n, np.float64)
    ref_index = np.full(n, -1, np.int32)
    aligned = iuv.copy()
    solvers = set()
    for i in range(1, n):
        r = 0 if reference == "first" else i - 1
        ref_index[i] = r
        ref_map = aligned[r] if reference == "prev_new" else iuv[r]
        if not (iuv[i, ..., 0] > 0).any() or not (ref_map[..., 0] > 0).any():
            log.warning("frame %d or its reference %d has no foreground: empty map", i, r)
            continue
        if method == "surface":
            src, c, solver = match_surface(points[r], points[i], radius)
        else:
            src, c, solver = match_hungarian(ref_map, iuv[i], workers)
        source[i], cost[i] = src, c
        solvers.update(s for s in solver.split(",") if s)
        if reference == "prev_new":
            matched = src >= 0
            aligned[i][matched] = ref_map.reshape(-1, 3)[src[matched]]
    return {
        "iuv": aligned if reference == "prev_new" else iuv,
        "source": source,
        "cost": cost,
        "reference_index": ref_index,
        "solver": ",".join(sorted(solvers)),
    }


def surface_points(
    face_id: np.ndarray, bary: np.ndarray, vertices: np.ndarray, faces: np.ndarray
) -> np.ndarray:
    """Canonical surface point of every pixel: ``(F, g, g, 3)`` float64, NaN for background."""
    fid = face_id.astype(np.int64)
    valid = fid >= 0
    tri = vertices[faces[np.where(valid, fid, 0)]].astype(np.float64)  # (F, g, g, 3, 3)
    pts = (bary.astype(np.float64)[..., None] * tri).sum(-2)
    pts[~valid] = np.nan
    return pts
