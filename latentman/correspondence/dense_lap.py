"""Compiled dense exact assignment for small parts (numba; called by ``solver.py``).

``dense_assignment`` builds the full Euclidean cost matrix and solves it by shortest augmenting
paths: the same method as scipy's ``linear_sum_assignment`` (Crouse's, after Jonker–Volgenant),
started from a greedy row reduction (every row's cheapest column, ``u`` = that cost, ``v = 0``),
which on these near-identical consecutive frames already matches ~90 % of the rows. Compiled, and
without the per-call overhead of ``cdist`` + scipy, it is ~2× scipy on parts of up to a few hundred
pixels (benchmarks/bench_correspondence.py), and it releases the GIL so parts run on threads.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def euclidean_cost(fa, fb):
    """``(n_a, n_b)`` matrix of ``‖fa[a] − fb[b]‖₂`` (3-D features, direct differences)."""
    n_a, n_b = len(fa), len(fb)
    cost = np.empty((n_a, n_b))
    for a in range(n_a):
        x0, x1, x2 = fa[a, 0], fa[a, 1], fa[a, 2]
        for b in range(n_b):
            d0 = x0 - fb[b, 0]
            d1 = x1 - fb[b, 1]
            d2 = x2 - fb[b, 2]
            cost[a, b] = np.sqrt(d0 * d0 + d1 * d1 + d2 * d2)
    return cost


@njit(cache=True, nogil=True)
def dense_assignment(fa, fb):
    """Optimal assignment of every row of ``fa`` to a distinct column of ``fb`` (``n_a ≤ n_b``)
    under the Euclidean cost. Returns ``(row_to_col, ok)``; ``ok`` is False only for non-finite
    costs."""
    cost = euclidean_cost(fa, fb)
    n_a, n_b = cost.shape
    u = np.empty(n_a)
    v = np.zeros(n_b)
    row_to_col = np.full(n_a, -1, np.int64)
    col_to_row = np.full(n_b, -1, np.int64)
    # Greedy row reduction: u_a = min_b c_ab keeps every reduced cost ≥ 0 with v = 0.
    for a in range(n_a):
        best, best_b = np.inf, -1
        for b in range(n_b):
            if cost[a, b] < best:
                best, best_b = cost[a, b], b
        if best_b < 0:
            return row_to_col, False
        u[a] = best
        if col_to_row[best_b] < 0:
            col_to_row[best_b] = a
            row_to_col[a] = best_b
    shortest = np.empty(n_b)
    path = np.empty(n_b, np.int64)
    remaining = np.empty(n_b, np.int64)
    scanned_rows = np.empty(n_a, np.int64)
    scanned_cols = np.empty(n_b, np.int64)
    for start in range(n_a):
        if row_to_col[start] >= 0:
            continue
        # Dijkstra over reduced costs from the free row until it reaches a free column.
        for b in range(n_b):
            shortest[b] = np.inf
            remaining[b] = b
        n_remaining, n_rows, n_cols = n_b, 0, 0
        row, reach, sink = start, 0.0, -1
        while sink < 0:
            scanned_rows[n_rows] = row
            n_rows += 1
            lowest, lowest_at = np.inf, -1
            u_row = u[row]
            for i in range(n_remaining):
                b = remaining[i]
                length = reach + cost[row, b] - u_row - v[b]
                if length < shortest[b]:
                    path[b] = row
                    shortest[b] = length
                # ties go to a free column: the search ends sooner
                if shortest[b] < lowest or (shortest[b] == lowest and col_to_row[b] < 0):
                    lowest, lowest_at = shortest[b], i
            if lowest == np.inf:
                return row_to_col, False
            reach = lowest
            b = remaining[lowest_at]
            scanned_cols[n_cols] = b
            n_cols += 1
            n_remaining -= 1
            remaining[lowest_at] = remaining[n_remaining]
            if col_to_row[b] < 0:
                sink = b
            else:
                row = col_to_row[b]
        # Dual update keeps reduced costs ≥ 0 (and v ≤ 0, 0 on unmatched columns), then augment.
        u[start] += reach
        for i in range(1, n_rows):
            a = scanned_rows[i]
            u[a] += reach - shortest[row_to_col[a]]
        for i in range(n_cols):
            b = scanned_cols[i]
            v[b] -= reach - shortest[b]
        b = sink
        while True:
            a = path[b]
            col_to_row[b] = a
            previous = row_to_col[a]
            row_to_col[a] = b
            if a == start:
                break
            b = previous
    return row_to_col, True
