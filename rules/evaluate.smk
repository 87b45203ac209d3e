# Evaluation stage: frames.h5 + the prev correspondences of the same prompt -> results/eval/{prompt}/{variant}.json
# (H_MSE as in the paper's Eq. 9, the official code's H_MSE, optional CLIP score, time and memory).


rule evaluate:
    """H_MSE (paper Eq. 9 and the official code's), optional CLIP score, time and memory of one video."""
    input:
        # a variant equal to an earlier one reads that one's video (rules/common.smk, SHARED)
        frames=evaluation_frames,
        correspondence=CORRESPONDENCE.format(prompt="{prompt}", reference="prev"),
    output:
        EVALUATION,
    log:
        log_path("evaluate", "{prompt}/{variant}"),
    benchmark:
        benchmark_path("evaluate", "{prompt}/{variant}")
    conda:
        "../envs/cpu.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    params:
        prompt_text=lambda wc: prompt_row(wc.prompt)["prompt"],
        clip_model=config["models"].get("clip_eval"),
        # the variant whose frames.h5 this evaluation reads (the job checks the file holds it)
        frames_variant=lambda wc: canonical_variant(wc.variant),
    script:
        "../workflow_scripts/evaluate.py"
