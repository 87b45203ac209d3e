"""Rule motion: prompt row -> results/motion/{prompt}.npz + stick-figure preview (.gif, .mp4)."""

from latentman.io import write_videos
from latentman.motion import make_motion, write_motion
from latentman.motion.preview import preview_title, render_frames
from latentman.scripting import run_step


def main(smk):
    config = {"motion": dict(smk.params.motion_config), "models": dict(smk.params.models)}
    motion = make_motion(dict(smk.params.request), config)
    write_motion(smk.output.motion, motion)
    frames = render_frames(motion.joints, title=preview_title(smk.wildcards.prompt, motion))
    write_videos(frames, motion.fps, smk.output.mp4, smk.output.gif)


run_step(snakemake, main)  # noqa: F821
