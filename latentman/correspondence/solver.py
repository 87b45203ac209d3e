"""Exact, fast rectangular assignment for Euclidean costs between feature sets.

The cost of pairing row ``a`` (features ``fa[a]``, shape ``(n_a, d)``) with column ``b``
(``fb[b]``, shape ``(n_b, d)``) is ``‖fa[a] − fb[b]‖₂``. We want the same optimum as the
Hungarian algorithm on the dense ``(n_a, n_b)`` matrix (``min(n_a, n_b)`` pairs).

Every result is exact; ``Assignment.solver`` says how it was obtained:

``"dense"``
    Jonker–Volgenant on the full cost matrix (``lap.lapjvh``, rectangular without padding; about
    2× faster than scipy's ``linear_sum_assignment`` on these problems), the matrix built with
    ``scipy.spatial.distance.cdist``. Small parts and problems the sparse path gives up on.
``"sparse-certified"``
    1. Candidate graph: the ``k`` nearest columns of every row and the ``k`` nearest rows of every
       column (``cKDTree``), plus one full matching so the graph always has one.
    2. Sparse optimum on that graph (``scipy.sparse.csgraph.min_weight_full_bipartite_matching``).
    3. Certificate against the FULL dense cost (LP duality): duals ``v ≤ 0`` from shortest paths in
       the residual graph, ``u_a = c_{a,m(a)} − v_{m(a)}``; the matching is optimal when every
       reduced cost ``c_ab − u_a − v_b ≥ −tol`` and ``v_b = 0`` for unmatched columns. Checking all
       pairs is cheap: a row whose ``u_a`` is below the distance to its k-th nearest column is
       certified by that distance alone; the remaining rows only need the columns inside a 4-D ball
       (columns embedded as ``(fb_b, −v_b)``, since ``c_ab − v_b ≥ ‖(fa_a, 0) − (fb_b, −v_b)‖``).
    4. Violating pairs join the graph and the sparse problem is re-solved (``rounds`` times); a
       problem with many violators (the optimum is far from the nearest neighbours) goes to the
       dense solver at once.

``tol`` is relative to the cost scale (``1e-10 × (1 + max |feature|)``); a certified matching is
within ``(n_a + n_b) · tol`` of the optimum (≈ 1e-8 relative on these problems), far below the
1e-6 the tests demand. Rectangular problems are solved with rows = the smaller side.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import lap
import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import min_weight_full_bipartite_matching
from scipy.spatial import cKDTree
from scipy.spatial.distance import cdist

# Rows × columns of dense cost evaluated at once during certification (memory bound).
_BLOCK = 2_000_000
# Default rounds of adding certificate-violating pairs before the dense solver.
_ROUNDS = 3
# A round with more violating pairs than this share of the rows: the kNN graph is far from the
# optimum (a part whose shape changed a lot) and the dense solver is faster than repairing.
_HARD_SHARE = 0.25
# Below this many rows (smaller side) the dense solver beats building a graph and certificate.
_DENSE_BELOW = 700


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
    return cdist(np.asarray(fa, np.float64), np.asarray(fb, np.float64))


def exact_cost(fa: np.ndarray, fb: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> float:
    """Total cost of the given pairs, computed directly (no expansion round-off)."""
    if len(rows) == 0:
        return 0.0
    diff = np.asarray(fa, np.float64)[rows] - np.asarray(fb, np.float64)[cols]
    return float(np.sqrt((diff * diff).sum(1)).sum())


def _empty(solver: str) -> Assignment:
    return Assignment(np.zeros(0, np.int64), np.zeros(0, np.int64), 0.0, solver)


def solve_dense(fa: np.ndarray, fb: np.ndarray) -> Assignment:
    """Exact dense rectangular assignment: Jonker–Volgenant (``lap.lapjvh``, no zero padding,
    which made ``lap.lapjv(extend_cost=True)`` take minutes on some parts), scipy for tiny ones."""
    n_a, n_b = len(fa), len(fb)
    if n_a == 0 or n_b == 0:
        return _empty("dense")
    cost = dense_cost(fa, fb)
    if min(n_a, n_b) < 4:
        rows, cols = linear_sum_assignment(cost)
    else:
        rows, cols = lap.lapjvh(cost, extend_cost=True, return_cost=False)
    rows, cols = np.asarray(rows, np.int64), np.asarray(cols, np.int64)
    order = np.argsort(rows, kind="stable")
    rows, cols = rows[order], cols[order]
    if len(rows) != min(n_a, n_b) or len(np.unique(cols)) != len(cols):  # never trust silently
        rows, cols = linear_sum_assignment(cost)
    return Assignment(rows, cols, exact_cost(fa, fb, rows, cols), "dense")


def candidate_edges(fa: np.ndarray, fb: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Union of each row's ``k`` nearest columns and each column's ``k`` nearest rows (``n_a ≤ n_b``).

    Returns the sorted, unique edge keys ``row·n_b + col`` and, per row, the distance to its k-th
    nearest column (every column outside the graph is at least that far: the certificate uses it).
    """
    n_a, n_b = len(fa), len(fb)
    ka, kb = min(k, n_b), min(k, n_a)
    dist_ab, near_b = cKDTree(fb).query(fa, k=ka)
    _, near_a = cKDTree(fa).query(fb, k=kb)
    near_b = np.asarray(near_b).reshape(n_a, ka)
    near_a = np.asarray(near_a).reshape(n_b, kb)
    kth = np.asarray(dist_ab, np.float64).reshape(n_a, ka)[:, -1]
    if ka == n_b:
        kth = np.full(n_a, np.inf)  # every column is in the graph
    # A full matching of the rows must exist in the graph (kNN graphs can violate Hall's
    # condition): add one, rows and columns paired in order along the first feature axis.
    seed_r = np.argsort(fa[:, 0], kind="stable")
    seed_c = np.argsort(fb[:, 0], kind="stable")[(np.arange(n_a) * n_b) // n_a]
    keys = np.concatenate(
        [
            np.repeat(np.arange(n_a, dtype=np.int64), ka) * n_b + near_b.ravel(),
            near_a.ravel().astype(np.int64) * n_b + np.repeat(np.arange(n_b, dtype=np.int64), kb),
            seed_r.astype(np.int64) * n_b + seed_c,
        ]
    )
    return np.unique(keys), kth


def _sparse_match(n_a: int, n_b: int, er: np.ndarray, ec: np.ndarray, w: np.ndarray) -> np.ndarray | None:
    """Full matching of the rows (n_a ≤ n_b) on the edges (row → column array), or ``None``."""
    # +1: explicit zeros would be dropped as non-edges; a constant per pair keeps the optimum
    # of a full row matching unchanged.
    graph = csr_matrix((w + 1.0, (er, ec)), shape=(n_a, n_b))
    try:
        r, c = min_weight_full_bipartite_matching(graph)
    except ValueError:
        return None
    row_to_col = np.full(n_a, -1, np.int64)
    row_to_col[r] = c
    if (row_to_col < 0).any():
        return None
    return row_to_col


def _shortest_from_source(src, dst, wt, n, tol) -> np.ndarray | None:
    """Bellman–Ford distances from a virtual source joined to all ``n`` nodes at weight 0.

    Vectorised relaxation rounds with early exit (rounds = depth of the shortest-path tree, a few
    dozen here); ``None`` on a negative cycle (the matching is not optimal on its own graph).
    """
    d = np.zeros(n)
    if len(src) == 0:
        return d
    order = np.argsort(dst, kind="stable")
    src, dst, wt = src[order], dst[order], wt[order]
    heads, starts = np.unique(dst, return_index=True)
    for _ in range(n + 1):
        best = np.minimum.reduceat(d[src] + wt, starts)
        improve = best < d[heads] - 1e-3 * tol  # ignore round-off-sized changes (zero-cost cycles)
        if not improve.any():
            return d
        d[heads[improve]] = best[improve]
    return None


def certify(
    fa: np.ndarray,
    fb: np.ndarray,
    er: np.ndarray,
    ec: np.ndarray,
    w: np.ndarray,
    row_to_col: np.ndarray,
    kth: np.ndarray,
    tol: float,
) -> tuple[bool, np.ndarray | None]:
    """Prove that ``row_to_col`` (all rows matched, ``n_a ≤ n_b``) is optimal for the DENSE cost.

    Dual (rows matched exactly once, columns at most once): maximise Σu + Σv subject to
    ``u_a + v_b ≤ c_ab`` and ``v_b ≤ 0``. With ``u_a = c_{a,m(a)} − v_{m(a)}`` the constraints on the
    graph are difference constraints ``v_b ≤ v_{m(a)} + c_ab − c_{a,m(a)}``, ``v_b ≤ 0``; shortest
    paths from a virtual source give the largest such ``v``. The dual value equals the primal cost
    iff ``v_b = 0`` on unmatched columns; then every dense pair is checked (cheaply, see module
    docstring). ``kth[a]``: no column outside the graph is closer to row ``a`` than this.

    Returns ``(certified, violated)``: ``violated`` holds edge keys ``row·n_b + col`` of dense pairs
    with a negative reduced cost (to add to the graph), sorted by row, at most 16 per row; ``None``
    when the matching is not optimal even on its own graph.
    """
    n_b = len(fb)
    c_match = np.sqrt(((fa - fb[row_to_col]) ** 2).sum(1))
    keep = ec != row_to_col[er]
    v = _shortest_from_source(row_to_col[er[keep]], ec[keep], w[keep] - c_match[er[keep]], n_b, tol)
    if v is None or not np.isfinite(v).all():
        return False, None
    unmatched = np.ones(n_b, bool)
    unmatched[row_to_col] = False
    if (np.abs(v[unmatched]) > tol).any():  # complementary slackness for unmatched columns
        return False, None
    u = c_match - v[row_to_col]
    # Pairs on the graph satisfy the constraints by construction; columns outside a row's graph
    # neighbourhood are ≥ kth away, and v ≤ 0, so rows with u ≤ kth are certified outright.
    open_rows = np.flatnonzero(u > kth + tol)
    if len(open_rows) == 0:
        return True, None
    pairs_r, pairs_c = [], []
    # c_ab − v_b ≥ ‖(fa_a, 0) − (fb_b, −v_b)‖: only columns within u_a of the row in 4-D can violate.
    tree = cKDTree(np.column_stack([fb, -v]))
    query = np.column_stack([fa[open_rows], np.zeros(len(open_rows))])
    counts = tree.query_ball_point(query, u[open_rows] + tol, return_length=True)
    if counts.sum() < 0.25 * len(open_rows) * n_b:
        balls = tree.query_ball_point(query, u[open_rows] + tol)
        lens = np.asarray(counts, np.int64)
        if lens.sum():
            rr = np.repeat(open_rows, lens)
            cc = np.fromiter((j for b in balls for j in b), np.int64, lens.sum())
            pairs_r.append(rr)
            pairs_c.append(cc)
    else:  # balls cover most columns: dense rows, blockwise
        step = max(1, _BLOCK // max(n_b, 1))
        for start in range(0, len(open_rows), step):
            rows = open_rows[start : start + step]
            block = dense_cost(fa[rows], fb) - u[rows, None] - v[None, :]
            ri, ci = np.nonzero(block < -tol)
            pairs_r.append(rows[ri])
            pairs_c.append(ci)
    if not pairs_r:
        return True, None
    rr, cc = np.concatenate(pairs_r), np.concatenate(pairs_c)
    red = np.sqrt(((fa[rr] - fb[cc]) ** 2).sum(1)) - u[rr] - v[cc]
    bad = red < -tol
    if not bad.any():
        return True, None
    rr, cc, red = rr[bad], cc[bad], red[bad]
    # Keep the 16 most negative per row: enough to fix the row, and the graph stays sparse.
    order = np.lexsort((red, rr))
    rr, cc = rr[order], cc[order]
    first = np.r_[0, np.flatnonzero(np.diff(rr)) + 1]
    rank = np.arange(len(rr)) - np.repeat(first, np.diff(np.r_[first, len(rr)]))
    keep = rank < 16
    return False, rr[keep] * n_b + cc[keep]


def _solve_sparse(fa, fb, k, edges, rounds) -> Assignment | None:
    """The sparse-certified path for ``n_a ≤ n_b``; ``None`` when it gives up (caller goes dense)."""
    n_a, n_b = len(fa), len(fb)
    scale = 1.0 + float(max(np.abs(fa).max(), np.abs(fb).max()))
    tol = 1e-10 * scale
    if edges is None:
        keys, kth = candidate_edges(fa, fb, k)
    else:
        keys = np.unique(np.asarray(edges[0], np.int64) * n_b + np.asarray(edges[1], np.int64))
        kth = np.zeros(n_a)  # nothing known about columns outside the given graph
    for round_index in range(rounds + 1):
        er, ec = keys // n_b, keys % n_b
        w = np.sqrt(((fa[er] - fb[ec]) ** 2).sum(1))
        row_to_col = _sparse_match(n_a, n_b, er, ec, w)
        if row_to_col is None:
            return None
        ok, violated = certify(fa, fb, er, ec, w, row_to_col, kth, tol)
        if ok:
            rows = np.arange(n_a)
            return Assignment(rows, row_to_col, exact_cost(fa, fb, rows, row_to_col), "sparse-certified")
        if violated is None or round_index == rounds:
            return None
        if edges is None and len(violated) > _HARD_SHARE * n_a:
            return None
        keys = np.union1d(keys, violated)
    return None


def assign(
    fa: np.ndarray,
    fb: np.ndarray,
    k: int = 6,
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
    fa = np.ascontiguousarray(fa, np.float64)
    fb = np.ascontiguousarray(fb, np.float64)
    if min(len(fa), len(fb)) == 0:
        return _empty("dense")
    if min(len(fa), len(fb)) <= dense_below and edges is None:
        return solve_dense(fa, fb)
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
    first over ``workers`` threads; results in input order. The KD-tree queries and numpy kernels
    release the GIL, so 2 threads help a little on 2 cores; ``workers=1`` runs inline."""
    problems = list(problems)
    if workers <= 1 or len(problems) < 2:
        return [assign(fa, fb, **kwargs) for fa, fb in problems]
    order = sorted(range(len(problems)), key=lambda i: -min(len(problems[i][0]), len(problems[i][1])))
    results: list[Assignment | None] = [None] * len(problems)
    with ThreadPoolExecutor(workers) as pool:
        futures = {i: pool.submit(assign, *problems[i], **kwargs) for i in order}
        for i, future in futures.items():
            results[i] = future.result()
    return results
