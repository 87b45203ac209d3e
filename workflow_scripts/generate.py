"""Rule generate: render + correspondences -> results/videos/{prompt}/{variant}/frames.h5."""

import torch

from latentman.correspondence.storage import read_correspondence_identity
from latentman.generation import GenerationInputs, GenerationSettings, run, write_frames
from latentman.io import Identity
from latentman.render.storage import read_render_identity
from latentman.scripting import run_step


def main(smk):
    torch.set_num_threads(smk.threads)
    prompt = smk.wildcards.prompt
    request = smk.params.request
    settings = dict(smk.params.settings)
    # the render must be this prompt's; the correspondences this prompt's, of the variant's reference
    # mode, and computed from that very render
    render = read_render_identity(smk.input.render, Identity(prompt=prompt))
    made_from = {"render": render.settings_hash}
    correspondence = smk.input.get("correspondence")
    if correspondence:
        expected = Identity(
            prompt=prompt,
            reference=settings.get("reference"),
            made_from={"render": render.settings_hash},
            sources={"render": str(smk.input.render)},
        )
        made_from["correspondence"] = read_correspondence_identity(correspondence, expected).settings_hash
    inputs = GenerationInputs(
        prompt_id=prompt,
        prompt=request["prompt"],
        negative_prompt=request["negative_prompt"],
        frames=int(request["frames"]),
        seed=int(request["seed"]),
        render=smk.input.render,
        correspondence=correspondence,
        models=dict(smk.params.models),
        models_dir=smk.params.models_dir,
        device=smk.params.device,
    )
    record = run(inputs, GenerationSettings.from_config(settings))
    identity = Identity(prompt=prompt, variant=smk.wildcards.variant, made_from=made_from)
    write_frames(smk.output.frames, record, identity)


# transformers/diffusers chatter goes to the job's log file; the denoising progress stays on the terminal
run_step(snakemake, main, libraries=True)  # noqa: F821
