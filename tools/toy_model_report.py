#!/usr/bin/env python
"""Measure the toy model's quality bar on held-out clips and draw a contact sheet.

    python tools/toy_model_report.py [--model DIR] [--clips 12] [--frames 4] [--out results/toy_report]

DIR is an exported toy model (default: the shipped latentman/data/toy_model). Writes ``bar.json`` (bars
(a)-(c) of latentman_dev.toy.quality, per clip and garment, and bar (b) of the painted ground truth itself),
``frames.npz`` (the generated frames, for later analysis) and ``contact_sheet.png`` (per held-out clip:
the painted ground truth, Text2Video-Zero frames and independent frames), and prints the numbers.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    import numpy as np
    import torch

    from latentman.config import load_config, resolve_variant
    from latentman.generation.pipeline import LatentmanPipeline
    from latentman.models import TOY_DIR, load_models
    from latentman_dev.toy import quality

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=TOY_DIR)
    parser.add_argument("--clips", type=int, default=12)
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--consistency-clips", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--guidance", type=float, default=None)
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "toy_report")
    parser.add_argument(
        "--frames-from",
        type=Path,
        help="measure the frames.npz an earlier run of this tool wrote (same clips and settings) instead of "
        "generating them again",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    config = load_config(ROOT / "config.yaml")
    settings = resolve_variant(config, "t2v_zero")
    settings.update(num_inference_steps=args.steps, prompt_suffix="", negative_prompt="")
    if args.guidance is not None:
        settings["guidance_scale"] = args.guidance
    generated, pipe = {}, None
    if args.frames_from is not None:
        with np.load(args.frames_from / "frames.npz") as saved:
            # keys "clip07_t2v_zero": (clip index, mode); the index may have more than two digits
            generated = {
                (int(index), mode): saved[key]
                for key in saved.files
                for index, mode in [key.removeprefix("clip").split("_", 1)]
            }
    if len(generated) < args.clips + min(args.consistency_clips, args.clips):
        models = load_models(
            {
                "stable_diffusion": str(args.model / "stable_diffusion"),
                "controlnet_depth": str(args.model / "controlnet_depth"),
            }
        )
        pipe = LatentmanPipeline(models, "cpu", "float32")
    clips = quality.held_out_clips(args.clips, args.frames, config["render"]["resolution"])
    result, frames = quality.measure_bar(
        pipe, clips, settings, args.seed, args.consistency_clips, generated=generated
    )

    args.out.mkdir(parents=True, exist_ok=True)
    summary = {
        "model": str(args.model),
        "settings": {"steps": args.steps, "guidance_scale": settings["guidance_scale"], "seed": args.seed},
        "depth_contrast": result.depth_contrast,
        "caption_rate": result.caption_rate,
        "garment_rates": result.garment_rates,
        "caption_rate_raw": result.caption_rate_raw,
        "ground_truth_caption_rate": result.ground_truth_rate,
        "ground_truth_caption_rate_raw": result.ground_truth_rate_raw,
        "h_mse_independent": result.h_mse_independent,
        "h_mse_t2v_zero": result.h_mse_t2v_zero,
        "consistency_ratio": result.consistency_ratio,
        "passes": result.passes(),
        "clips": [
            {**d, "checks": [dataclasses.asdict(c) | {"matches": c.matches} for c in d["checks"]]}
            for d in result.details
        ],
    }
    (args.out / "bar.json").write_text(json.dumps(summary, indent=1) + "\n")
    rows = []
    for index, clip in enumerate(clips):
        row = [
            np.concatenate(list(clip.images), axis=1),
            np.concatenate(list(frames[(index, "t2v_zero")]), axis=1),
        ]
        if (index, "independent") in frames:
            row.append(np.concatenate(list(frames[(index, "independent")]), axis=1))
        rows.append(np.concatenate(row, axis=1))
    width = max(r.shape[1] for r in rows)
    sheet = np.concatenate([np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows], axis=0)
    import imageio.v2 as imageio

    imageio.imwrite(args.out / "contact_sheet.png", sheet)
    np.savez_compressed(
        args.out / "frames.npz", **{f"clip{index:02d}_{mode}": f for (index, mode), f in frames.items()}
    )
    rates = {k: round(v, 2) for k, v in result.garment_rates.items()}
    print(f"(a) depth contrast {result.depth_contrast:.2f} (>= 3)")
    print(f"(b) captions matched {result.caption_rate:.0%} (>= 80 %); per garment {rates}")
    print(
        f"    against the raw palette {result.caption_rate_raw:.0%}; the painted ground truth itself: "
        f"{result.ground_truth_rate:.0%} (painted references), "
        f"{result.ground_truth_rate_raw:.0%} (raw palette)"
    )
    print(
        f"(c) H_MSE independent {result.h_mse_independent:.1f} / T2V-Zero {result.h_mse_t2v_zero:.1f} "
        f"= {result.consistency_ratio:.2f} (>= 2)"
    )
    for detail in result.details:
        print(
            " ",
            detail["caption"],
            "|",
            " ".join(f"{c.garment}:{c.nearest}/{c.nearest_of_mean}" for c in detail["checks"]),
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
