"""Rule encode_video: results/videos/{prompt}/{variant}/frames.h5 -> video.mp4 + video.gif, labelled."""

from latentman.generation.video import encode_videos, video_label
from latentman.scripting import run_step


def main(smk):
    label = video_label(smk.wildcards.variant, smk.wildcards.prompt)
    encode_videos(smk.input.frames, smk.params.fps, smk.output.mp4, smk.output.gif, label)


run_step(snakemake, main)  # noqa: F821
