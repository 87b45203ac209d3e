"""Rule correspondence_preview: prev correspondences -> results/correspondence/{prompt}/preview.png."""

from latentman.correspondence.preview import write_preview
from latentman.scripting import run_step


def main(smk):
    write_preview(smk.input.correspondence, smk.output.preview, pairs=int(smk.params.pairs))


run_step(snakemake, main)  # noqa: F821
