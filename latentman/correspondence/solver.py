"""Exact, fast rectangular assignment for Euclidean costs between feature sets.

The cost of pairing row ``a`` (features ``fa[a]``, shape ``(n_a, d)``) with column ``b``
(``fb[b]``, shape ``(n_b, d)``) is ``‖fa[a] − fb[b]‖₂``. We want the same optimum as the
Hungarian algorithm on the dense ``(n_a, n_b)`` matrix (``min(n_a, n_b)`` pairs).

Every result is exact; ``Assignment.solver`` says how it was obtained:

``"unchanged"``
    the two feature sets are identical (a part that did not move): the identity, cost 0.
``"dense"`` (``dense_lap.py``, compiled with numba)
    shortest augmenting paths on the full cost matrix, the method of scipy's
    ``linear_sum_assignment``, from a greedy start: parts of up to 800 px, and problems the sparse
    path gives up on.
``"sparse-certified"`` (kernels in ``sparse_lap.py``, compiled with numba)
    1. Candidate graph: the ``k`` nearest columns of every row and the ``k_columns`` nearest rows of
       every column that no row lists (exact, on a table of cells), plus one full matching so the
       graph always has one.
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
       A problem not certified after ``rounds`` rounds goes to the dense solver, and so does a
       part of up to 1000 px that the first certificate finds hard (more than 10 % of its rows
       violated: its optimum is far from the graph's and dense is cheaper than the rounds).

``tol`` is relative to the cost scale (``1e-10 × (1 + max |feature|)``); a certified matching is
within ``2 (n_a + n_b) · tol`` of the optimum (≈ 1e-8 relative on these problems), far below the
1e-6 the tests demand. Rectangular problems are solved with rows = the smaller side.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist

from latentman.correspondence import dense_lap, sparse_lap

# Candidate graph: each row's _K nearest columns and, for columns no row lists, their _K_COLUMNS
# nearest rows (measured on synthetic and rendered parts: 8-12 / 3-6 are flat, 10/3 fastest).
_K = 10
_K_COLUMNS = 3
# Default repair rounds before the dense solver.
_ROUNDS = 12
# Partners per violating row/column added in a repair round.
_REPAIR_K = 4
# Up to this many rows (smaller side) the compiled dense solver beats building a graph and a
# certificate (measured per size bucket on real and synthetic parts: crossover 800-1000).
_DENSE_BELOW = 800
# A part of up to _HARD_BELOW rows whose first certificate finds more than _HARD_SHARE of its rows
# violated goes dense at once: its optimum is far from the kNN graph and the repair rounds would
# cost more (measured on real and synthetic parts of 700-2200 px: dense wins or ties on every such
# part up to 1000 px; above, dense costs up to 3x more).
_HARD_BELOW = 1000
_HARD_SHARE = 0.1
# assign_many uses threads only above this many rows in all: starting them costs ~1 ms, and at the
# latent grid (parts of ~10 px) a whole batch of frame pairs takes less (measured: 0.5x there).
_THREADS_ABOVE = 6000


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


def _empty(solver: str) -> Assignment:
    return Assignment(np.zeros(0, np.int64), np.zeros(0, np.int64), 0.0, solver)


def solve_dense(fa: np.ndarray, fb: np.ndarray) -> Assignment:
    """Exact dense rectangular assignment: shortest augmenting paths on the full cost matrix
    (compiled, ``dense_lap.py``; the same method as scipy's ``linear_sum_assignment``)."""
    if len(fa) == 0 or len(fb) == 0:
        return _empty("dense")
    fa, fb, flip = _oriented(fa, fb)
    if fa.shape[1] != 3:  # the kernels are 3-D (the [U, V, E] features)
        return _result(fa, fb, linear_sum_assignment(dense_cost(fa, fb))[1], "dense", flip)
    row_to_col, ok = dense_lap.dense_assignment(fa, fb)
    if not ok:
        raise ValueError("assignment costs are not finite (NaN or infinite features)")
    return _result(fa, fb, row_to_col, "dense", flip)


def candidate_edges(
    fa: np.ndarray, fb: np.ndarray, k: int, k_columns: int = _K_COLUMNS
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The sparse path's starting graph (``n_a ≤ n_b``): ``(rows, cols, kth)``, see
    ``sparse_lap.candidate_graph``."""
    return sparse_lap.candidate_graph(
        np.ascontiguousarray(fa, np.float64), np.ascontiguousarray(fb, np.float64), k, k_columns
    )


def _oriented(fa: np.ndarray, fb: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
    """Contiguous float64 features with rows = the smaller side; ``flip`` says they were swapped."""
    fa = np.ascontiguousarray(fa, np.float64)
    fb = np.ascontiguousarray(fb, np.float64)
    if len(fa) > len(fb):
        return fb, fa, True
    return fa, fb, False


def _result(fa, fb, row_to_col, solver: str, flip: bool) -> Assignment:
    """``Assignment`` of the oriented problem, turned back to the caller's rows and columns."""
    rows = np.arange(len(fa))
    row_to_col = np.asarray(row_to_col, np.int64)
    cost = dense_lap.assignment_cost(fa, fb, row_to_col)
    if flip:
        order = np.argsort(row_to_col, kind="stable")
        return Assignment(row_to_col[order], rows[order], cost, solver)
    return Assignment(rows, row_to_col, cost, solver)


def assign(
    fa: np.ndarray,
    fb: np.ndarray,
    k: int = _K,
    dense_below: int = _DENSE_BELOW,
    edges: tuple[np.ndarray, np.ndarray] | None = None,
    rounds: int = _ROUNDS,
    hard_share: float = _HARD_SHARE,
) -> Assignment:
    """Optimal rectangular assignment between feature sets (rows ``fa``, columns ``fb``).

    Returns ``min(n_a, n_b)`` pairs sorted by row. ``solver`` is ``"sparse-certified"`` or
    ``"dense"`` (small problems, or fallback when the sparse graph could not be certified).
    ``dense_below``: problems whose smaller side has at most this many points go straight to the
    dense solver. ``edges`` (rows, cols) replaces the kNN candidate graph (tests use it to force a
    graph that misses the optimum); ``rounds`` bounds the certificate-repair rounds; a part of up to
    1000 rows with more than ``hard_share`` of its rows violated in the first round goes dense.
    """
    if min(len(fa), len(fb)) == 0:
        return _empty("dense")
    if edges is None and np.shape(fa) == np.shape(fb) and np.array_equal(fa, fb):
        # a part that did not change between the frames (common: a limb at rest): the identity
        # costs 0, and no assignment costs less
        identity = np.arange(len(fa))
        return Assignment(identity, identity.copy(), 0.0, "unchanged")
    if (min(len(fa), len(fb)) <= dense_below and edges is None) or np.shape(fa)[1] != 3:
        return solve_dense(fa, fb)
    fa, fb, flip = _oriented(fa, fb)
    tol = 1e-10 * (1.0 + float(max(np.abs(fa).max(), np.abs(fb).max())))
    if edges is None:
        hard = int(hard_share * len(fa)) if len(fa) <= _HARD_BELOW else len(fa)
        row_to_col, status, _ = sparse_lap.solve_part(fa, fb, k, _K_COLUMNS, _REPAIR_K, rounds, tol, hard)
    else:
        rows, cols = (np.asarray(e, np.int64) for e in (edges[::-1] if flip else edges))
        no_shortcut = np.zeros(len(fa))  # nothing is known about columns outside a given graph
        cell = sparse_lap._certificate_cell(fb, no_shortcut)
        row_to_col, status, _ = sparse_lap.solve_certified(
            fa, fb, rows, cols, no_shortcut, cell, _REPAIR_K, rounds, tol, len(fa)
        )
    if status != 0:
        return solve_dense(*((fb, fa) if flip else (fa, fb)))
    return _result(fa, fb, row_to_col, "sparse-certified", flip)


def assign_many(
    problems, workers: int = 1, pool: ThreadPoolExecutor | None = None, **kwargs
) -> list[Assignment]:
    """``assign`` on each ``(fa, fb)`` of ``problems`` (e.g. all parts of some frame pairs), largest
    first over ``workers`` threads; results in input order. The compiled kernels release the GIL, so
    threads run parts in parallel; ``workers=1`` runs inline. ``pool``: an executor with at least
    ``workers`` threads to reuse across calls (else one is started for this call)."""
    problems = list(problems)
    sizes = [min(len(fa), len(fb)) for fa, fb in problems]
    if workers <= 1 or len(problems) < 2 or sum(sizes) <= _THREADS_ABOVE:
        return [assign(fa, fb, **kwargs) for fa, fb in problems]
    order = iter(sorted(range(len(problems)), key=lambda i: -sizes[i]))
    results: list[Assignment | None] = [None] * len(problems)
    lock = threading.Lock()

    def take_next() -> int | None:
        with lock:
            return next(order, None)

    def work() -> None:  # each thread takes the largest part left: one task per thread, not per part
        while (i := take_next()) is not None:
            results[i] = assign(*problems[i], **kwargs)

    if pool is None:
        with ThreadPoolExecutor(workers) as own_pool:
            return assign_many(problems, workers, own_pool, **kwargs)
    for future in [pool.submit(work) for _ in range(workers)]:
        future.result()
    return results


def compile_kernels() -> None:
    """Compile (or load from numba's on-disk cache) the dense and sparse kernels now, with the
    argument types they are called with, so that the first real problem is not charged for it
    (benchmarks call this)."""
    rng = np.random.default_rng(0)
    fa = rng.normal(size=(6, 3))
    fb = np.vstack([fa[::-1], rng.normal(size=(2, 3))])
    rows = np.repeat(np.arange(6), 2).astype(np.int64)
    cols = np.tile(np.arange(2), 6).astype(np.int64)
    cols[::2] = np.arange(6)
    sparse_lap.solve_certified(fa, fb, rows, cols, np.zeros(6), 1.0, 2, 3, 1e-9, 6)
    sparse_lap.solve_part(fa, fb, 3, 2, 2, 3, 1e-9, 6)
    dense_lap.assignment_cost(fa, fb, dense_lap.dense_assignment(fa, fb)[0])
