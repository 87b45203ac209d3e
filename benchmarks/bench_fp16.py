"""Rehearsal: float16 at full size on the CPU, and what crosses each module boundary (issue 32, item 3).

Usage:  python benchmarks/bench_fp16.py [--model embedded:sd15-random] [--res 512] [--frames 2] [--steps 2]
            [--out results/bench_fp16.json]

The CUDA precision (float16 UNet, ControlNet and text encoder; float32 VAE and PWG gradient) run where
torch allows it, on the CPU, against the same video in float32: SLA and PWG on every step, the PWG
gradients of all three modes (``unet``, ``full``, ``decoder``) taken at every guided step through the
pipeline's ``gradient_probe``. Reported per precision: finite latents after every step, finite and
non-zero gradients per mode, the cosine of each mode's float16 gradient with its float32 one, the final
latents' and frames' differences; and the dtype and device of every tensor entering the text encoder,
ControlNet, UNet and VAE decoder (forward pre-hooks), each checked against what the pipeline promises.
Absolute times are CPU times (float16 matmuls are slow on a CPU), not a GPU's.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_generation import PROMPT, SEED, machine, make_inputs, make_settings  # noqa: E402


class BoundaryLog:
    """dtype and device of every floating tensor entering the watched modules' forward (timesteps, 0- or
    1-dimensional, excepted: diffusers casts those itself)."""

    def __init__(self, modules: dict[str, torch.nn.Module]):
        self.seen: dict[str, set[tuple[str, str]]] = {name: set() for name in modules}
        self._handles = [
            module.register_forward_pre_hook(self._hook(name), with_kwargs=True)
            for name, module in modules.items()
        ]

    def _hook(self, name: str):
        def record(module, args, kwargs):
            for value in list(args) + list(kwargs.values()):
                if isinstance(value, torch.Tensor) and value.is_floating_point() and value.ndim > 1:
                    self.seen[name].add((str(value.dtype).removeprefix("torch."), str(value.device)))

        return record

    def close(self) -> dict[str, list[str]]:
        for handle in self._handles:
            handle.remove()
        return {name: sorted(f"{d} on {dev}" for d, dev in seen) for name, seen in self.seen.items()}


def run(pipe, control, corr, settings) -> dict:
    """One video with the gradient probe and boundary hooks on."""
    grads, latents = [], []
    pipe.gradient_probe = lambda step, chunk, modes, loss: grads.append(
        {mode: g.detach().float().clone() for mode, g in modes.items()}
    )
    watched = {"text_encoder": pipe.text_encoder, "controlnet": pipe.controlnet, "unet": pipe.unet}
    watched["vae_decoder"] = pipe.vae.decoder
    log = BoundaryLog(watched)
    start = time.perf_counter()
    try:
        frames = pipe(
            PROMPT,
            "",
            control,
            corr,
            settings,
            SEED,
            callback_on_step_end=lambda k, t, x: latents.append(x.detach().float().clone()),
            progress=False,
        )
    finally:
        boundaries = log.close()
        pipe.gradient_probe = None
    return {
        "frames": frames,
        "latents": latents,
        "grads": grads,
        "boundaries": boundaries,
        "seconds": time.perf_counter() - start,
    }


def expected_boundaries(dtype: str) -> dict[str, str]:
    """What the pipeline promises: the UNet, ControlNet and text encoder see their own dtype; the VAE
    decoder (and with it PWG's pixel loss) always float32."""
    return {"text_encoder": dtype, "controlnet": dtype, "unet": dtype, "vae_decoder": "float32"}


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0))


