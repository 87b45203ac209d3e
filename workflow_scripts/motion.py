"""Rule motion: prompt row -> results/motion/{prompt}.npz + stick-figure preview (.gif, .mp4)."""

from latentman.io import Identity, write_videos
from latentman.motion.preview import preview_title, render_frames
from latentman.motion.stage import MotionInputs, MotionSettings, run
from latentman.motion.storage import motion_settings_hash, write_motion
from latentman.scripting import run_step


def main(smk):
    settings = MotionSettings.from_config(smk.params.motion_config)
    inputs = MotionInputs.from_row(smk.params.request, smk.params.models)
    motion = run(inputs, settings)
    # the identity the render job checks: this prompt, made with these params
    settings_hash = motion_settings_hash(smk.params.request, smk.params.motion_config, smk.params.models)
    write_motion(
        smk.output.motion, motion, Identity(prompt=smk.wildcards.prompt, settings_hash=settings_hash)
    )
    frames = render_frames(motion.joints, title=preview_title(smk.wildcards.prompt, motion))
    write_videos(frames, motion.fps, smk.output.mp4, smk.output.gif)


run_step(snakemake, main)  # noqa: F821
