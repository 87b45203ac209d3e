"""Benchmark: generation — SLA overhead, PWG peak memory, batched frames vs one frame at a time.

Usage:  python benchmarks/bench_generation.py [--model embedded:sd15-random|embedded:tiny] [--res 128]
            [--frames 4] [--steps 3] [--reps 2] [--parts sla,batch,memory] [--plain-pwg]

Inputs are synthetic but of the real shapes and built with the project's own functions: a 24-part IUV
body drifting between frames (``bench_correspondence.synthetic_iuv``), its foreground as the ControlNet
depth image, and ``prev_new`` correspondences from :func:`latentman.correspondence.match.correspond` at
the latent (res/8) and guidance (res/2) grids. Fixed seeds throughout.

1. SLA overhead: whole pipeline runs with SLA on every step vs off (same model, frames, seed), runs
   interleaved; per-step time = time between ``callback_on_step_end`` calls (step 0 excluded: it also
   holds setup). Also the SLA call itself timed alone, as a share of a step: on a shared 2-core machine
   that direct number is far more precise than the difference of two noisy step times.
2. PWG memory: each configuration runs in a fresh child process (multiprocessing spawn) that builds the
   model, resets the kernel's peak-RSS counter (/proc/self/clear_refs ← 5, so model building is not
   counted) and runs ONE denoising step (+ the final decode); peak = VmHWM. Reported as the process peak
   (weights included, as ``torch.cuda.max_memory_allocated`` would be on a GPU) and the increase over
   the RSS after loading (the step's own working memory).
3. Batched (``chunk_size`` = frames, the pipeline's normal path) vs one frame per network call
   (``chunk_size`` = 1: the per-frame computation of the paper's one-frame-at-a-time loop, same steps and
   cross-frame attention anchor): max abs difference of final latents and frames, speed ratio.
"""

from __future__ import annotations

import argparse
import datetime
import multiprocessing
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_correspondence import synthetic_iuv  # noqa: E402

from latentman.config import grids, load_config, resolve_variant  # noqa: E402
from latentman.correspondence.match import correspond, downsample  # noqa: E402

PROMPT = "a person dancing, best quality"
SEED = 1234


