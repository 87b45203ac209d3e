"""Rule generate: render + correspondences -> results/videos/{prompt}/{variant}/frames.h5."""

import torch

from latentman.generation import generate_video, write_frames
from latentman.scripting import run_step


def main(smk):
    torch.set_num_threads(smk.threads)
    frames, attrs = generate_video(
        {"id": smk.wildcards.prompt, **dict(smk.params.request)},
        dict(smk.params.settings),
        dict(smk.params.models),
        smk.input.render,
        smk.input.get("correspondence"),
        models_dir=smk.params.models_dir,
        device=smk.params.device,
    )
    write_frames(smk.output.frames, frames, attrs)


# transformers/diffusers chatter goes to the job's log file; the denoising progress stays on the terminal
run_step(snakemake, main, libraries=True)  # noqa: F821
