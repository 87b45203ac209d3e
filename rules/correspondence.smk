# Correspondence stage: render IUV (+ surface points) -> per-pair dense maps at the latent and
# guidance grids, one file per reference mode; computed once per prompt, reused by every variant.


rule correspondence:
    """Dense cross-frame correspondences of one prompt for one reference mode, at the latent and guidance grids."""
    input:
        render=RENDER,
    output:
        correspondence=CORRESPONDENCE,
    log:
        log_path("correspondence", "{prompt}/{reference}"),
    benchmark:
        benchmark_path("correspondence", "{prompt}/{reference}")
    conda:
        "../envs/cpu.yaml"
    threads: 1
    resources:
        mem_mb=4000,
    params:
        method=config["correspondence"]["method"],
        radius=correspondence_radius(),
        # the motion rule's params: the job checks the render was made from that motion
        motion_request=motion_request,
        motion_config=config["motion"],
        motion_models=motion_models(),
    script:
        "../workflow_scripts/correspondence.py"


rule correspondence_preview:
    """Preview PNG of the prev correspondences of one prompt (matched pixels of a few frame pairs)."""
    input:
        render=RENDER,
        correspondence=CORRESPONDENCE.replace("{reference}", "prev"),
    output:
        # shown in the report on the gallery page of the prompt (rules/report.smk)
        preview=CORRESPONDENCE_PREVIEW,
    log:
        log_path("correspondence_preview", "{prompt}"),
    benchmark:
        benchmark_path("correspondence_preview", "{prompt}")
    conda:
        "../envs/cpu.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    params:
        pairs=3,
    script:
        "../workflow_scripts/correspondence_preview.py"
