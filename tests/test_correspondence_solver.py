"""The exact assignment solver (compiled sparse path + LP-duality certificate, compiled dense path)
against scipy's Hungarian optimum."""

import threading

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from latentman.correspondence import solver, sparse_lap
from latentman.correspondence.solver import assign, assign_many, candidate_edges, dense_cost, solve_dense


def scipy_optimum(fa, fb):
    c = dense_cost(fa, fb)
    r, k = linear_sum_assignment(c)
    return c, float(c[r, k].sum())


def check_valid(result, fa, fb):
    n = min(len(fa), len(fb))
    assert len(result.rows) == len(result.cols) == n
    assert len(np.unique(result.rows)) == n and len(np.unique(result.cols)) == n
    assert (result.rows < len(fa)).all() and (result.cols < len(fb)).all()
    c = dense_cost(fa, fb)
    assert result.cost == pytest.approx(c[result.rows, result.cols].sum(), rel=1e-9, abs=1e-12)


def iuv_like(rng, na, nb, noise=3.0):
    # structured like IUV features: centred U,V plus a spatial term, with noise
    fa = rng.normal(size=(na, 3)) * 40
    fb = fa[rng.integers(0, na, nb)] + rng.normal(size=(nb, 3)) * noise
    return fa, fb


@pytest.mark.parametrize(
    "na,nb",
    [(1, 1), (1, 5), (7, 3), (40, 40), (65, 65), (80, 120), (150, 90), (300, 300), (250, 400), (900, 860)],
)
def test_optimum_equals_scipy_sparse_path(na, nb):
    rng = np.random.default_rng(na * 1000 + nb)
    fa, fb = iuv_like(rng, na, nb)
    result = assign(fa, fb, dense_below=8)
    _, best = scipy_optimum(fa, fb)
    check_valid(result, fa, fb)
    assert abs(result.cost - best) <= 1e-6 * max(1.0, best)
    if min(na, nb) > 8:
        assert result.solver in ("sparse-certified", "dense")


@pytest.mark.parametrize("na,nb", [(30, 30), (200, 170), (170, 200), (500, 520)])
def test_optimum_equals_scipy_dense_path_and_uniform_random(na, nb):
    rng = np.random.default_rng(na + 7 * nb)
    fa, fb = rng.uniform(0, 255, (na, 3)), rng.uniform(0, 255, (nb, 3))  # no structure: hard
    _, best = scipy_optimum(fa, fb)
    for result in (assign(fa, fb), assign(fa, fb, dense_below=8), solve_dense(fa, fb)):
        check_valid(result, fa, fb)
        assert abs(result.cost - best) <= 1e-6 * max(1.0, best)


def test_large_shifted_part_is_certified_sparse():
    # a big, slightly deformed part: the certificate must hold on the kNN graph (the fast path)
    rng = np.random.default_rng(3)
    grid = np.stack(np.meshgrid(np.arange(40.0), np.arange(40.0), indexing="ij"), -1).reshape(-1, 2)
    fa = np.column_stack([grid * 6 - 117, np.abs(grid - 19.5).sum(1)])
    keep = rng.random(len(fa)) > 0.05
    fb = fa[keep] + rng.normal(0, 0.8, (keep.sum(), 3))
    result = assign(fa, fb)
    _, best = scipy_optimum(fa, fb)
    check_valid(result, fa, fb)
    assert result.solver == "sparse-certified"
    assert abs(result.cost - best) <= 1e-6 * best


def test_rectangular_both_ways_give_transposed_answers():
    rng = np.random.default_rng(11)
    fa, fb = iuv_like(rng, 260, 310)
    ab = assign(fa, fb, dense_below=8)
    ba = assign(fb, fa, dense_below=8)
    assert ab.cost == pytest.approx(ba.cost, rel=1e-9)
    assert np.all(np.diff(ba.rows) > 0)  # sorted by row after the internal flip
    check_valid(ba, fb, fa)


def test_empty_problems():
    for fa, fb in [(np.zeros((0, 3)), np.ones((5, 3))), (np.ones((4, 3)), np.zeros((0, 3)))]:
        result = assign(fa, fb)
        assert len(result.rows) == len(result.cols) == 0 and result.cost == 0.0


def test_degenerate_ties_duplicates_and_scale():
    # integer U,V with many identical features (ties everywhere), and a huge/small cost scale: the
    # certificate's tolerance is relative, so neither breaks it
    rng = np.random.default_rng(5)
    fa = rng.integers(0, 6, (600, 3)).astype(float)
    fb = rng.integers(0, 6, (640, 3)).astype(float)
    for scale in (1.0, 1e-4, 1e5):
        result = assign(fa * scale, fb * scale, dense_below=8)
        _, best = scipy_optimum(fa * scale, fb * scale)
        check_valid(result, fa * scale, fb * scale)
        assert abs(result.cost - best) <= 1e-6 * max(best, 1e-300)
    same = assign(fa, fa.copy(), dense_below=8)
    assert same.cost == 0.0