# ------------------------------------------------------------------------------------------ inputs
def make_inputs(frames: int, res: int) -> tuple[np.ndarray, dict]:
    """(control (F,res,res) uint8, correspondence dict) from a synthetic IUV body."""
    iuv = synthetic_iuv(frames, res, seed=0)
    foreground = iuv[..., 0] > 0
    # Near-bright depth-like image: brighter towards the top of each part (V), background black.
    control = np.where(foreground, 96 + iuv[..., 2] // 2, 0).astype(np.uint8)
    corr = {}
    for name, grid in grids(res).items():
        result = correspond(downsample(iuv, grid), "prev_new")
        corr[name] = result["source"]
        corr["reference_index"] = result["reference_index"]
    return control, corr


def load_pipeline(model: str):
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    from latentman.generation.pipeline import LatentmanPipeline
    from latentman.models import build_sd15_random, build_tiny, load_models

    # Loading chatter (progress bars, the accelerate hint) would bury the tables.
    diffusers_logging.set_verbosity_error()
    diffusers_logging.disable_progress_bar()
    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()

    if model == "embedded:sd15-random":
        models = build_sd15_random()
    elif model == "embedded:tiny":
        with tempfile.TemporaryDirectory() as tmp:
            build_tiny(Path(tmp) / "embedded-tiny")
            models = load_models({"stable_diffusion": model, "controlnet_depth": model}, tmp)
    else:
        raise SystemExit(f"--model {model!r}: use embedded:sd15-random or embedded:tiny")
    return LatentmanPipeline(models, "cpu")


def make_settings(steps: int, sla: bool, pwg: str | None, chunk: int, pwg_steps=None) -> dict:
    """The config's latentman variant with SLA on every step or off, PWG (gradient mode) or off."""
    s = resolve_variant(load_config(REPO / "config.yaml"), "latentman")
    s["num_inference_steps"] = steps
    s["sla"] = dict(s["sla"], enabled=sla, steps=[0, steps - 1])
    s["pwg"] = dict(s["pwg"], enabled=pwg is not None, steps=pwg_steps or [0, steps - 1])
    if pwg is not None:
        s["pwg"]["gradient"] = pwg
    s["chunk_size"] = chunk
    return s


def run(pipe, control, corr, settings) -> dict:
    """One generation: per-step seconds and in-step SLA seconds (step 0 excluded), wall time, final
    latents and frames. SLA calls are timed inside the run through a wrapper around the pipeline's
    ``spatial_latent_alignment`` (the same call, timed where it happens)."""
    from latentman.generation import pipeline as pipeline_module

    stamps, sla_times, last = [], [], []
    original = pipeline_module.spatial_latent_alignment

    def timed_sla(*args, **kwargs):
        start = time.perf_counter()
        out = original(*args, **kwargs)
        sla_times.append((len(stamps), time.perf_counter() - start))
        return out

    def on_step(k, t, x):
        stamps.append(time.perf_counter())
        last[:] = [x.clone()]

    pipeline_module.spatial_latent_alignment = timed_sla
    try:
        start = time.perf_counter()
        frames = pipe(PROMPT, "", control, corr, settings, SEED, callback_on_step_end=on_step, progress=False)
        wall = time.perf_counter() - start
    finally:
        pipeline_module.spatial_latent_alignment = original
    steps = list(np.diff(stamps))
    # sla_times holds (step index, seconds); step k >= 1 is the interval stamps[k-1] -> stamps[k].
    sla = [dict(sla_times).get(k, 0.0) for k in range(1, len(stamps))]
    return {"steps": steps, "sla": sla, "wall": wall, "latents": last[0], "frames": frames}


# ------------------------------------------------------------------------------------------ memory
def _status_mib(field: str) -> float:
    text = Path("/proc/self/status").read_text()
    return int(re.search(rf"{field}:\s+(\d+) kB", text).group(1)) / 1024


def memory_child(
    model: str, res: int, frames: int, pwg: str | None, plain: bool, chunk: int | None = None
) -> dict:
    """Runs in a fresh spawned process: peak RSS of one denoising step (+ final decode), frames in chunks
    of ``chunk`` (default: all at once)."""
    import logging

    logging.disable(logging.WARNING)
    control, corr = make_inputs(frames, res)
    pipe = load_pipeline(model)
    if plain:
        # "Before": PWG without gradient checkpointing (the frame-by-frame decode stays).
        pipe._checkpointing = lambda on: None
    settings = make_settings(1, sla=False, pwg=pwg, chunk=chunk or frames)
    loaded = _status_mib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM: building the model is not counted
    start = time.perf_counter()
    pipe(PROMPT, "", control, corr, settings, SEED, progress=False)
    wall = time.perf_counter() - start
    return {"loaded": loaded, "peak": _status_mib("VmHWM"), "wall": wall}


def bench_memory(args) -> list[str]:
    configs = [("no PWG", None, False), ("PWG, gradient unet", "unet", False)]
    if args.plain_pwg:
        configs.append(("PWG unet, no checkpointing", "unet", True))
    configs.append(("PWG, gradient decoder", "decoder", False))
    ctx = multiprocessing.get_context("spawn")
    results = {}
    for name, pwg, plain in configs:
        print(f"[memory] {name} ...", file=sys.stderr, flush=True)
        pool = ctx.Pool(1)
        try:
            results[name] = pool.apply(memory_child, (args.model, args.res, args.frames, pwg, plain))
        finally:
            pool.close()
            pool.join()
    base = results["no PWG"]
    lines = [
        f"### PWG peak memory ({args.model}, {args.res}², {args.frames} frames, one step, CPU peak RSS)",
        "",
        "| configuration | RSS after load MiB | peak RSS MiB | ratio | step working set MiB | ratio | s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        work, base_work = r["peak"] - r["loaded"], base["peak"] - base["loaded"]
        lines.append(
            f"| {name} | {r['loaded']:.0f} | {r['peak']:.0f} | {r['peak'] / base['peak']:.3f}x "
            f"| {work:.0f} | {work / max(base_work, 1.0):.2f}x | {r['wall']:.1f} |"
        )
    lines += [
        "",
        "Peak RSS = VmHWM after resetting it once the model is built (weights included, like "
        "`torch.cuda.max_memory_allocated`); step working set = peak − RSS after load. Target: peak ≤ 1.5x.",
    ]
    return lines


# ------------------------------------------------------------------------------------------ timing
def time_sla_call(latent_shape, corr, repeats: int = 30) -> tuple[float, float]:
    """(median, min) seconds of one spatial_latent_alignment call on latents of ``latent_shape``."""
    from latentman.generation.sla import spatial_latent_alignment

    x = torch.randn(latent_shape, generator=torch.Generator().manual_seed(SEED))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        spatial_latent_alignment(x, corr["latent"], corr["reference_index"])
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times)


def bench_timing(args, parts) -> list[str]:
    if args.steps < 2:
        raise SystemExit("--steps must be >= 2 (step 0 is excluded from step times)")
    control, corr = make_inputs(args.frames, args.res)
    print("[timing] building the model ...", file=sys.stderr, flush=True)
    pipe = load_pipeline(args.model)
    configs = {}
    if "sla" in parts:
        configs["no SLA"] = make_settings(args.steps, sla=False, pwg=None, chunk=args.frames)
    configs["SLA, batched"] = make_settings(args.steps, sla=True, pwg=None, chunk=args.frames)
    if "batch" in parts:
        configs["SLA, one frame per call"] = make_settings(args.steps, sla=True, pwg=None, chunk=1)
    order = list(configs)
    runs = {name: [] for name in order}
    for rep in range(args.reps):
        # Alternate the order so drifting machine load favours neither side.
        for name in order if rep % 2 == 0 else order[::-1]:
            print(f"[timing] rep {rep + 1}/{args.reps}: {name} ...", file=sys.stderr, flush=True)
            runs[name].append(run(pipe, control, corr, configs[name]))

    def step_median(name):
        return statistics.median(t for r in runs[name] for t in r["steps"])

    lines = []
    where = (
        f"{args.model}, {args.res}², {args.frames} frames, {args.steps} steps, {args.reps} reps interleaved"
    )
    if "sla" in parts:
        off, on = step_median("no SLA"), step_median("SLA, batched")
        # Step k of rep r with SLA against step k of rep r without: paired, same position in the schedule.
        paired = [
            b / a
            for run_a, run_b in zip(runs["no SLA"], runs["SLA, batched"])
            for a, b in zip(run_a["steps"], run_b["steps"])
        ]
        share = [c / t for r in runs["SLA, batched"] for c, t in zip(r["sla"], r["steps"])]
        in_run = [c for r in runs["SLA, batched"] for c in r["sla"]]
        no_sla = [t for r in runs["no SLA"] for t in r["steps"]]
        shape = tuple(runs["no SLA"][0]["latents"].shape)
        lines += [
            f"### SLA overhead ({where})",
            "",
            "| measure | value |",
            "|---|---:|",
            f"| median step time, no SLA | {off:.3f} s |",
            f"| median step time, SLA on every step | {on:.3f} s |",
            f"| ratio of medians (SLA / no SLA) | {on / off:.3f} |",
            f"| median of paired per-step ratios (n = {len(paired)}) | {statistics.median(paired):.3f} |",
            f"| range of paired per-step ratios | {min(paired):.3f}–{max(paired):.3f} |",
            f"| range of no-SLA step times | {min(no_sla):.3f}–{max(no_sla):.3f} s |",
            f"| SLA call inside the runs, latents {shape}: median (max) | "
            f"{statistics.median(in_run) * 1e3:.3f} ({max(in_run) * 1e3:.3f}) ms |",
            f"| **SLA share of its step, timed in the same runs: median (max)** | "
            f"**{100 * statistics.median(share):.3f} % ({100 * max(share):.3f} %)** |",
        ]
        if args.sla_512:
            big_frames = 8
            _, big_corr = make_inputs(big_frames, 512)
            big = time_sla_call((big_frames, 4, 64, 64), big_corr)
            lines.append(
                f"| one SLA call alone, 512² geometry, latents ({big_frames}, 4, 64, 64): median (min) "
                f"| {big[0] * 1e3:.3f} ({big[1] * 1e3:.3f}) ms |"
            )
        lines += [
            "",
            "Target ≤ 2 %. Step-time ratios carry the machine's noise (2 cores shared with other jobs); "
            "the SLA call timed inside the same steps is the precise overhead.",
            "",
        ]
    if "batch" in parts:
        batched, single = runs["SLA, batched"], runs["SLA, one frame per call"]
        d_latent, scale, d_frames = output_differences(single, batched)
        t_b, t_s = step_median("SLA, batched"), step_median("SLA, one frame per call")
        w_b = statistics.median(r["wall"] for r in batched)
        w_s = statistics.median(r["wall"] for r in single)
        lines += [
            f"### Batched frames vs one frame per call ({where}; SLA on)",
            "",
            "| measure | batched (chunk = frames) | one frame per call (chunk = 1) | ratio |",
            "|---|---:|---:|---:|",
            f"| median step time | {t_b:.3f} s | {t_s:.3f} s | {t_s / t_b:.2f}x |",
            f"| median wall time per video | {w_b:.2f} s | {w_s:.2f} s | {w_s / w_b:.2f}x |",
            "",
            f"Max abs difference: final latents {d_latent:.2e} (latent scale {scale:.2f}); "
            f"final uint8 frames {d_frames}. GPU target ≥ 2x: not measurable here (no GPU lent).",
            "",
        ]
    return lines


def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    threads = torch.get_num_threads()
    return f"{model}, {os.cpu_count()} CPUs (nproc), torch {torch.__version__}, {threads} threads"


def output_differences(runs: list[dict], reference: list[dict]) -> tuple[float, float, int]:
    """Paired runs of two ways to the same video: max abs difference of the final latents, the latent scale
    (the reference's first run), and the max abs difference of the uint8 frames."""
    d_latent = max(float((a["latents"] - b["latents"]).abs().max()) for a, b in zip(runs, reference))
    scale = float(reference[0]["latents"].abs().max())
    d_frames = max(
        int(np.abs(a["frames"].astype(int) - b["frames"].astype(int)).max()) for a, b in zip(runs, reference)
    )
    return d_latent, scale, d_frames


def size_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Model, frame size, frames, steps and repetitions: the options every generation benchmark shares."""
    parser.add_argument(
        "--model", default="embedded:sd15-random", choices=["embedded:sd15-random", "embedded:tiny"]
    )
    parser.add_argument("--res", type=int, default=128, help="frame size (multiple of 64)")
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--steps", type=int, default=3, help="denoising steps per timing run (>= 2)")
    parser.add_argument("--reps", type=int, default=2, help="interleaved repetitions of each timing run")
    return parser


def main():
    parser = size_arguments(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    parser.add_argument("--parts", default="sla,batch,memory", help="comma list of sla, batch, memory")
    parser.add_argument("--plain-pwg", action="store_true", help="also PWG without gradient checkpointing")
    parser.add_argument("--sla-512", action="store_true", help="also time one SLA call at 512² geometry")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    if parts - {"sla", "batch", "memory"}:
        raise SystemExit(f"--parts {args.parts!r}: use a comma list of sla, batch, memory")
    print(f"command: python benchmarks/bench_generation.py {' '.join(sys.argv[1:])}".rstrip())
    print(f"machine: {machine()}; date {datetime.date.today()}\n")
    start = time.perf_counter()
    lines = []
    # Memory children first: the parent holds no model while they run.
    if "memory" in parts:
        lines += bench_memory(args) + [""]
    if parts & {"sla", "batch"}:
        lines += bench_timing(args, parts)
    print("\n".join(lines))
    print(f"total benchmark time {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
