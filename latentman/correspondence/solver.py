"""Exact, fast rectangular assignment for Euclidean costs between feature sets.

The cost of pairing row ``a`` (features ``fa[a]``, shape ``(n_a, d)``) with column ``b``
(``fb[b]``, shape ``(n_b, d)``) is ``‖fa[a] − fb[b]‖₂``. We want the same optimum as the
Hungarian algorithm on the dense ``(n_a, n_b)`` matrix (``min(n_a, n_b)`` pairs).

Every result is exact; ``Assignment.solver`` says how it was obtained:

``"dense"``
    scipy's ``linear_sum_assignment`` on the full cost matrix (built with
    ``scipy.spatial.distance.cdist``): small parts and problems the sparse path gives up on.
``"sparse-certified"`` (kernels in ``sparse_lap.py``, compiled with numba)
    1. Candidate graph: the ``k`` nearest columns of every row and the ``k_columns`` nearest rows of
       every column (exact, on a table of cells), plus one full matching so the graph always has one.
    2. Optimum on that graph by shortest augmenting paths (Dijkstra over reduced costs), which
       also gives the LP duals ``u`` (rows) and ``v ≤ 0`` (columns, 0 where unmatched).
    3. Certificate against the FULL dense cost (LP duality): the matching is optimal when every
       reduced cost ``c_ab − u_a − v_b ≥ −tol``. A row whose ``u_a`` is below the distance to its
       k-th nearest column is certified by that distance alone (``v ≤ 0``); for the other rows a
       grid search over all columns, pruned by ``dist(row, cell) − max v in cell``, finds every
       violated pair.
    4. Repair: for each violating row and column its least reduced-cost partners join the graph,
       and the next round starts from the previous matching and duals (rows whose duals are still
       feasible keep their column; only the others are searched again). The optimum under the
       right duals is almost always a row's reduced-cost nearest neighbour, so a few rounds do.
       A problem not certified after ``rounds`` rounds goes to the dense solver.

``tol`` is relative to the cost scale (``1e-10 × (1 + max |feature|)``); a certified matching is
within ``2 (n_a + n_b) · tol`` of the optimum (≈ 1e-8 relative on these problems), far below the
1e-6 the tests demand. Rectangular problems are solved with rows = the smaller side.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist

from latentman.correspondence import sparse_lap

# Candidate graph: each row's _K nearest columns and each column's _K_COLUMNS nearest rows
# (measured on synthetic and rendered parts: 10/3 is ~10 % faster than 6/6).
_K = 10
_K_COLUMNS = 3
# Default repair rounds before the dense solver.
_ROUNDS = 12
# Partners per violating row/column added in a repair round.
_REPAIR_K = 4
# Below this many rows (smaller side) the dense solver beats building a graph and certificate.
_DENSE_BELOW = 300


@dataclass
class Assignment:
    """Pairs ``rows[i] ↔ cols[i]`` with total ``cost``; ``solver`` says which path produced it."""

    rows: np.ndarray
    cols: np.ndarray
    cost: float
    solver: str


def dense_cost(fa: np.ndarray, fb: np.ndarray) -> np.ndarray:
    """Euclidean distances ``(n_a, n_b)`` float64 between rows of ``fa`` and ``fb`` (direct
    differences, so exact ties stay exact ties)."""
    return cdist(fa, fb)


def exact_cost(fa: np.ndarray, fb: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> float:
    """Total cost of the given pairs, computed directly (no expansion round-off)."""
    if len(rows) == 0:
        return 0.0
    diff = np.asarray(fa, np.float64)[rows] - np.asarray(fb, np.float64)[cols]
    return float(np.sqrt((diff * diff).sum(1)).sum())


def _empty(solver: str) -> Assignment:
    return Assignment(np.zeros(0, np.int64), np.zeros(0, np.int64), 0.0, solver)


def solve_dense(fa: np.ndarray, fb: np.ndarray) -> Assignment:
    """Exact dense rectangular assignment: scipy's shortest augmenting path on the full matrix.
    (``lap.lapjvh`` was faster on some parts and 4× slower on others; scipy's time is steady.)"""
    n_a, n_b = len(fa), len(fb)
    if n_a == 0 or n_b == 0:
        return _empty("dense")
    cost = dense_cost(fa, fb)
    rows, cols = linear_sum_assignment(cost)
    return Assignment(
        rows.astype(np.int64, copy=False),
        cols.astype(np.int64, copy=False),
        float(cost[rows, cols].sum()),
        "dense",
    )


def candidate_edges(
    fa: np.ndarray, fb: np.ndarray, k: int, k_columns: int = _K_COLUMNS
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each row's ``k`` nearest columns and each column's ``k_columns`` nearest rows (``n_a ≤ n_b``), plus
    one full matching so that the graph always has one (kNN graphs can violate Hall's condition).

    Returns the pairs ``(rows, cols)`` (duplicates allowed) and, per row, the distance to its k-th
    nearest column: every column outside the row's kNN is at least that far (the certificate's
    shortcut).
    """
    n_a, n_b = len(fa), len(fb)
    ka, kb = min(k, n_b), min(k_columns, n_a)
    near_b, dist_ab = sparse_lap.nearest_neighbours(fa, fb, ka, _spacing_cell(fb))
    near_a, _ = sparse_lap.nearest_neighbours(fb, fa, kb, _spacing_cell(fa))
    kth = dist_ab[:, -1].copy()
    if ka == n_b:
        kth = np.full(n_a, np.inf)  # every column is in the graph
    # The full matching: rows and columns paired in order along the first feature axis.
    seed_r = np.argsort(fa[:, 0], kind="stable")
    seed_c = np.argsort(fb[:, 0], kind="stable")[(np.arange(n_a) * n_b) // n_a]
    rows = np.concatenate([np.repeat(np.arange(n_a, dtype=np.int64), ka), near_a.ravel(), seed_r])
    cols = np.concatenate([near_b.ravel(), np.repeat(np.arange(n_b, dtype=np.int64), kb), seed_c])
    return rows, cols, kth


def _spacing_cell(points: np.ndarray) -> float:
    """Cell of the nearest-neighbour table: two point spacings, the features of a part lying on a
    2-D sheet (its pixels) spanned by their two widest ranges; the table holds at most ~4n cells."""
    ranges = np.sort(points.max(0) - points.min(0))
    n = len(points)
    spacing = np.sqrt(ranges[1] * ranges[2] / n) if ranges[1] > 0 else ranges[2] / n
    cell = 2.0 * spacing if spacing > 0 else 1.0
    while np.prod(ranges / cell + 1) > 4 * n + 1000:
        cell *= 2.0
    return float(cell)


def _cell_size(fb: np.ndarray, kth: np.ndarray) -> float:
    """Grid cell of the certificate's search: about two nearest-neighbour spacings, never so
    small that the grid has more than ~8 cells per point along an axis."""
    extent = float((fb.max(0) - fb.min(0)).max())
    if extent <= 0:
        return 1.0
    finite = kth[np.isfinite(kth)]
    spacing = 2.0 * float(np.median(finite)) if len(finite) else 0.0
    return max(spacing, extent / (2.0 * len(fb) ** (1 / 3)))


def _solve_sparse(fa, fb, k, edges, rounds) -> Assignment | None:
    """The sparse-certified path for ``n_a ≤ n_b``; ``None`` when it gives up (caller goes dense)."""
    n_a = len(fa)
    if fa.shape[1] != 3:
        return None  # the certificate's grid search is 3-D (the [U, V, E] features)
    scale = 1.0 + float(max(np.abs(fa).max(), np.abs(fb).max()))
    if edges is None:
        rows, cols, kth = candidate_edges(fa, fb, k, _K_COLUMNS)
    else:
        rows, cols = np.asarray(edges[0], np.int64), np.asarray(edges[1], np.int64)
        kth = np.zeros(n_a)  # nothing known about columns outside the given graph
    row_to_col, status, _ = sparse_lap.solve_certified(
        fa, fb, rows, cols, kth, _cell_size(fb, kth), _REPAIR_K, rounds, 1e-10 * scale
    )
    if status != 0:
        return None
    rows_out = np.arange(n_a)
    return Assignment(rows_out, row_to_col, exact_cost(fa, fb, rows_out, row_to_col), "sparse-certified")


def assign(
    fa: np.ndarray,
    fb: np.ndarray,
    k: int = _K,
    dense_below: int = _DENSE_BELOW,
    edges: tuple[np.ndarray, np.ndarray] | None = None,
    rounds: int = _ROUNDS,
) -> Assignment:
    """Optimal rectangular assignment between feature sets (rows ``fa``, columns ``fb``).

    Returns ``min(n_a, n_b)`` pairs sorted by row. ``solver`` is ``"sparse-certified"`` or
    ``"dense"`` (small problems, or fallback when the sparse graph could not be certified).
    ``dense_below``: problems whose smaller side has at most this many points go straight to the
    dense solver. ``edges`` (rows, cols) replaces the kNN candidate graph (tests use it to force a
    graph that misses the optimum); ``rounds`` bounds the certificate-repair rounds.
    """
    if min(len(fa), len(fb)) == 0:
        return _empty("dense")
    if min(len(fa), len(fb)) <= dense_below and edges is None:
        return solve_dense(fa, fb)
    fa = np.ascontiguousarray(fa, np.float64)
    fb = np.ascontiguousarray(fb, np.float64)
    flip = len(fa) > len(fb)
    if flip:
        fa, fb = fb, fa
        if edges is not None:
            edges = (edges[1], edges[0])
    result = _solve_sparse(fa, fb, k, edges, rounds)
    if result is None:
        result = solve_dense(fa, fb)
    if flip:
        order = np.argsort(result.cols, kind="stable")
        result = Assignment(result.cols[order], result.rows[order], result.cost, result.solver)
    return result


def assign_many(problems, workers: int = 1, **kwargs) -> list[Assignment]:
    """``assign`` on each ``(fa, fb)`` of ``problems`` (e.g. all parts of a frame pair), largest
    first over ``workers`` threads; results in input order. The compiled kernels release the GIL, so
    threads run parts in parallel; ``workers=1`` runs inline."""
    problems = list(problems)
    sizes = [min(len(fa), len(fb)) for fa, fb in problems]
    # Threads only pay off when some part takes the sparse path (a pool costs ~1 ms to start).
    if workers <= 1 or len(problems) < 2 or max(sizes, default=0) <= kwargs.get("dense_below", _DENSE_BELOW):
        return [assign(fa, fb, **kwargs) for fa, fb in problems]
    order = sorted(range(len(problems)), key=lambda i: -sizes[i])
    results: list[Assignment | None] = [None] * len(problems)
    with ThreadPoolExecutor(workers) as pool:
        futures = {i: pool.submit(assign, *problems[i], **kwargs) for i in order}
        for i, future in futures.items():
            results[i] = future.result()
    return results
