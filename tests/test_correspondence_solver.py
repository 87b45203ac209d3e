"""The exact sparse+certified assignment solver against scipy's Hungarian optimum."""

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from latentman.correspondence.solver import assign, dense_cost


@pytest.mark.parametrize(
    "na,nb", [(1, 1), (1, 5), (7, 3), (40, 40), (65, 65), (80, 120), (150, 90), (300, 300), (250, 400)]
)
def test_optimum_equals_scipy(na, nb):
    rng = np.random.default_rng(na * 1000 + nb)
    # structured like IUV features: centred U,V plus a spatial term, with noise
    fa = rng.normal(size=(na, 3)) * 40
    fb = fa[rng.integers(0, na, nb)] + rng.normal(size=(nb, 3)) * 3
    result = assign(fa, fb, dense_below=8)
    c = dense_cost(fa, fb)
    r, k = linear_sum_assignment(c)
    best = c[r, k].sum()
    assert len(result.rows) == min(na, nb)
    assert len(np.unique(result.rows)) == len(result.rows) and len(np.unique(result.cols)) == len(result.cols)
    assert abs(result.cost - best) <= 1e-6 * max(1.0, best)
    assert result.cost == pytest.approx(c[result.rows, result.cols].sum(), rel=1e-9)


def test_certificate_rejects_a_graph_that_misses_the_optimum():
    # 1-D features: the identity is expensive, the swap is optimal; the graph only holds the identity
    fa = np.array([[0.0, 0, 0], [10.0, 0, 0]])
    fb = np.array([[10.0, 0, 0], [0.0, 0, 0]])
    result = assign(fa, fb, edges=(np.array([0, 1]), np.array([0, 1])), rounds=1)
    assert result.solver == "dense"
    assert result.cost == pytest.approx(0.0)
    assert result.cols[result.rows == 0][0] == 1
    # with repair rounds the violated pairs join the graph and the re-solved optimum certifies
    repaired = assign(fa, fb, edges=(np.array([0, 1]), np.array([0, 1])))
    assert repaired.solver == "sparse-certified" and repaired.cost == pytest.approx(0.0)
    # the same graph with the optimum in it certifies
    ok = assign(fa, fb, edges=(np.array([0, 1, 0, 1]), np.array([0, 1, 1, 0])))
    assert ok.solver == "sparse-certified" and ok.cost == pytest.approx(0.0)
