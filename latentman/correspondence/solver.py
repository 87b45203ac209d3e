"""Exact, fast rectangular assignment for Euclidean costs between feature sets.

The cost of pairing row ``a`` (features ``fa[a]``, shape ``(n_a, d)``) with column ``b``
(``fb[b]``, shape ``(n_b, d)``) is ``‖fa[a] − fb[b]‖₂``. We want the same optimum as the
Hungarian algorithm on the dense ``(n_a, n_b)`` matrix (``min(n_a, n_b)`` pairs).

Method (exact, never silently worse):

1. Candidate graph: the ``k`` nearest columns of every row and the ``k`` nearest rows of every
   column (``scipy.spatial.cKDTree``).
2. Sparse optimum on that graph (``scipy.sparse.csgraph.min_weight_full_bipartite_matching``).
3. Certificate: dual potentials from shortest paths in the sparse residual graph, then the reduced
   costs ``c_ab − u_a − v_b ≥ −tol`` are checked against the FULL dense cost, blockwise. A feasible
   dual whose value equals the primal cost proves dense optimality (LP duality). Violating pairs
   are added to the graph and the sparse problem re-solved (a few rounds).
4. If the graph has no full matching or the certificate still fails: retry with a larger ``k``,
   then the dense solver (scipy's ``linear_sum_assignment``), exact by construction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import min_weight_full_bipartite_matching
from scipy.spatial import cKDTree

# Rows × columns of dense cost evaluated at once during certification (memory bound).
_BLOCK = 2_000_000
# Rounds of adding certificate-violating pairs before a larger k / the dense solver.
_ROUNDS = 8


@dataclass
class Assignment:
    """Pairs ``rows[i] ↔ cols[i]`` with total ``cost``; ``solver`` says which path produced it."""

    rows: np.ndarray
    cols: np.ndarray
    cost: float
    solver: str


def dense_cost(fa: np.ndarray, fb: np.ndarray) -> np.ndarray:
    """Euclidean distances ``(n_a, n_b)`` float64 between rows of ``fa`` and ``fb``."""
    fa = np.asarray(fa, np.float64)
    fb = np.asarray(fb, np.float64)
    d2 = (fa * fa).sum(1)[:, None] + (fb * fb).sum(1)[None, :] - 2.0 * fa @ fb.T
    return np.sqrt(np.maximum(d2, 0.0))


def exact_cost(fa: np.ndarray, fb: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> float:
    """Total cost of the given pairs, computed directly (no expansion round-off)."""
    if len(rows) == 0:
        return 0.0
    diff = np.asarray(fa, np.float64)[rows] - np.asarray(fb, np.float64)[cols]
    return float(np.sqrt((diff * diff).sum(1)).sum())


def solve_dense(fa: np.ndarray, fb: np.ndarray) -> Assignment:
    """Exact dense rectangular assignment (the fallback); scipy's solver, whose run time is
    predictable (``lap.lapjv`` with ``extend_cost`` took minutes on some 3000-pixel parts)."""
    n_a, n_b = len(fa), len(fb)
    if n_a == 0 or n_b == 0:
        return Assignment(np.zeros(0, np.int64), np.zeros(0, np.int64), 0.0, "dense")
    rows, cols = linear_sum_assignment(dense_cost(fa, fb))
    rows, cols = rows.astype(np.int64), cols.astype(np.int64)
    return Assignment(rows, cols, exact_cost(fa, fb, rows, cols), "dense")


def candidate_edges(fa: np.ndarray, fb: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Union of each row's ``k`` nearest columns and each column's ``k`` nearest rows."""
    ka, kb = min(k, len(fb)), min(k, len(fa))
    _, nb = cKDTree(fb).query(fa, k=ka)
    _, na = cKDTree(fa).query(fb, k=kb)
    nb = np.asarray(nb).reshape(len(fa), ka)
    na = np.asarray(na).reshape(len(fb), kb)
    r = np.concatenate([np.repeat(np.arange(len(fa)), ka), na.ravel()])
    c = np.concatenate([nb.ravel(), np.repeat(np.arange(len(fb)), kb)])
    # A full matching of the rows must exist in the graph (kNN graphs can violate Hall's
    # condition): add one, rows and columns paired in order along the first feature axis.
    if len(fa) <= len(fb):
        seed_r = np.argsort(fa[:, 0], kind="stable")
        seed_c = np.argsort(fb[:, 0], kind="stable")[(np.arange(len(fa)) * len(fb)) // len(fa)]
        r, c = np.concatenate([r, seed_r]), np.concatenate([c, seed_c])
    key = np.unique(r.astype(np.int64) * len(fb) + c)
    return key // len(fb), key % len(fb)


def _sparse_match(fa, fb, er, ec):
    """Full matching of the rows (n_a ≤ n_b) on the candidate edges, or ``None`` if none exists."""
    n_a, n_b = len(fa), len(fb)
    w = np.sqrt(((fa[er] - fb[ec]) ** 2).sum(1))
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
    return row_to_col, w


def _shortest_from_source(src, dst, wt, n) -> np.ndarray | None:
    """Bellman–Ford distances from a virtual source joined to all ``n`` nodes at weight 0.

    Vectorised relaxation rounds with early exit (rounds = depth of the shortest-path tree, small
    here); ``None`` on a negative cycle.
    """
    order = np.argsort(dst, kind="stable")
    src, dst, wt = src[order], dst[order], wt[order]
    heads, starts = np.unique(dst, return_index=True)
    d = np.zeros(n)
    for _ in range(n + 1):
        best = np.minimum.reduceat(d[src] + wt, starts) if len(src) else np.zeros(0)
        improve = best < d[heads] - 1e-12  # ignore round-off-sized changes (zero-cost cycles)
        if not improve.any():
            return d
        d[heads[improve]] = best[improve]
    return None


def certify(fa, fb, er, ec, w, row_to_col, tol) -> tuple[bool, np.ndarray | None]:
    """Prove that ``row_to_col`` (all rows matched, ``n_a ≤ n_b``) is optimal for the DENSE cost.

    Dual (rows matched exactly once, columns at most once): maximise Σu + Σv subject to
    ``u_a + v_b ≤ c_ab`` and ``v_b ≤ 0``. With ``u_a = c_{a,m(a)} − v_{m(a)}`` the constraints become
    difference constraints ``v_b ≤ v_{m(a)} + c_ab − c_{a,m(a)}`` over the sparse edges, ``v_b ≤ 0``;
    shortest paths from a virtual source give the tightest ``v`` (unmatched columns end at 0 when
    the matching is sparse-optimal). The dense check then covers every pair.

    Returns ``(certified, violated)``: ``violated`` ``(m, 2)`` holds, per row with a negative
    reduced cost, violated dense pairs (to add to the graph), or ``None``.
    """
    n_a, n_b = len(fa), len(fb)
    col_to_row = np.full(n_b, -1, np.int64)
    col_to_row[row_to_col] = np.arange(n_a)
    c_match = np.sqrt(((fa - fb[row_to_col]) ** 2).sum(1))
    # Edge m(a) -> b with weight c_ab − c_{a,m(a)}; a virtual source reaches every column at 0.
    keep = ec != row_to_col[er]
    v = _shortest_from_source(row_to_col[er[keep]], ec[keep], w[keep] - c_match[er[keep]], n_b)
    if v is None:
        return False, None
    if not np.isfinite(v).all() or (v > tol).any():
        return False, None
    u = c_match - v[row_to_col]
    # Complementary slackness for unmatched columns: v_b = 0 (else the dual value ≠ primal).
    if (np.abs(v[col_to_row < 0]) > tol).any():
        return False, None
    # Reduced costs c_ab − u_a − v_b with v ≤ 0 can only be negative where c_ab < u_a, so only the
    # columns inside a ball of radius u_a around each row need checking (KD-tree); every other
    # dense pair is certified by that bound. Dense blocks when the balls are too large.
    violated = []
    radius = np.maximum(u + tol, 0.0)
    counts = cKDTree(fb).query_ball_point(fa, radius, return_length=True)
    if counts.sum() < 0.25 * n_a * n_b:
        balls = cKDTree(fb).query_ball_point(fa, radius)
        lens = np.fromiter((len(b) for b in balls), np.int64, n_a)
        if lens.sum():
            rr = np.repeat(np.arange(n_a), lens)
            cc = np.fromiter((j for b in balls for j in b), np.int64, lens.sum())
            red = np.sqrt(((fa[rr] - fb[cc]) ** 2).sum(1)) - u[rr] - v[cc]
            bad = red < -tol
            if bad.any():
                # all violated pairs join the graph (fewer repair rounds than one per row)
                violated.append(np.stack([rr[bad], cc[bad]], 1))
    else:
        step = max(1, _BLOCK // max(n_b, 1))
        for start in range(0, n_a, step):
            block = dense_cost(fa[start : start + step], fb)
            reduced = block - u[start : start + step, None] - v[None, :]
            worst = reduced.argmin(1)
            bad = np.flatnonzero(reduced[np.arange(len(worst)), worst] < -tol)
            if bad.size:
                violated.append(np.stack([bad + start, worst[bad]], 1))
    if violated:
        return False, np.concatenate(violated)
    return True, None


def assign(
    fa: np.ndarray,
    fb: np.ndarray,
    k: int = 8,
    dense_below: int = 400,
    edges: tuple[np.ndarray, np.ndarray] | None = None,
    rounds: int = _ROUNDS,
) -> Assignment:
    """Optimal rectangular assignment between feature sets (rows ``fa``, columns ``fb``).

    Returns ``min(n_a, n_b)`` pairs. ``solver`` is ``"sparse-certified"``, ``"dense"`` (small
    problems or fallback after a failed certificate). ``edges`` (rows, cols) replaces the kNN
    candidate graph (tests use it to force a graph that misses the optimum); ``rounds`` bounds the
    certificate-repair rounds per graph.
    """
    fa = np.ascontiguousarray(fa, np.float64)
    fb = np.ascontiguousarray(fb, np.float64)
    if min(len(fa), len(fb)) <= dense_below and edges is None:
        return solve_dense(fa, fb)
    flip = len(fa) > len(fb)
    if flip:
        fa, fb = fb, fa
        if edges is not None:
            edges = (edges[1], edges[0])
    scale = 1.0 + float(max(np.abs(fa).max(), np.abs(fb).max()))
    tol = 1e-9 * scale * 16
    result = None
    attempts = [edges] if edges is not None else [k, 4 * k]
    for attempt in attempts:
        if isinstance(attempt, tuple):
            er, ec = (np.asarray(a, np.int64) for a in attempt)
        else:
            er, ec = candidate_edges(fa, fb, attempt)
        found = _sparse_match(fa, fb, er, ec)
        if found is None:
            continue
        # Column generation: add the dense pairs that break the certificate and re-solve.
        for _ in range(rounds):
            row_to_col, w = found
            ok, violated = certify(fa, fb, er, ec, w, row_to_col, tol)
            if ok:
                rows = np.arange(len(fa))
                cost = exact_cost(fa, fb, rows, row_to_col)
                result = Assignment(rows, row_to_col, cost, "sparse-certified")
                break
            if violated is None:
                break
            key = np.unique(np.concatenate([er * len(fb) + ec, violated[:, 0] * len(fb) + violated[:, 1]]))
            er, ec = key // len(fb), key % len(fb)
            if len(er) > max(0.2 * len(fa) * len(fb), 50_000):  # nearly dense: dense solver is faster
                break
            found = _sparse_match(fa, fb, er, ec)
        if result is not None:
            break
    if result is None:
        result = solve_dense(fa, fb)
    if flip:
        order = np.argsort(result.cols, kind="stable")
        result = Assignment(result.cols[order], result.rows[order], result.cost, result.solver)
    return result
