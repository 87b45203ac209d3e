"""Benchmark: seconds per frame pair of the correspondence solver vs scipy's linear_sum_assignment.

Usage:  python benchmarks/bench_correspondence.py [render.h5] [--pairs N] [--repeat R]
            [--reference prev|prev_new]

With a render file (format "render", 512² recommended) consecutive frames are used; otherwise a
synthetic 512² IUV body of 24 blob-shaped parts of realistic sizes (hundreds to a few thousand pixels
at 256²) moving slightly between frames. Both solvers get the SAME per-part feature sets; scipy's
time includes building the dense cost matrix (which it needs; ``cdist``). Ours is timed on one
thread, part by part, and with 2 threads sharing all parts of all pairs (as ``correspond`` runs
them). Prints the cost of both optima.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
from scipy.optimize import linear_sum_assignment

from latentman.correspondence.match import correspond, downsample, part_features
from latentman.correspondence.solver import assign, assign_many, compile_kernels, dense_cost


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
    parser.add_argument("--repeat", type=int, default=3, help="time each part this often, keep the best")
    parser.add_argument("--reference", choices=("prev", "prev_new"), default="prev")
    args = parser.parse_args()
    if args.render:
        from latentman.render.storage import read_render

        iuv = read_render(args.render, ("iuv",))["iuv"][: args.pairs + 1]
        source = args.render
    else:
        iuv = synthetic_iuv(args.pairs + 1)
        source = "synthetic 512² blobs"
    print(f"input: {source}; machine: {platform.processor() or platform.machine()}, cores: {os.cpu_count()}")
    print(
        f"pairs: {args.pairs}; reference: {args.reference}; best of {args.repeat}; "
        f"date: {time.strftime('%Y-%m-%d')}"
    )
    # One-off cost: numba compiles the sparse solver's kernels on first use (cached on disk after).
    t = time.perf_counter()
    compile_kernels()
    seconds = time.perf_counter() - t
    print(f"solver kernels compiled or loaded from numba's cache in {seconds:.1f} s (not timed below)")
    res = iuv.shape[1]
    for grid in (res // 8, res // 2):
        small = np.ascontiguousarray(downsample(iuv, grid))
        # prev: frame i-1's map against frame i's (the paper); prev_new: the relabelled chain (the
        # workflow's default reference for generation; its problems are harder)
        refs = small if args.reference == "prev" else correspond(small, "prev_new")["iuv"]
        pairs = [problems(refs[i - 1], small[i]) for i in range(1, len(small))]
        every_part = [p for pair in pairs for p in pair]
        ours = np.full(len(every_part), np.inf)
        scipy_t = np.full(len(every_part), np.inf)
        results, scipy_cost = [], []
        # Each part: ours (= assign_many(pair, workers=1), part by part for the breakdown), then
        # scipy with its dense matrix; interleaved, best of --repeat (these machines are noisy).
        for rep in range(args.repeat):
            for k, (fa, fb) in enumerate(every_part):
                t = time.perf_counter()
                result = assign(fa, fb)
                ours[k] = min(ours[k], time.perf_counter() - t)
                t = time.perf_counter()
                c = dense_cost(fa, fb)
                a, b = linear_sum_assignment(c)
                scipy_t[k] = min(scipy_t[k], time.perf_counter() - t)
                if rep == 0:
                    results.append(result)
                    scipy_cost.append(float(c[a, b].sum()))
        # Two threads share all parts of all frame pairs, as correspond(..., workers=2) does. The
        # first threaded call of a process pays a one-off start (~10 ms): a warm-up call, untimed.
        assign_many(every_part, workers=2)
        t_threads = np.inf
        for _ in range(args.repeat):
            t = time.perf_counter()
            threaded = assign_many(every_part, workers=2)
            t_threads = min(t_threads, time.perf_counter() - t)
        assert all(r.cost == s.cost for r, s in zip(results, threaded))
        per_part = [  # (smaller side, ours cost, scipy cost, solver)
            (min(len(fa), len(fb)), r.cost, c, r.solver)
            for (fa, fb), r, c in zip(every_part, results, scipy_cost)
        ]
        n = len(small) - 1
        size = np.array([p[0] for p in per_part])
        c_ours, c_scipy = sum(p[1] for p in per_part), sum(p[2] for p in per_part)
        solvers = {s: sum(p[3] == s for p in per_part) for s in sorted({p[3] for p in per_part})}
        rel = abs(c_ours - c_scipy) / max(1.0, c_scipy)
        print(
            f"grid {grid}²: parts/pair {len(per_part) / n:.0f}, "
            f"part size (smaller side) median {np.median(size):.0f} max {size.max()}; "
            f"ours {ours.sum() / n:.4f} s/pair (2 threads {t_threads / n:.4f}), "
            f"scipy {scipy_t.sum() / n:.4f} s/pair, "
            f"speed-up {scipy_t.sum() / ours.sum():.1f}x (2 threads {scipy_t.sum() / t_threads:.1f}x); "
            f"total cost ours {c_ours:.6f} scipy {c_scipy:.6f} (rel. diff {rel:.1e}, equal: {rel < 1e-6}); "
            f"solvers {solvers}"
        )
        for low, high in ((0, 450), (450, 1000), (1000, 10**9)):  # dense path: up to 800 px
            sel = (size >= low) & (size < high)
            if sel.any():
                print(
                    f"    parts with {low}–{high if high < 10**9 else '∞'} px: {sel.sum()} parts, "
                    f"ours {ours[sel].sum():.4f} s, scipy {scipy_t[sel].sum():.4f} s "
                    f"({scipy_t[sel].sum() / ours[sel].sum():.1f}x); share of scipy's time "
                    f"{scipy_t[sel].sum() / scipy_t.sum():.0%}"
                )


if __name__ == "__main__":
    main()
