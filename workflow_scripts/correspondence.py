"""Rule correspondence: results/render/{prompt}.h5 -> results/correspondence/{prompt}/{reference}.h5."""

from latentman.correspondence.stage import CorrespondenceInputs, CorrespondenceSettings, run
from latentman.correspondence.storage import write_correspondence
from latentman.scripting import run_step


def main(smk):
    settings = CorrespondenceSettings.from_config(
        {"method": smk.params.method, "surface_radius": smk.params.radius}, workers=smk.threads
    )
    inputs = CorrespondenceInputs(render=smk.input.render, reference=smk.wildcards.reference)
    record = run(inputs, settings)
    write_correspondence(smk.output.correspondence, record)


run_step(snakemake, main)  # noqa: F821
