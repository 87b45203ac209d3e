"""Rule encode_video: results/videos/{prompt}/{variant}/frames.h5 -> video.mp4 + video.gif, labelled."""

from latentman.generation.storage import read_frames_identity
from latentman.generation.video import encode_videos, video_label
from latentman.io import Identity
from latentman.scripting import run_step


def main(smk):
    prompt, variant = smk.wildcards.prompt, smk.wildcards.variant
    read_frames_identity(smk.input.frames, Identity(prompt=prompt, variant=variant))
    label = video_label(variant, prompt)
    encode_videos(smk.input.frames, smk.params.fps, smk.output.mp4, smk.output.gif, label)


run_step(snakemake, main)  # noqa: F821
