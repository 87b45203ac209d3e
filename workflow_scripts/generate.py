"""Rule generate: render + correspondences -> results/videos/{prompt}/{variant}/frames.h5."""

import torch

from latentman.generation import GenerationInputs, GenerationSettings, run, write_frames
from latentman.scripting import run_step


def main(smk):
    torch.set_num_threads(smk.threads)
    request = smk.params.request
    inputs = GenerationInputs(
        prompt_id=smk.wildcards.prompt,
        prompt=request["prompt"],
        negative_prompt=request["negative_prompt"],
        frames=int(request["frames"]),
        seed=int(request["seed"]),
        render=smk.input.render,
        correspondence=smk.input.get("correspondence"),
        models=dict(smk.params.models),
        models_dir=smk.params.models_dir,
        device=smk.params.device,
    )
    write_frames(smk.output.frames, run(inputs, GenerationSettings.from_config(dict(smk.params.settings))))


# transformers/diffusers chatter goes to the job's log file; the denoising progress stays on the terminal
run_step(snakemake, main, libraries=True)  # noqa: F821