def summarise(half: dict, full: dict, dtype: str) -> dict:
    modes = sorted(half["grads"][0]) if half["grads"] else []
    expected = expected_boundaries(dtype)
    # any other dtype entering a module is a boundary bug (a silent upcast, or a float32 tensor that a
    # float16 GPU kernel would refuse)
    # (the text encoder sees token ids only: no floating input)
    boundary_ok = {
        name: all(s == f"{expected[name]} on cpu" for s in seen) for name, seen in half["boundaries"].items()
    }
    return {
        "latents_finite": all(bool(torch.isfinite(x).all()) for x in half["latents"]),
        "guided_steps": len(half["grads"]),
        "grads_finite": {m: all(bool(torch.isfinite(g[m]).all()) for g in half["grads"]) for m in modes},
        "grads_nonzero": {m: all(float(g[m].abs().sum()) > 0 for g in half["grads"]) for m in modes},
        "grad_cosine_vs_float32": {
            m: [cosine(h[m], f[m]) for h, f in zip(half["grads"], full["grads"])] for m in modes
        },
        "final_latent_max_abs_diff": float((half["latents"][-1] - full["latents"][-1]).abs().max()),
        "final_latent_scale": float(full["latents"][-1].abs().max()),
        "frames_mean_abs_diff": float(np.abs(half["frames"].astype(int) - full["frames"].astype(int)).mean()),
        "frames_max_abs_diff": int(np.abs(half["frames"].astype(int) - full["frames"].astype(int)).max()),
        "boundaries": half["boundaries"],
        "boundaries_as_promised": boundary_ok,
        "seconds": half["seconds"],
        "seconds_float32": full["seconds"],
    }


def main(argv: list[str] | None = None) -> int:
    from bench_generation import load_pipeline

    from latentman.generation.pipeline import LatentmanPipeline

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", default="embedded:sd15-random", choices=["embedded:sd15-random", "embedded:tiny"]
    )
    parser.add_argument("--res", type=int, default=512)
    parser.add_argument("--frames", type=int, default=2)
    parser.add_argument("--steps", type=int, default=2, help="denoising steps, SLA and PWG on each")
    parser.add_argument("--out", type=Path, default=REPO / "results" / "bench_fp16.json")
    args = parser.parse_args(argv)
    control, corr = make_inputs(args.frames, args.res)
    settings = make_settings(args.steps, sla=True, pwg="unet", chunk=args.frames)
    # float32 first; the float16 pipeline then converts the same modules in place (one copy in memory)
    pipe32 = load_pipeline(args.model)
    full = run(pipe32, control, corr, settings)
    pipe16 = LatentmanPipeline(pipe32, "cpu", "float16")
    half = run(pipe16, control, corr, settings)
    summary = summarise(half, full, "float16")
    checks = {
        "latents finite": summary["latents_finite"],
        "PWG gradients finite (all modes)": all(summary["grads_finite"].values()),
        "PWG gradients non-zero (all modes)": all(summary["grads_nonzero"].values()),
        "module inputs in the promised dtype": all(summary["boundaries_as_promised"].values()),
    }
    report = {
        "model": args.model,
        "res": args.res,
        "frames": args.frames,
        "steps": args.steps,
        "machine": machine(),
        "date": str(datetime.date.today()),
        "summary": summary,
        "checks": checks,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"command: python benchmarks/bench_fp16.py {' '.join(sys.argv[1:] if argv is None else argv)}")
    print(f"machine: {machine()}; date {datetime.date.today()}\n")
    print(
        f"#### float16 vs float32 on the CPU ({args.model}, {args.res}², {args.frames} frames, "
        f"{args.steps} steps, SLA and PWG on every step)\n"
    )
    print("| check | result |\n|---|---|")
    for name, ok in checks.items():
        print(f"| {name} | {'yes' if ok else 'NO'} |")
    for mode, values in summary["grad_cosine_vs_float32"].items():
        print(
            f"| cos(float16, float32) of the `{mode}` gradient per guided step | "
            f"{', '.join(f'{v:.4f}' for v in values)} |"
        )
    print(
        f"| final latents, max abs diff (scale) | {summary['final_latent_max_abs_diff']:.3g} "
        f"({summary['final_latent_scale']:.3g}) |"
    )
    print(
        f"| frames, mean / max abs diff (uint8) | {summary['frames_mean_abs_diff']:.2f} / "
        f"{summary['frames_max_abs_diff']} |"
    )
    for name, seen in summary["boundaries"].items():
        print(f"| floating inputs of {name} | {', '.join(seen) or 'none (token ids)'} |")
    print(
        f"| seconds, float16 / float32 (CPU) | {summary['seconds']:.0f} / {summary['seconds_float32']:.0f} |"
    )
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