def test_graph_without_full_matching_falls_back_to_dense():
    fa = np.array([[0.0, 0, 0], [1.0, 0, 0], [2.0, 0, 0]])
    fb = np.array([[0.0, 0, 0], [1.0, 0, 0], [2.0, 0, 0], [3.0, 0, 0]])
    # rows 0 and 1 may only use column 0: Hall's condition fails, no full matching on the graph
    result = assign(fa, fb, edges=(np.array([0, 1, 2]), np.array([0, 0, 2])))
    assert result.solver == "dense" and result.cost == pytest.approx(0.0)
    # the automatic kNN graph always contains a full matching (seeded), even for clustered data
    rng = np.random.default_rng(2)
    fa = np.vstack([rng.normal(0, 0.1, (300, 3)), rng.normal(50, 0.1, (10, 3))])
    fb = np.vstack([rng.normal(0, 0.1, (10, 3)), rng.normal(50, 0.1, (300, 3))])
    _, _, kth = candidate_edges(fa, fb, 3)
    assert len(kth) == len(fa) and (kth > 0).all()
    result = assign(fa, fb, dense_below=8)
    _, best = scipy_optimum(fa, fb)
    assert abs(result.cost - best) <= 1e-6 * best


def test_certificate_rejects_a_graph_that_misses_the_optimum():
    # 1-D features: the identity is expensive, the swap is optimal; the graph only holds the identity
    fa = np.array([[0.0, 0, 0], [10.0, 0, 0]])
    fb = np.array([[10.0, 0, 0], [0.0, 0, 0]])
    result = assign(fa, fb, edges=(np.array([0, 1]), np.array([0, 1])), rounds=0)
    assert result.solver == "dense"
    assert result.cost == pytest.approx(0.0)
    assert result.cols[result.rows == 0][0] == 1
    # with repair rounds the violated pairs join the graph and the re-solved optimum certifies
    repaired = assign(fa, fb, edges=(np.array([0, 1]), np.array([0, 1])))
    assert repaired.solver == "sparse-certified" and repaired.cost == pytest.approx(0.0)
    # the same graph with the optimum in it certifies at once
    ok = assign(fa, fb, edges=(np.array([0, 1, 0, 1]), np.array([0, 1, 1, 0])), rounds=0)
    assert ok.solver == "sparse-certified" and ok.cost == pytest.approx(0.0)


def test_certificate_rejects_wrong_candidates_on_a_rectangular_problem():
    # a graph of deliberately wrong candidates (each row's FARTHEST columns): never certified as is
    rng = np.random.default_rng(9)
    fa, fb = iuv_like(rng, 60, 75)
    c, best = scipy_optimum(fa, fb)
    far = np.argsort(-c, axis=1)[:, :3]
    edges = (np.repeat(np.arange(60), 3), far.ravel())
    result = assign(fa, fb, edges=edges, rounds=0)
    assert result.solver == "dense"
    assert abs(result.cost - best) <= 1e-6 * best


def test_assign_many_matches_assign_in_order(monkeypatch):
    monkeypatch.setattr(solver, "_THREADS_ABOVE", 0)  # threads even for this small batch
    rng = np.random.default_rng(4)
    problems = [iuv_like(rng, n, m) for n, m in [(50, 60), (900, 880), (5, 2), (300, 320)]]
    problems.append((np.zeros((0, 3)), np.ones((3, 3))))
    serial = [assign(fa, fb) for fa, fb in problems]
    threads_used = set()

    def recording_assign(fa, fb, **kwargs):
        threads_used.add(threading.get_ident())
        return assign(fa, fb, **kwargs)

    monkeypatch.setattr(solver, "assign", recording_assign)
    for workers in (1, 2):
        threads_used.clear()
        many = assign_many(problems, workers=workers)
        assert (threading.get_ident() in threads_used) == (workers == 1)
        for a, b in zip(serial, many):
            np.testing.assert_array_equal(a.rows, b.rows)
            np.testing.assert_array_equal(a.cols, b.cols)
            assert a.cost == b.cost


def test_dense_kernel_equals_scipy_with_ties_both_orientations_and_rejects_nan():
    rng = np.random.default_rng(11)
    for na, nb in [(1, 1), (1, 4), (4, 1), (37, 37), (120, 90), (90, 120)]:
        fa = rng.integers(0, 4, (na, 3)).astype(float)  # many exact ties
        fb = rng.integers(0, 4, (nb, 3)).astype(float)
        result = solve_dense(fa, fb)
        _, best = scipy_optimum(fa, fb)
        check_valid(result, fa, fb)
        assert result.solver == "dense"
        assert abs(result.cost - best) <= 1e-9 * max(1.0, best)
    with pytest.raises(ValueError, match="not finite"):
        solve_dense(np.array([[np.nan, 0.0, 0.0]]), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="not finite"):
        solve_dense(np.zeros((2, 3)), np.array([[np.inf, 0.0, 0.0], [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]]))


