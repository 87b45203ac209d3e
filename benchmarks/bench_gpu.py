"""Benchmark: the GPU lines of BENCHMARKS.md (s per step, peak memory, ours vs diffusers), on any device.

Usage:  python benchmarks/bench_gpu.py [--device cuda] [--dtype float16] [--model embedded:sd15-random]
            [--res 512] [--frames 8] [--steps 10] [--out results/bench_gpu.json]

On the GPU machine (``tools/gpu_check.sh``) it measures, with SD1.5-size random weights at 512²:

1. our pipeline: the latentman variant's baseline (T2V-Zero), + SLA, + PWG (``unet`` gradient), + SLA + PWG
   (SLA and PWG on every step): median seconds per denoising step (step 0 excluded: it holds setup) and
   peak memory (``torch.cuda.max_memory_allocated`` after a reset once the models are on the device; the
   process's VmHWM on CPU), and whether the latents stayed finite;
2. our T2V-Zero step without cross-frame attention vs diffusers' ``StableDiffusionControlNetPipeline`` on
   the same modules, frames as its batch: seconds per step and the ratio;
3. host round trips: calls of ``Tensor.cpu``, ``.item``, ``.tolist``, ``.numpy``, ``float()``, ``int()`` and
   ``bool()`` of a tensor per denoising step inside the loop (each one a device synchronisation on a GPU).

On the CPU it runs the same code at small sizes (tests, rehearsal); absolute times only from a GPU.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_backbones import diffusers_pipeline, load_components  # noqa: E402
from bench_generation import PROMPT, SEED, make_inputs  # noqa: E402
from bench_generation import make_settings as latentman_settings  # noqa: E402

#: Each copies a value to the host: a device synchronisation on a GPU (``__bool__``: ``if tensor:``).
HOST_CALLS = ("cpu", "item", "tolist", "numpy", "__float__", "__int__", "__bool__")


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


class HostCalls:
    """Counts host round trips (``Tensor.cpu/item/tolist/numpy``) per denoising step while active."""

    def __init__(self, device: str):
        self.per_step: list[int] = []
        self._originals = {}
        # On a GPU only device tensors count (the scheduler's timesteps and alphas live on the host); on
        # the CPU every call counts, so the rehearsal lists every site that would be a sync.
        self.device_only = device.startswith("cuda")

    def __enter__(self):
        for name in HOST_CALLS:
            original = getattr(torch.Tensor, name)
            self._originals[name] = original

            def counted(tensor, *args, _original=original, **kwargs):
                if self.per_step and (not self.device_only or tensor.is_cuda):
                    self.per_step[-1] += 1
                return _original(tensor, *args, **kwargs)

            setattr(torch.Tensor, name, counted)
        return self

    def step(self) -> None:
        self.per_step.append(0)

    def __exit__(self, *exc):
        for name, original in self._originals.items():
            setattr(torch.Tensor, name, original)


def peak_reset(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    else:
        Path("/proc/self/clear_refs").write_text("5")


def peak_mb(device: str) -> float:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_ours(pipe, control, corr, settings, device: str) -> dict:
    stamps, last = [], []
    calls = HostCalls(device)

    def on_step(k, t, x):
        synchronize(device)
        stamps.append(time.perf_counter())
        last[:] = [torch.isfinite(x).all()]
        calls.step()  # counts the calls of the next step (and the callback's own isfinite stays on device)

    peak_reset(device)
    start = time.perf_counter()
    with calls:
        pipe(PROMPT, "", control, corr, settings, SEED, callback_on_step_end=on_step, progress=False)
    synchronize(device)
    wall = time.perf_counter() - start
    steps = [b - a for a, b in zip(stamps, stamps[1:])]
    inner = calls.per_step[:-1]  # the last entry counts the final decode, outside the loop
    return {
        "s_per_step": statistics.median(steps) if steps else float("nan"),
        "wall_s": wall,
        "peak_mb": peak_mb(device),
        "finite": bool(last and last[0]),
        "host_calls_per_step": max(inner) if inner else 0,
    }


def run_theirs(theirs, control, settings: dict, device: str, dtype) -> dict:
    from diffusers.models.attention_processor import AttnProcessor2_0

    theirs.unet.set_attn_processor(AttnProcessor2_0())
    theirs.controlnet.set_attn_processor(AttnProcessor2_0())
    frames, res = control.shape[0], control.shape[1]
    image = torch.as_tensor(control, dtype=torch.float32)[:, None].expand(-1, 3, -1, -1) / 255.0
    stamps = []

    def on_step(pipeline, i, t, kwargs):
        synchronize(device)
        stamps.append(time.perf_counter())
        return kwargs

    peak_reset(device)
    start = time.perf_counter()
    theirs(
        prompt=[PROMPT] * frames,
        negative_prompt=[""] * frames,
        image=image.to(device, dtype),
        height=res,
        width=res,
        num_inference_steps=settings["num_inference_steps"],
        guidance_scale=settings["guidance_scale"],
        controlnet_conditioning_scale=settings["controlnet_scale"],
        generator=torch.Generator("cpu").manual_seed(SEED),
        output_type="np",
        callback_on_step_end=on_step,
    )
    synchronize(device)
    steps = [b - a for a, b in zip(stamps, stamps[1:])]
    return {
        "s_per_step": statistics.median(steps) if steps else float("nan"),
        "wall_s": time.perf_counter() - start,
        "peak_mb": peak_mb(device),
    }


def main(argv: list[str] | None = None) -> int:
    from latentman.generation.pipeline import LatentmanPipeline

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="float16", choices=["float16", "float32"])
    parser.add_argument("--model", default="embedded:sd15-random")
    parser.add_argument("--res", type=int, default=512)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--out", type=Path, default=REPO / "results" / "bench_gpu.json")
    args = parser.parse_args(argv)
    dtype = getattr(torch, args.dtype)
    models, _ = load_components(args.model, adapter=False)
    pipe = LatentmanPipeline(models, args.device, args.dtype)
    control, corr = make_inputs(args.frames, args.res)
    rows = {}
    run_ours(pipe, control, corr, latentman_settings(2, False, None, args.frames), args.device)  # warm-up
    for name, sla, pwg in (
        ("baseline", False, None),
        ("sla", True, None),
        ("pwg", False, "unet"),
        ("sla_pwg", True, "unet"),
    ):
        settings = latentman_settings(args.steps, sla, pwg, args.frames)
        rows[name] = run_ours(pipe, control, corr, settings, args.device)
        print(name, json.dumps(rows[name]), flush=True)
    plain = latentman_settings(args.steps, False, None, args.frames) | {"attention": "none"}
    rows["ours_plain"] = run_ours(pipe, control, corr, plain, args.device)
    theirs = diffusers_pipeline(pipe, pipe.unet).to(args.device, dtype)
    rows["diffusers"] = run_theirs(theirs, control, plain, args.device, dtype)
    rows["ours_vs_diffusers"] = rows["ours_plain"]["s_per_step"] / rows["diffusers"]["s_per_step"]
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    report = {
        "device": device_name,
        "dtype": args.dtype,
        "model": args.model,
        "res": args.res,
        "frames": args.frames,
        "steps": args.steps,
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d"),
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(
        f"\n{device_name}, {args.dtype}, {args.model}, {args.frames} frames of {args.res}², "
        f"{args.steps} steps"
    )
    print("| run | s / step | peak MB | host calls / step | finite |\n|---|--:|--:|--:|---|")
    for name, row in rows.items():
        if isinstance(row, dict):
            print(
                f"| {name} | {row['s_per_step']:.3f} | {row['peak_mb']:.0f} | "
                f"{row.get('host_calls_per_step', '')} | {row.get('finite', '')} |"
            )
    print(f"ours (no cross-frame attention) / diffusers, per step: {rows['ours_vs_diffusers']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
