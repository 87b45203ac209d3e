"""Benchmark: seconds per frame pair of the correspondence solver vs scipy's linear_sum_assignment.

Usage:  python benchmarks/bench_correspondence.py [render.h5] [--pairs N]

With a render file (format "render", 512² recommended) consecutive frames are used; otherwise a
synthetic 512² IUV body of 24 blob-shaped parts of realistic sizes (hundreds to a few thousand pixels
at 256²) moving slightly between frames. Both solvers get the SAME per-part feature sets; scipy's
time includes building the dense cost matrix (which it needs; ``cdist``, the same builder our dense
path uses). Ours is timed with 1 and 2 threads over the parts. Prints the cost of both optima.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
from scipy.optimize import linear_sum_assignment

from latentman.correspondence.match import downsample, part_features
from latentman.correspondence.solver import assign_many, dense_cost


def synthetic_iuv(frames: int, res: int = 512, seed: int = 0) -> np.ndarray:
    """(F, res, res, 3) uint8: 24 elliptical parts with smooth U,V, drifting a few pixels per frame."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:res, 0:res].astype(np.float64)
    centres = rng.uniform(0.2, 0.8, (24, 2)) * res
    radii = rng.uniform(0.03, 0.13, (24, 2)) * res
    angles = rng.uniform(0, np.pi, 24)
    out = np.zeros((frames, res, res, 3), np.uint8)
    for f in range(frames):
        for j in range(24):
            cy, cx = centres[j] + f * rng.normal(0, 0.004 * res, 2)
            ry, rx = radii[j] * (1 + 0.02 * f * rng.normal(size=2))
            c, s = np.cos(angles[j] + 0.02 * f), np.sin(angles[j] + 0.02 * f)
            ly = (c * (yy - cy) + s * (xx - cx)) / ry
            lx = (-s * (yy - cy) + c * (xx - cx)) / rx
            inside = ly**2 + lx**2 <= 1
            out[f][inside, 0] = j + 1
            out[f][inside, 1] = np.clip((lx[inside] + 1) * 127.5, 0, 255)
            out[f][inside, 2] = np.clip((ly[inside] + 1) * 127.5, 0, 255)
    return out


def problems(ref: np.ndarray, cur: np.ndarray):
    parts = np.intersect1d(np.unique(ref[..., 0]), np.unique(cur[..., 0]))
    return [(part_features(ref, int(p))[1], part_features(cur, int(p))[1]) for p in parts[parts > 0]]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("render", nargs="?", help="render .h5 file (else synthetic 512² IUV)")
    parser.add_argument("--pairs", type=int, default=2)
    args = parser.parse_args()
    if args.render:
        from latentman.io import open_intermediate, read_h5_dataset

        with open_intermediate(args.render, "render") as h5:
            iuv = read_h5_dataset(h5, "iuv", "render")[: args.pairs + 1]
        source = args.render
    else:
        iuv = synthetic_iuv(args.pairs + 1)
        source = "synthetic 512² blobs"
    print(f"input: {source}; machine: {platform.processor() or platform.machine()}, cores: {os.cpu_count()}")
    print(f"pairs: {args.pairs}; date: {time.strftime('%Y-%m-%d')}")
    res = iuv.shape[1]
    for grid in (res // 8, res // 2):
        small = downsample(iuv, grid)
        t_ours = t_threads = t_scipy = c_ours = c_scipy = 0.0
        sizes, solvers = [], {}
        for i in range(1, len(small)):
            pair = problems(small[i - 1], small[i])
            sizes += [(len(fa), len(fb)) for fa, fb in pair]
            t = time.perf_counter()
            results = assign_many(pair, workers=1)
            t_ours += time.perf_counter() - t
            t = time.perf_counter()
            threaded = assign_many(pair, workers=2)
            t_threads += time.perf_counter() - t
            t = time.perf_counter()
            scipy_costs = []
            for fa, fb in pair:  # scipy needs the dense matrix: its build is part of its time
                c = dense_cost(fa, fb)
                a, b = linear_sum_assignment(c)
                scipy_costs.append(float(c[a, b].sum()))
            t_scipy += time.perf_counter() - t
            c_ours += sum(r.cost for r in results)
            c_scipy += sum(scipy_costs)
            assert all(r.cost == s.cost for r, s in zip(results, threaded))
            for r in results:
                solvers[r.solver] = solvers.get(r.solver, 0) + 1
        n = len(small) - 1
        sz = np.array(sizes).max(1)
        rel = abs(c_ours - c_scipy) / max(1.0, c_scipy)
        print(
            f"grid {grid}²: parts/pair {len(sizes) / n:.0f}, "
            f"part size median {np.median(sz):.0f} max {sz.max()}; "
            f"ours {t_ours / n:.3f} s/pair (2 threads {t_threads / n:.3f}), scipy {t_scipy / n:.3f} s/pair, "
            f"speed-up {t_scipy / t_ours:.1f}x (2 threads {t_scipy / t_threads:.1f}x); "
            f"total cost ours {c_ours:.6f} scipy {c_scipy:.6f} (rel. diff {rel:.1e}, equal: {rel < 1e-6}); "
            f"solvers {solvers}"
        )


if __name__ == "__main__":
    main()
