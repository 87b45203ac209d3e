"""Benchmark: backbones — AnimateDiff vs Text2Video-Zero per step, and our pipeline vs diffusers' own.

Usage:  python benchmarks/bench_backbones.py [--model embedded:sd15-random|embedded:tiny] [--res 128]
            [--frames 4] [--steps 3] [--reps 2] [--parts backbones,diffusers] [--measure time,memory]

Same model, size, frame count, steps, guidance scale and seed everywhere; SLA and PWG off. Inputs are
synthetic but of the real shapes, built with the project's own functions (the ControlNet depth image of
``bench_generation.make_inputs``: a 24-part IUV body drifting between frames). Fixed seeds throughout.

1. ``backbones``: ``method: animatediff`` (the t2v_zero loop with AnimateDiff's motion UNet,
   ``UNetMotionModel.from_unet2d``; adapter: ``embedded:tiny``'s saved one for the tiny model, a random
   adapter matching SD1.5's UNet (``build_motion_adapter``, the v1-5-2 layout) for sd15-random) vs
   ``method: t2v_zero``, both with the config's default cross-frame attention (``first``), the whole video
   in one batch. Ratio animatediff / t2v_zero.
2. ``diffusers``: ``method: t2v_zero`` with ``attention: none`` through :class:`LatentmanPipeline` vs
   diffusers' ``StableDiffusionControlNetPipeline`` built from the SAME module objects (UNet, ControlNet,
   VAE, text encoder, tokenizer) and a DDIM scheduler of the same config, the frames as one batch (prompt
   and empty negative prompt repeated per frame, the control image per frame), the same x_T (our shared
   draw, passed as ``latents``), default attention processors (``AttnProcessor2_0``, which ``attention:
   none`` installs too). Then both do the same arithmetic: the final latents and frames are compared as a
   check that the work is the same. Ratio ours / diffusers; target ≤ 1.05. With ``backbones`` too, ours
   with ``attention: first`` (the t2v_zero runs of part 1) is listed against diffusers as well.

Step time = the interval between consecutive ``callback_on_step_end`` calls (ours and diffusers' both have
one, called after the scheduler update): the denoising step itself; step 0 is excluded (its interval would
also hold prompt encoding and setup). Wall time per video (encode + steps + decode) is reported too. All
configurations run in one process, interleaved (order reversed every other repetition), on shared modules.

Peak memory (``--measure memory``): each configuration runs in a fresh child process (multiprocessing
spawn) that builds the model, resets the kernel's peak-RSS counter once it is built (``bench_generation``'s
VmHWM approach) and runs ONE denoising step (+ decode). Peak = VmHWM (weights included, like
``torch.cuda.max_memory_allocated``) and the step's working set = peak − RSS after loading. Children run
first, while the parent holds no model.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import gc
import multiprocessing
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_generation import (  # noqa: E402
    PROMPT,
    SEED,
    _status_mib,
    machine,
    make_inputs,
    output_differences,
    size_arguments,
)
from bench_generation import run as run_ours  # noqa: E402

from latentman.config import load_config, resolve_variant  # noqa: E402

#: Configurations: name -> (what runs, method, attention).
CONFIGS = {
    "t2v_zero": ("ours", "t2v_zero", "first"),
    "animatediff": ("ours", "animatediff", "first"),
    "ours, attention none": ("ours", "t2v_zero", "none"),
    "diffusers": ("diffusers", "t2v_zero", "none"),
}


# ------------------------------------------------------------------------------------------ models
def quiet_logs() -> None:
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    # Loading chatter (progress bars, the accelerate hint) would bury the tables.
    diffusers_logging.set_verbosity_error()
    diffusers_logging.disable_progress_bar()
    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()


def load_components(model: str, adapter: bool):
    """(Models, MotionAdapter or None) of ``--model``."""
    from latentman.models import build_motion_adapter, build_sd15_random, build_tiny, load_models
    from latentman.models.motion_adapter import load_motion_adapter

    quiet_logs()
    if model == "embedded:sd15-random":
        models = build_sd15_random()
        # The v1-5-2 adapter's layout for SD1.5's UNet (8 heads, 32 positions, motion mid block), random.
        motion = build_motion_adapter(models.unet.config) if adapter else None
        return models, motion
    if model == "embedded:tiny":
        with tempfile.TemporaryDirectory() as tmp:
            build_tiny(Path(tmp) / "embedded-tiny")
            models = load_models({"stable_diffusion": model, "controlnet_depth": model}, tmp)
            # models.motion_adapter = embedded:tiny, loaded and checked as the workflow does
            motion = load_motion_adapter(model, tmp, models.unet.config)[0] if adapter else None
        return models, motion
    raise SystemExit(f"--model {model!r}: use embedded:sd15-random or embedded:tiny")


def make_settings(steps: int, frames: int, method: str, attention: str) -> dict:
    """The config's t2v_zero variant with ``method`` and ``attention``; SLA, PWG off; frames in one batch."""
    s = resolve_variant(load_config(REPO / "config.yaml"), "t2v_zero")
    s["method"] = method
    s["attention"] = attention
    s["num_inference_steps"] = steps
    s["sla"] = dict(s["sla"], enabled=False)
    s["pwg"] = dict(s["pwg"], enabled=False)
    s["t2v_zero"] = dict(s["t2v_zero"], motion_dynamics=False)  # no pre-loop UNet calls (diffusers has none)
    s["chunk_size"] = frames
    return s