def test_unchanged_part_is_the_identity_and_a_changed_one_is_solved():
    rng = np.random.default_rng(12)
    fa, _ = iuv_like(rng, 500, 500)
    same = assign(fa, fa.copy())
    assert same.solver == "unchanged" and same.cost == 0.0
    np.testing.assert_array_equal(same.rows, np.arange(500))
    np.testing.assert_array_equal(same.cols, np.arange(500))
    moved = fa.copy()
    moved[17, 0] += 0.5
    result = assign(fa, moved, dense_below=8)
    _, best = scipy_optimum(fa, moved)
    assert result.solver == "sparse-certified"
    assert result.cost == pytest.approx(0.5) and abs(result.cost - best) <= 1e-9
    shuffled = fa[rng.permutation(500)]  # the same points in another order: solved, still cost 0
    result = assign(fa, shuffled, dense_below=8)
    assert result.solver == "sparse-certified" and result.cost == pytest.approx(0.0, abs=1e-9)


# --- the compiled kernels (sparse_lap) on their own -------------------------------------------


def complete_graph(fa, fb):
    rows = np.repeat(np.arange(len(fa)), len(fb)).astype(np.int64)
    cols = np.tile(np.arange(len(fb)), len(fa)).astype(np.int64)
    return sparse_lap.build_graph(len(fa), rows, cols, fa, fb)


def reduced_costs(fa, fb, row_to_col, v):
    c = dense_cost(fa, fb)
    u = c[np.arange(len(fa)), row_to_col] - v[row_to_col]
    return c - u[:, None] - v[None, :]


@pytest.mark.parametrize("na,nb", [(1, 1), (5, 5), (30, 41), (60, 60), (120, 200)])
def test_shortest_augmenting_path_is_optimal_with_valid_duals(na, nb):
    rng = np.random.default_rng(na * 31 + nb)
    fa, fb = rng.uniform(0, 50, (na, 3)), rng.uniform(0, 50, (nb, 3))
    indptr, indices, weights = complete_graph(fa, fb)
    row_to_col, v, ok = sparse_lap.shortest_augmenting_path(
        indptr, indices, weights, np.zeros(nb), np.full(na, -1, np.int64)
    )
    assert ok and len(np.unique(row_to_col)) == na
    c, best = scipy_optimum(fa, fb)
    assert c[np.arange(na), row_to_col].sum() == pytest.approx(best, rel=1e-12)
    # the LP duals prove it: reduced costs ≥ 0, v ≤ 0 and exactly 0 on unmatched columns
    assert reduced_costs(fa, fb, row_to_col, v).min() >= -1e-9
    unmatched = np.setdiff1d(np.arange(nb), row_to_col)
    assert (v <= 0).all() and (v[unmatched] == 0).all()


def test_warm_start_then_release_of_stale_columns_restores_a_proof():
    # Warm start with arbitrary (non-optimal) column duals: columns left unmatched keep a dual < 0,
    # which the reverse searches must bring back to 0 while keeping the matching optimal.
    rng = np.random.default_rng(8)
    fa, fb = rng.uniform(0, 30, (40, 3)), rng.uniform(0, 30, (55, 3))
    indptr, indices, weights = complete_graph(fa, fb)
    v_init = -rng.uniform(0, 20, 55)
    row_to_col, v, ok = sparse_lap.shortest_augmenting_path(
        indptr, indices, weights, v_init, np.full(40, -1, np.int64)
    )
    assert ok
    unmatched = np.setdiff1d(np.arange(55), row_to_col)
    assert (v[unmatched] < 0).any()  # the situation being tested
    edge_rows = np.repeat(np.arange(40), np.diff(indptr))
    col_ptr, col_rows, col_weights = sparse_lap.build_graph(55, indices, edge_rows, fb, fa)
    row_to_col, v = sparse_lap.release_stale_columns(
        col_ptr, col_rows, col_weights, row_to_col.copy(), v.copy()
    )
    unmatched = np.setdiff1d(np.arange(55), row_to_col)
    assert len(np.unique(row_to_col)) == 40
    assert (v[unmatched] == 0).all() and (v <= 1e-12).all()
    assert reduced_costs(fa, fb, row_to_col, v).min() >= -1e-9
    c, best = scipy_optimum(fa, fb)
    assert c[np.arange(40), row_to_col].sum() == pytest.approx(best, rel=1e-12)


