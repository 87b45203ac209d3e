"""Rule generate: render + correspondences -> results/videos/{prompt}/{variant}/frames.h5, .mp4, .gif."""

import torch

from latentman.generation import generate_video, write_frames
from latentman.io import write_videos
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
    write_videos(frames, smk.params.fps, smk.output.mp4, smk.output.gif)


run_step(snakemake, main)  # noqa: F821
