"""Cross-frame dense correspondences at one grid (README "Stages > Correspondences"; the official code's
differences from the paper: README "Deviations from the paper and the official code").

Input: downsampled IUV maps ``(F, g, g, 3)`` uint8 (I part 0..24, U, V 0..255) and, for the
``surface`` method, each pixel's canonical surface point ``(F, g, g, 3)`` (NaN = background).
Output per frame i: ``source (g, g)`` int32, the flat index ``row·g + col`` of the matched pixel of
the reference frame, −1 if unmatched; the pair's total cost; for ``prev_new`` the aligned map P̃_i.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

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
    ys, xs = np.nonzero(iuv[..., 0] == part)
    return ys * iuv.shape[1] + xs, _features(iuv, ys, xs)


def _features(iuv: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """[U − mean U, V − mean V, E] of the pixels ``(ys, xs)`` of one part (row-major order)."""
    u = iuv[ys, xs, 1].astype(np.float64)
    v = iuv[ys, xs, 2].astype(np.float64)
    y0, y1, x0, x1 = ys.min(), ys.max(), xs.min(), xs.max()
    h, w = y1 - y0 + 1, x1 - x0 + 1
    # linspace(-1, 1, n) * n / 2 offsets to the bounding-box centre; n = 1 gives −0.5 like the code.
    off_x = np.linspace(-1.0, 1.0, w) * w / 2 if w > 1 else np.array([-0.5])
    off_y = np.linspace(-1.0, 1.0, h) * h / 2 if h > 1 else np.array([-0.5])
    r = np.abs(off_x[xs - x0]) + np.abs(off_y[ys - y0])
    e = r * E_MAX / r.max() if r.max() > 0 else np.zeros_like(r)
    return np.stack([u - u.mean(), v - v.mean(), e], axis=1)


def frame_parts(iuv: np.ndarray) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """``part_features`` of every body part present in one map ``(g, g, 3)``: part → (flat, features).
    One pass over the map sorts its foreground pixels by part (not one full-map mask per part:
    that was 2/3 of the stage's time at 256²)."""
    labels = iuv[..., 0].ravel()
    foreground = np.flatnonzero(labels)
    by_part = foreground[np.argsort(labels[foreground], kind="stable")]  # row-major within a part
    parts, starts = np.unique(labels[by_part], return_index=True)
    ends = np.append(starts[1:], len(by_part))
    out = {}
    for part, start, end in zip(parts, starts, ends):
        flat = by_part[start:end]
        ys, xs = np.divmod(flat, iuv.shape[1])
        out[int(part)] = (flat, _features(iuv, ys, xs))
    return out


def _pair_problems(ref_parts: dict, cur_parts: dict) -> list:
    """The parts both maps show: ``(flat_ref, features_ref, flat_cur, features_cur)`` per part."""
    return [(*ref_parts[p], *cur_parts[p]) for p in sorted(ref_parts.keys() & cur_parts.keys())]


def _scatter(problems: list, results: list, g: int) -> tuple[np.ndarray, float, str]:
    """One frame pair's per-part assignments as ``source`` ``(g, g)``, total cost and solvers."""
    source = np.full(g * g, -1, np.int32)
    for (flat_r, _, flat_c, _), result in zip(problems, results):
        source[flat_c[result.cols]] = flat_r[result.rows]
    cost = float(sum(result.cost for result in results))
    return source.reshape(g, g), cost, ",".join(sorted({result.solver for result in results}))


def match_hungarian(
    ref: np.ndarray, cur: np.ndarray, workers: int = 1, pool=None
) -> tuple[np.ndarray, float, str]:
    """Per-part optimal assignment between reference map ``ref`` and current map ``cur`` ``(g, g, 3)``.

    Returns ``source`` ``(g, g)`` int32, total cost, and the solvers used (comma list). ``workers``
    threads solve the parts in parallel (same result as one); ``pool``: see ``assign_many``.
    """
    problems = _pair_problems(frame_parts(ref), frame_parts(cur))
    results = assign_many([(fr, fc) for _, fr, _, fc in problems], workers=workers, pool=pool)
    return _scatter(problems, results, cur.shape[0])


def _progress(pairs: list, iuv: np.ndarray, reference: str):
    """Progress bar over frame pairs (shown for videos of 16 frames or more)."""
    from tqdm import tqdm

    g = iuv.shape[1]
    return tqdm(total=len(pairs), desc=f"correspond {g}² {reference}", unit="pair", disable=len(pairs) < 15)


def _match_pairs(iuv: np.ndarray, pairs: list[tuple[int, int]], workers: int, pool, progress) -> list:
    """``match_hungarian`` of every ``(reference, frame)`` pair, all parts of all pairs sharing the
    ``workers`` threads (in batches, so that only a few frames' features are held at once); each
    frame's features are computed once."""
    out = []
    batch = max(8, 4 * workers)
    for first in range(0, len(pairs), batch):
        chunk = pairs[first : first + batch]
        features = {f: frame_parts(iuv[f]) for f in sorted({f for pair in chunk for f in pair})}
        problems = [_pair_problems(features[r], features[i]) for r, i in chunk]
        flat = [(fr, fc) for pair in problems for _, fr, _, fc in pair]
        results = iter(assign_many(flat, workers=workers, pool=pool))
        out += [_scatter(pair, [next(results) for _ in pair], iuv.shape[1]) for pair in problems]
        progress.update(len(chunk))
    return out


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
    pairs = []  # (reference, frame) of every frame that has something to match
    for i in range(1, n):
        r = 0 if reference == "first" else i - 1
        ref_index[i] = r
        if not (iuv[i, ..., 0] > 0).any() or not (iuv[r, ..., 0] > 0).any():
            log.warning("frame %d or its reference %d has no foreground: empty map", i, r)
            continue
        pairs.append((r, i))
    # one pool of threads for all frame pairs (starting one costs ~1 ms)
    with _progress(pairs, iuv, reference) as progress, ThreadPoolExecutor(max(workers, 1)) as pool:
        if method == "surface":
            matches = [match_surface(points[r], points[i], radius) for r, i in pairs]
        elif reference == "prev_new":  # each reference is the previous aligned map: one at a time
            matches = []
            for r, i in pairs:
                matches.append(match_hungarian(aligned[r], iuv[i], workers, pool))
                src = matches[-1][0]
                matched = src >= 0
                aligned[i][matched] = aligned[r].reshape(-1, 3)[src[matched]]
                progress.update()
        else:  # independent pairs: all of them share the threads
            matches = _match_pairs(iuv, pairs, workers, pool, progress)
    for (_, i), (src, c, solver) in zip(pairs, matches):
        source[i], cost[i] = src, c
        solvers.update(s for s in solver.split(",") if s)
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
