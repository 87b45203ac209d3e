"""Rule evaluate: frames.h5 + prev correspondences -> results/eval/{prompt}/{variant}.json."""

from latentman.metrics.evaluate import evaluate_video
from latentman.metrics.storage import write_evaluation
from latentman.scripting import run_step


def main(smk):
    record = evaluate_video(
        smk.input.frames,
        smk.input.correspondence,
        prompt=smk.wildcards.prompt,
        variant=smk.wildcards.variant,
        prompt_text=smk.params.prompt_text,
        clip_model=smk.params.clip_model,
    )
    write_evaluation(smk.output[0], record)


run_step(snakemake, main)  # noqa: F821
