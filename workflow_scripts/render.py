"""Rule render: results/motion/{prompt}.npz -> results/render/{prompt}.h5 + preview (.gif, .mp4)."""

from latentman.render import RenderSettings, render_prompt
from latentman.scripting import run_step


def main(smk):
    render_prompt(
        smk.input.motion,
        smk.output.render,
        smk.output.gif,
        smk.output.mp4,
        settings=RenderSettings.from_config(smk.params.render_config),
        prompt=smk.wildcards.prompt,
        frames=int(smk.params.frames),
        frame_step=int(smk.params.frame_step),
        body_spec=smk.params.body,
        densepose_uv=smk.params.densepose_uv,
        densepose_model=smk.params.densepose,
    )


run_step(snakemake, main)  # noqa: F821
