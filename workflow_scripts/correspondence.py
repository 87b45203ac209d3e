"""Rule correspondence: results/render/{prompt}.h5 -> results/correspondence/{prompt}/{reference}.h5."""

from latentman.correspondence import correspondence_stage
from latentman.scripting import run_step


def main(smk):
    correspondence_stage(
        smk.input.render,
        smk.output.correspondence,
        smk.wildcards.reference,
        smk.params.method,
        smk.params.radius,
        workers=smk.threads,
    )


run_step(snakemake, main)  # noqa: F821
