# Body + render stage: motion -> SMPL fit -> per-frame depth, ControlNet control image, exact IUV,
# face ids + barycentrics (HDF5), with a preview (control | IUV) for the report.
rule render:
    """Fit the body to the motion and render depth, control image and exact IUV per frame, with a preview."""
    input:
        unpack(render_inputs),
        motion=MOTION,
    output:
        render=RENDER,
        # shown in the report on the gallery page of the prompt (rules/report.smk)
        gif=RENDER_PREVIEW.replace("{ext}", "gif"),
        mp4=RENDER_PREVIEW.replace("{ext}", "mp4"),
    log:
        log_path("render", "{prompt}"),
    benchmark:
        benchmark_path("render", "{prompt}")
    conda:
        "../envs/cpu.yaml"
    threads: 1
    resources:
        mem_mb=4000,
    params:
        render_config=config["render"],
        body=config["models"]["body"],
        densepose_uv=config["models"].get("densepose_uv"),
        densepose=config["models"].get("densepose") if uses_densepose() else None,
        frames=lambda wc: prompt_row(wc.prompt)["frames"],
        frame_step=config["motion"]["frame_step"],
        # the motion rule's params: the render job checks the motion file was made with them
        motion_request=motion_request,
        motion_config=config["motion"],
        motion_models=motion_models(),
    script:
        "../workflow_scripts/render.py"
