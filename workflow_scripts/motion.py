"""Rule motion: prompt row -> results/motion/{prompt}.npz + stick-figure preview (.gif, .mp4)."""

from latentman.io import write_videos
from latentman.motion.preview import preview_title, render_frames
from latentman.motion.stage import MotionInputs, MotionSettings, run
from latentman.motion.storage import write_motion
from latentman.scripting import run_step


def main(smk):
    settings = MotionSettings.from_config(smk.params.motion_config)
    inputs = MotionInputs.from_row(smk.params.request, smk.params.models)
    motion = run(inputs, settings)
    write_motion(smk.output.motion, motion)
    frames = render_frames(motion.joints, title=preview_title(smk.wildcards.prompt, motion))
    write_videos(frames, motion.fps, smk.output.mp4, smk.output.gif)


run_step(snakemake, main)  # noqa: F821
