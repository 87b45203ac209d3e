"""Rule correspondence_preview: prev correspondences -> results/correspondence/{prompt}/preview.png."""

from latentman.correspondence.preview import write_preview
from latentman.correspondence.storage import read_correspondence_identity
from latentman.io import Identity
from latentman.render.storage import read_render_identity
from latentman.scripting import run_step


def main(smk):
    prompt = smk.wildcards.prompt
    render = read_render_identity(smk.input.render, Identity(prompt=prompt))
    expected = Identity(
        prompt=prompt,
        reference="prev",
        made_from={"render": render.settings_hash},
        sources={"render": str(smk.input.render)},
    )
    read_correspondence_identity(smk.input.correspondence, expected)
    write_preview(smk.input.correspondence, smk.output.preview, pairs=int(smk.params.pairs))


run_step(snakemake, main)  # noqa: F821
