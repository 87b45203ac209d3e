#!/usr/bin/env python
"""PWG's gradient modes against the true gradient, on the prompts of a finished run.

    snakemake --cores all && python tools/pwg_study.py [--variant latentman] [--prompts walk_red ...]

For each prompt, one generation with the variant's settings (PWG on): at every guided step the cosine of
the ``unet`` (official code) and ``decoder`` gradients with ``full`` (the exact ∇_{x_t} ω), and the PWG
loss ω per guided step with guidance and without it (latentman_dev.pwg_study). Reads the run's
render and correspondence files; writes ``results/pwg_study.json`` and prints a summary.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    import numpy as np
    import torch

    from latentman.config import load_config, load_prompts, resolve_variant
    from latentman.generation.pipeline import LatentmanPipeline
    from latentman.generation.stage import read_guidance_inputs
    from latentman.models import load_models
    from latentman_dev.pwg_study import gradient_study

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "config.yaml")
    parser.add_argument("--results", type=Path, default=ROOT / "results")
    parser.add_argument("--variant", default="latentman")
    parser.add_argument("--prompts", nargs="*", default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(2)

    config = load_config(args.config)
    prompts = load_prompts(ROOT / config["prompts"])
    settings = resolve_variant(config, args.variant)
    reference = settings["reference"]
    models = load_models(config["models"], args.results / "models")
    pipe = LatentmanPipeline(models, "cpu", "float32")
    studies = {}
    for prompt_id in args.prompts or list(prompts.index):
        row = prompts.loc[prompt_id]
        render = args.results / "render" / f"{prompt_id}.h5"
        correspondence = args.results / "correspondence" / prompt_id / f"{reference}.h5"
        control, mask, maps = read_guidance_inputs(render, correspondence, True)
        seed = settings["seed"] if settings["seed"] is not None else int(row["seed"])
        prompt = str(row["prompt"]) + settings["prompt_suffix"]
        negative = row["negative_prompt"] or settings["negative_prompt"]
        study = gradient_study(pipe, prompt, negative, control, maps, settings, seed, mask=mask)
        studies[prompt_id] = study
        guided, unguided = study["loss_guided"], study["loss_unguided"]
        print(
            f"{prompt_id}: cos(unet, full) {study['mean_cos_unet']:.3f}, cos(decoder, full) "
            f"{study['mean_cos_decoder']:.3f}; ω summed over guided steps {sum(guided):.1f} with PWG vs "
            f"{sum(unguided):.1f} without ({100 * (sum(guided) / sum(unguided) - 1):+.2f} %)"
        )
    summary = {
        "variant": args.variant,
        "model": config["models"]["stable_diffusion"],
        "mean_cos_unet": float(np.mean([s["mean_cos_unet"] for s in studies.values()])),
        "mean_cos_decoder": float(np.mean([s["mean_cos_decoder"] for s in studies.values()])),
        "prompts": studies,
    }
    out = args.out or args.results / "pwg_study.json"
    out.write_text(json.dumps(summary, indent=1) + "\n")
    unet, decoder = summary["mean_cos_unet"], summary["mean_cos_decoder"]
    print(f"mean cos(unet, full) {unet:.3f}, cos(decoder, full) {decoder:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
