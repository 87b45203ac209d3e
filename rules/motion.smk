# Motion stage: one prompt row (motion text, or its motion_file) -> joints (+ SMPL rotations) .npz,
# with a stick-figure preview for the report.
rule motion:
    """Motion of one prompt (motion_file, MDM or the built-in library) as joints, with a stick-figure preview."""
    input:
        unpack(motion_inputs),
    output:
        motion=MOTION,
        # shown in the report on the gallery page of the prompt (rules/report.smk)
        gif=MOTION_PREVIEW.replace("{ext}", "gif"),
        mp4=MOTION_PREVIEW.replace("{ext}", "mp4"),
    log:
        log_path("motion", "{prompt}"),
    benchmark:
        benchmark_path("motion", "{prompt}")
    conda:
        "../envs/cpu.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    params:
        request=motion_request,
        motion_config=config["motion"],
        models=motion_models(),
    script:
        "../workflow_scripts/motion.py"
