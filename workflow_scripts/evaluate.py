"""Rule evaluate: frames.h5 + prev correspondences -> results/eval/{prompt}/{variant}.json."""

from latentman.metrics.stage import EvaluationInputs, EvaluationSettings, run
from latentman.metrics.storage import write_evaluation
from latentman.scripting import run_step


def main(smk):
    settings = EvaluationSettings.from_config({"clip_eval": smk.params.clip_model})
    inputs = EvaluationInputs(
        frames=smk.input.frames,
        correspondence=smk.input.correspondence,
        prompt=smk.wildcards.prompt,
        variant=smk.wildcards.variant,
        prompt_text=smk.params.prompt_text,
    )
    record = run(inputs, settings)
    write_evaluation(smk.output[0], record)


run_step(snakemake, main)  # noqa: F821