def ours_pipeline(models, motion=None):
    """LatentmanPipeline on ``models``; with ``motion`` (an adapter), on the AnimateDiff motion UNet."""
    from latentman.generation.animatediff import motion_unet
    from latentman.generation.pipeline import LatentmanPipeline

    if motion is not None:
        models = dataclasses.replace(models, unet=motion_unet(models.unet, motion, "bench"))
    return LatentmanPipeline(models, "cpu")


def diffusers_pipeline(pipe, unet):
    """diffusers' StableDiffusionControlNetPipeline on our ``pipe``'s modules and the 2-D ``unet``."""
    from diffusers import StableDiffusionControlNetPipeline

    from latentman.generation.settings import GenerationSettings, make_scheduler

    scheduler = make_scheduler(GenerationSettings.from_config(make_settings(2, 1, "t2v_zero", "none")))
    theirs = StableDiffusionControlNetPipeline(
        vae=pipe.vae,
        text_encoder=pipe.text_encoder,
        tokenizer=pipe.tokenizer,
        unet=unet,
        controlnet=pipe.controlnet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    theirs.set_progress_bar_config(disable=True)
    return theirs


def run_diffusers(theirs, control, settings: dict, x_T: torch.Tensor) -> dict:
    """One diffusers generation of the frames as a batch: per-step seconds (step 0 excluded), wall time,
    final latents and uint8 frames."""
    from diffusers.models.attention_processor import AttnProcessor2_0

    # Our runs install their processors on the shared UNet/ControlNet: diffusers gets its defaults back.
    theirs.unet.set_attn_processor(AttnProcessor2_0())
    theirs.controlnet.set_attn_processor(AttnProcessor2_0())
    frames, res = control.shape[0], control.shape[1]
    image = torch.as_tensor(control, dtype=torch.float32)[:, None].expand(-1, 3, -1, -1) / 255.0
    stamps, last = [], []

    def on_step(pipeline, i, t, kwargs):
        stamps.append(time.perf_counter())
        last[:] = [kwargs["latents"].clone()]
        return kwargs

    start = time.perf_counter()
    out = theirs(
        prompt=[PROMPT] * frames,  # our runs get PROMPT and an empty negative prompt too
        negative_prompt=[""] * frames,
        image=image,
        height=res,
        width=res,
        num_inference_steps=settings["num_inference_steps"],
        guidance_scale=settings["guidance_scale"],
        controlnet_conditioning_scale=settings["controlnet_scale"],
        latents=x_T.clone(),
        generator=torch.Generator("cpu").manual_seed(SEED),
        output_type="np",
        callback_on_step_end=on_step,
    ).images
    wall = time.perf_counter() - start
    images = (np.asarray(out) * 255).round().astype(np.uint8)
    return {"steps": list(np.diff(stamps)), "wall": wall, "latents": last[0], "frames": images}


# ------------------------------------------------------------------------------------------ memory
def memory_child(model: str, res: int, frames: int, name: str) -> dict:
    """Runs in a fresh spawned process: peak RSS of one denoising step (+ decode) of config ``name``."""
    import logging

    logging.disable(logging.WARNING)
    kind, method, attention = CONFIGS[name]
    control, _ = make_inputs(frames, res)
    models, motion = load_components(model, adapter=method == "animatediff")
    pipe = ours_pipeline(models, motion)
    settings = make_settings(1, frames, method, attention)
    theirs = diffusers_pipeline(pipe, models.unet) if kind == "diffusers" else None
    x_T = pipe.prepare_latents(SEED, frames, res // 8)
    del models, motion  # the motion UNet holds its own copy of the 2-D UNet's weights
    gc.collect()
    loaded = _status_mib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM: building the model is not counted
    start = time.perf_counter()
    if theirs is None:
        pipe(PROMPT, "", control, None, settings, SEED, progress=False)
    else:
        run_diffusers(theirs, control, settings, x_T)
    wall = time.perf_counter() - start
    return {"loaded": loaded, "peak": _status_mib("VmHWM"), "wall": wall}


def bench_memory(args, parts) -> list[str]:
    names = (["t2v_zero", "animatediff"] if "backbones" in parts else []) + (
        ["ours, attention none", "diffusers"] if "diffusers" in parts else []
    )
    ctx = multiprocessing.get_context("spawn")
    results = {}
    for name in names:
        print(f"[memory] {name} ...", file=sys.stderr, flush=True)
        pool = ctx.Pool(1)
        try:
            results[name] = pool.apply(memory_child, (args.model, args.res, args.frames, name))
        finally:
            pool.close()
            pool.join()
    pairs = [("animatediff", "t2v_zero"), ("ours, attention none", "diffusers")]
    ratio_of = {a: b for a, b in pairs if a in results and b in results}
    lines = [
        f"### Peak memory ({args.model}, {args.res}², {args.frames} frames, one step, CPU peak RSS)",
        "",
        "| configuration | RSS after load MiB | peak RSS MiB | step working set MiB | ratio peak "
        "| ratio working set | s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        work = r["peak"] - r["loaded"]
        peak_ratio = work_ratio = "—"
        if name in ratio_of:
            base = results[ratio_of[name]]
            peak_ratio = f"{r['peak'] / base['peak']:.3f}x vs {ratio_of[name]}"
            work_ratio = f"{work / max(base['peak'] - base['loaded'], 1.0):.2f}x"
        lines.append(
            f"| {name} | {r['loaded']:.0f} | {r['peak']:.0f} | {work:.0f} | {peak_ratio} | {work_ratio} "
            f"| {r['wall']:.1f} |"
        )
    lines += [
        "",
        "Peak RSS = VmHWM after resetting it once the models are built (weights included, like "
        "`torch.cuda.max_memory_allocated`); working set = peak − RSS after load. animatediff's weights hold "
        "the motion UNet (2-D UNet + motion modules), its 2-D UNet freed. The `s` column is one step + "
        "decode, load noise included.",
    ]
    return lines


# ------------------------------------------------------------------------------------------ timing
def paired(runs_a, runs_b) -> list[float]:
    """Step k of rep r of a over the same step of b: paired by position in the schedule."""
    return [a / b for ra, rb in zip(runs_a, runs_b) for a, b in zip(ra["steps"], rb["steps"])]


def step_median(runs) -> float:
    return statistics.median(t for r in runs for t in r["steps"])


def wall_median(runs) -> float:
    return statistics.median(r["wall"] for r in runs)


def comparison(runs, a: str, b: str) -> list[str]:
    ratios = paired(runs[a], runs[b])
    step_a, step_b, wall_a, wall_b = (
        step_median(runs[a]),
        step_median(runs[b]),
        wall_median(runs[a]),
        wall_median(runs[b]),
    )
    return [
        f"| median step time, {a} | {step_a:.3f} s |",
        f"| median step time, {b} | {step_b:.3f} s |",
        f"| **ratio of median step times ({a} / {b})** | **{step_a / step_b:.3f}** |",
        f"| median of paired per-step ratios (n = {len(ratios)}) | {statistics.median(ratios):.3f} |",
        f"| range of paired per-step ratios | {min(ratios):.3f}–{max(ratios):.3f} |",
        f"| median wall time per video, {a} / {b} "
        f"| {wall_a:.2f} s / {wall_b:.2f} s = {wall_a / wall_b:.3f} |",
    ]


def bench_timing(args, parts) -> list[str]:
    if args.steps < 2:
        raise SystemExit("--steps must be >= 2 (step 0 is excluded from step times)")
    control, _ = make_inputs(args.frames, args.res)
    print("[timing] building the models ...", file=sys.stderr, flush=True)
    models, motion = load_components(args.model, adapter="backbones" in parts)
    plain = ours_pipeline(models)
    pipes = {}
    if "backbones" in parts:
        pipes["t2v_zero"] = plain
        pipes["animatediff"] = ours_pipeline(models, motion)
    if "diffusers" in parts:
        pipes["ours, attention none"] = plain
        pipes["diffusers"] = diffusers_pipeline(plain, models.unet)
    del motion  # the motion UNet has copied the adapter's weights (1.7 GiB for SD1.5's)
    gc.collect()
    x_T = plain.prepare_latents(SEED, args.frames, args.res // 8)  # our shared draw: diffusers gets it too
    settings = {name: make_settings(args.steps, args.frames, *CONFIGS[name][1:]) for name in pipes}
    order = list(pipes)
    runs = {name: [] for name in order}
    for rep in range(args.reps):
        # Alternate the order so drifting machine load favours no configuration.
        for name in order if rep % 2 == 0 else order[::-1]:
            print(f"[timing] rep {rep + 1}/{args.reps}: {name} ...", file=sys.stderr, flush=True)
            if CONFIGS[name][0] == "diffusers":
                runs[name].append(run_diffusers(pipes[name], control, settings[name], x_T))
            else:
                runs[name].append(run_ours(pipes[name], control, None, settings[name]))

    s = settings[order[0]]
    where = (
        f"{args.model}, {args.res}², {args.frames} frames, {args.steps} steps, "
        f"guidance {s['guidance_scale']:g}, {args.reps} reps interleaved; SLA/PWG off"
    )
    lines = []
    if "backbones" in parts:
        lines += [
            f"### AnimateDiff vs Text2Video-Zero backbone ({where}; attention: first)",
            "",
            "| measure | value |",
            "|---|---:|",
            *comparison(runs, "animatediff", "t2v_zero"),
            "",
            "Same loop, ControlNet and cross-frame attention; animatediff adds the motion modules (temporal "
            "self-attention at every resolution). Its DDIM schedule differs (AnimateDiff's model cards), "
            "which does not change the work of a step.",
            "",
        ]
    if "diffusers" in parts:
        ours, theirs = runs["ours, attention none"], runs["diffusers"]
        d_latent, scale, d_frames = output_differences(ours, theirs)
        lines += [
            f"### Our pipeline vs diffusers' StableDiffusionControlNetPipeline ({where})",
            "",
            "| measure | value |",
            "|---|---:|",
            *comparison(runs, "ours, attention none", "diffusers"),
        ]
        if "backbones" in parts:
            first = paired(runs["t2v_zero"], theirs)
            lines += [
                f"| ours with attention: first (t2v_zero runs above) / diffusers, ratio of median step times "
                f"| {step_median(runs['t2v_zero']) / step_median(theirs):.3f} |",
                f"| same, median of paired per-step ratios (n = {len(first)}) "
                f"| {statistics.median(first):.3f} |",
            ]
        lines += [
            "",
            "Target: ours / diffusers ≤ 1.05 (ratio of median step times; paired ratios show the load "
            "noise). Same work check (same modules, x_T, scheduler; attention none = diffusers' "
            f"processors): max abs difference of final latents {d_latent:.2e} (latent scale {scale:.2f}), "
            f"of uint8 frames {d_frames}.",
            "",
        ]
    return lines


def main():
    parser = size_arguments(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    parser.add_argument("--parts", default="backbones,diffusers", help="comma list of backbones, diffusers")
    parser.add_argument("--measure", default="time,memory", help="comma list of time, memory")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    if not parts or parts - {"backbones", "diffusers"}:
        raise SystemExit(f"--parts {args.parts!r}: use a comma list of backbones, diffusers")
    measure = set(args.measure.split(","))
    if not measure or measure - {"time", "memory"}:
        raise SystemExit(f"--measure {args.measure!r}: use a comma list of time, memory")
    print(f"command: python benchmarks/bench_backbones.py {' '.join(sys.argv[1:])}".rstrip())
    print(f"machine: {machine()}; date {datetime.date.today()}\n")
    start = time.perf_counter()
    lines = []
    # Memory children first: the parent holds no model while they run.
    if "memory" in measure:
        lines += bench_memory(args, parts) + [""]
    if "time" in measure:
        lines += bench_timing(args, parts)
    print("\n".join(lines))
    print(f"total benchmark time {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