def test_build_graph_deduplicates_and_weighs_edges():
    fa = np.array([[0.0, 0, 0], [1.0, 0, 0]])
    fb = np.array([[0.0, 3, 4], [1.0, 0, 0], [5.0, 0, 0]])
    rows = np.array([1, 0, 1, 0, 1, 1], np.int64)
    cols = np.array([2, 1, 0, 1, 2, 1], np.int64)
    indptr, indices, weights = sparse_lap.build_graph(2, rows, cols, fa, fb)
    np.testing.assert_array_equal(indptr, [0, 1, 4])
    np.testing.assert_array_equal(indices, [1, 2, 0, 1])  # each row's columns as first given
    np.testing.assert_allclose(weights, [1.0, 4.0, np.sqrt(1 + 25), 0.0])


def test_solve_certified_reports_why_it_gives_up():
    fa = np.array([[0.0, 0, 0], [1.0, 0, 0], [2.0, 0, 0]])
    fb = np.array([[0.0, 0, 0], [1.0, 0, 0], [2.0, 0, 0], [3.0, 0, 0]])
    rows, cols = np.array([0, 1, 2], np.int64), np.array([0, 0, 2], np.int64)
    _, status, _ = sparse_lap.solve_certified(fa, fb, rows, cols, np.zeros(3), 1.0, 4, 3, 1e-9, 3)
    assert status == 1  # no full matching on the graph
    fa2, fb2 = np.array([[0.0, 0, 0], [10.0, 0, 0]]), np.array([[10.0, 0, 0], [0.0, 0, 0]])
    ident = np.array([0, 1], np.int64)
    _, status, _ = sparse_lap.solve_certified(fa2, fb2, ident, ident, np.zeros(2), 1.0, 4, 0, 1e-9, 2)
    assert status == 2  # the optimum is off the graph and no repair round was allowed
    row_to_col, status, rounds = sparse_lap.solve_certified(
        fa2, fb2, ident, ident, np.zeros(2), 1.0, 4, 3, 1e-9, 2
    )
    assert status == 0 and rounds == 1 and list(row_to_col) == [1, 0]
    _, status, rounds = sparse_lap.solve_certified(fa2, fb2, ident, ident, np.zeros(2), 1.0, 4, 3, 1e-9, 1)
    assert status == 2 and rounds == 0  # both rows violated in the first round: a hard part, go dense


def shape_change(rng, n, shift):
    """A part whose visible shape changed: columns are the rows moved and partly replaced elsewhere,
    so the optimum moves mass far from the nearest neighbours (many repair rounds)."""
    grid = np.stack(np.meshgrid(np.arange(n), np.arange(n), indexing="ij"), -1).reshape(-1, 2) * 4.0
    fa = np.column_stack([grid - grid.mean(0), np.abs(grid - grid.mean(0)).sum(1) / 4])
    keep = grid[:, 0] < grid[:, 0].max() * 0.8
    extra = fa[~keep][: (~keep).sum() // 2] + [shift, 0.0, 0.0]
    fb = np.vstack([fa[keep], extra]) + rng.normal(0, 0.7, (keep.sum() + len(extra), 3))
    return fa, fb


@pytest.mark.parametrize("n,shift", [(24, 40.0), (30, -90.0)])
def test_far_optimum_is_still_certified_and_equals_scipy(n, shift):
    rng = np.random.default_rng(n)
    fa, fb = shape_change(rng, n, shift)
    result = assign(fa, fb, dense_below=8, hard_share=1.0)  # through the repair rounds
    _, best = scipy_optimum(fa, fb)
    check_valid(result, fa, fb)
    assert result.solver == "sparse-certified"
    assert abs(result.cost - best) <= 1e-9 * best
    again = assign(fa, fb, dense_below=8, hard_share=1.0)  # deterministic: the same pairs
    np.testing.assert_array_equal(again.cols, result.cols)
    hard = assign(fa, fb, dense_below=8)  # by default such a part is found hard and solved densely
    assert hard.solver == "dense" and abs(hard.cost - best) <= 1e-9 * best


def test_nearest_neighbours_are_exact_for_any_cell_size():
    # points on a thin sheet (like a part's features); queries near it and far outside the grid
    rng = np.random.default_rng(13)
    points = rng.normal(size=(500, 3)) * [40.0, 30.0, 2.0]
    queries = np.vstack([points[:200] + rng.normal(size=(200, 3)), rng.normal(size=(20, 3)) * 400])
    brute = np.sort(dense_cost(queries, points), axis=1)[:, :7]
    for cell in (0.5, 3.0, 20.0, 1000.0):
        near, dist = sparse_lap.nearest_neighbours(queries, points, 7, cell)
        np.testing.assert_allclose(dist, brute, rtol=0, atol=1e-9)
        np.testing.assert_allclose(np.linalg.norm(queries[:, None] - points[near], axis=2), dist, atol=1e-9)
