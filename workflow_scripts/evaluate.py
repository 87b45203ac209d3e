"""Rule evaluate: frames.h5 + prev correspondences -> results/eval/{prompt}/{variant}.json."""

from latentman.correspondence.storage import read_correspondence_identity
from latentman.generation.storage import read_frames_identity
from latentman.io import Identity
from latentman.metrics.stage import EvaluationInputs, EvaluationSettings, run
from latentman.metrics.storage import write_evaluation
from latentman.scripting import run_step


def main(smk):
    prompt, variant = smk.wildcards.prompt, smk.wildcards.variant
    # the prev correspondences of this prompt; the frames of this prompt and of the variant whose video
    # this one is (itself, or an earlier equal one), generated from the render those correspondences were
    correspondence = read_correspondence_identity(
        smk.input.correspondence, Identity(prompt=prompt, reference="prev")
    )
    frames = read_frames_identity(
        smk.input.frames,
        Identity(
            prompt=prompt,
            variant=smk.params.frames_variant,
            made_from={"render": (correspondence.made_from or {}).get("render")},
            sources={"render": f"the render {smk.input.correspondence} was computed from"},
        ),
    )
    settings = EvaluationSettings.from_config({"clip_eval": smk.params.clip_model})
    inputs = EvaluationInputs(
        frames=smk.input.frames,
        correspondence=smk.input.correspondence,
        prompt=prompt,
        variant=variant,
        prompt_text=smk.params.prompt_text,
    )
    record = run(inputs, settings)
    made_from = {"frames": frames.settings_hash, "correspondence": correspondence.settings_hash}
    write_evaluation(smk.output[0], record, Identity(prompt=prompt, variant=variant, made_from=made_from))


run_step(snakemake, main)  # noqa: F821
