"""Rule correspondence: results/render/{prompt}.h5 -> results/correspondence/{prompt}/{reference}.h5."""

from latentman.correspondence.stage import CorrespondenceInputs, CorrespondenceSettings, run
from latentman.correspondence.storage import write_correspondence
from latentman.io import Identity
from latentman.motion.storage import motion_settings_hash
from latentman.render.storage import read_render_identity
from latentman.scripting import run_step


def main(smk):
    prompt = smk.wildcards.prompt
    params = smk.params
    # the render must be this prompt's, made from the motion this config gives it
    motion = motion_settings_hash(params.motion_request, params.motion_config, params.motion_models)
    render = read_render_identity(
        smk.input.render,
        Identity(
            prompt=prompt,
            made_from={"motion": motion},
            sources={"motion": f"the motion settings of prompt {prompt!r} in this config"},
        ),
    )
    settings = CorrespondenceSettings.from_config(
        {"method": params.method, "surface_radius": params.radius}, workers=smk.threads
    )
    inputs = CorrespondenceInputs(render=smk.input.render, reference=smk.wildcards.reference)
    record = run(inputs, settings)
    identity = Identity(prompt=prompt, made_from={"render": render.settings_hash})
    write_correspondence(smk.output.correspondence, record, identity=identity)


run_step(snakemake, main)  # noqa: F821
