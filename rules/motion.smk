# Motion stage: one prompt row (motion text, or its motion_file) -> joints (+ SMPL rotations) .npz,
# with a stick-figure preview for the report.
from latentman.motion import source_files


rule motion:
    input:
        unpack(lambda wc: source_files(prompt_row(wc.prompt), config)),
    output:
        motion=MOTION,
        gif=report(
            f"{RESULTS}/motion/{{prompt}}.gif",
            caption="../report/motion.rst",
            category="Motion",
            labels={"prompt": "{prompt}", "file": "preview (GIF)"},
        ),
        mp4=f"{RESULTS}/motion/{{prompt}}.mp4",
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
        row=lambda wc: prompt_row(wc.prompt),
        motion_config=config["motion"],
        models={
            key: config["models"].get(key) for key in ("mdm", "mdm_clip", "mdm_stats")
        },
    script:
        "../workflow_scripts/motion.py"
