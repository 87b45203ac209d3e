"""Rule render: results/motion/{prompt}.npz -> results/render/{prompt}.h5 + preview (.gif, .mp4)."""

from latentman.io import write_videos
from latentman.render.preview import preview_frames
from latentman.render.settings import RenderSettings
from latentman.render.stage import RenderInputs, run
from latentman.render.storage import write_render
from latentman.scripting import run_step


def main(smk):
    settings = RenderSettings.from_config(smk.params.render_config)
    inputs = RenderInputs(
        motion=smk.input.motion,
        prompt=smk.wildcards.prompt,
        frames=int(smk.params.frames),
        frame_step=int(smk.params.frame_step),
        body=smk.params.body,
        densepose_uv=smk.params.densepose_uv,
        densepose=smk.params.densepose,
    )
    record = run(inputs, settings)
    # The render file last: a failed preview leaves no render file that looks finished.
    write_videos(preview_frames(record.control, record.iuv), record.fps, smk.output.mp4, smk.output.gif)
    write_render(smk.output.render, record)


run_step(snakemake, main)  # noqa: F821
