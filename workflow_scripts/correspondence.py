"""Rule correspondence: results/render/{prompt}.h5 -> results/correspondence/{prompt}/{reference}.h5."""

from latentman.correspondence import compute_correspondences, read_render_inputs, write_correspondence
from latentman.scripting import run_step


def main(smk):
    method = smk.params.method
    render = read_render_inputs(smk.input.render, method)
    result = compute_correspondences(
        render,
        smk.wildcards.reference,
        method,
        float(smk.params.radius),
        source=smk.input.render,
        workers=smk.threads,
    )
    write_correspondence(smk.output.correspondence, result, smk.wildcards.reference, method)


run_step(snakemake, main)  # noqa: F821
