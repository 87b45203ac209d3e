"""Rule render: results/motion/{prompt}.npz -> results/render/{prompt}.h5 + preview (.gif, .mp4)."""

from latentman.io import Identity, write_videos
from latentman.motion.storage import motion_settings_hash, read_motion_identity
from latentman.render.preview import preview_frames
from latentman.render.settings import RenderSettings
from latentman.render.stage import RenderInputs, run
from latentman.render.storage import write_render
from latentman.scripting import run_step


def main(smk):
    prompt = smk.wildcards.prompt
    params = smk.params
    # the motion must be this prompt's, made with the motion params this config gives it
    expected = motion_settings_hash(params.motion_request, params.motion_config, params.motion_models)
    motion = read_motion_identity(smk.input.motion, Identity(prompt=prompt, settings_hash=expected))
    settings = RenderSettings.from_config(params.render_config)
    inputs = RenderInputs(
        motion=smk.input.motion,
        prompt=prompt,
        frames=int(params.frames),
        frame_step=int(params.frame_step),
        body=params.body,
        densepose_uv=params.densepose_uv,
        densepose=params.densepose,
    )
    record = run(inputs, settings)
    # The render file last: a failed preview leaves no render file that looks finished.
    write_videos(preview_frames(record.control, record.iuv), record.fps, smk.output.mp4, smk.output.gif)
    write_render(
        smk.output.render, record, Identity(prompt=prompt, made_from={"motion": motion.settings_hash})
    )


run_step(snakemake, main)  # noqa: F821
