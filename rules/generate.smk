# Generation stage: render + cached correspondences + variant settings -> frames.h5, video.mp4, video.gif.
# The tiny random-weight models of `embedded:tiny` are built once by rule embedded_models.
rule embedded_models:
    """Build the tiny random-weight models of embedded:tiny once (diffusers folders)."""
    output:
        directory(f"{MODELS}/embedded-tiny"),
    log:
        log_path("embedded_models", "embedded-tiny"),
    benchmark:
        benchmark_path("embedded_models", "embedded-tiny")
    conda:
        "../envs/cpu.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    script:
        "../workflow_scripts/embedded_models.py"


rule generate:
    """Generate one video (prompt x variant): frames.h5 plus mp4 and gif."""
    input:
        unpack(generate_inputs),
    output:
        frames=FRAMES,
        mp4=report(
            f"{RESULTS}/videos/{{prompt}}/{{variant}}/video.mp4",
            caption="../report/generate.rst",
            category="Videos",
            subcategory="{variant}",
            labels={
                "prompt": "{prompt}",
                "variant": "{variant}",
                "file": "video (MP4)",
            },
        ),
        gif=f"{RESULTS}/videos/{{prompt}}/{{variant}}/video.gif",
    log:
        log_path("generate", "{prompt}/{variant}"),
    benchmark:
        benchmark_path("generate", "{prompt}/{variant}")
    conda:
        "../envs/gpu.yaml"
    threads: 2
    resources:
        gpu=1,
        mem_mb=8000,
    params:
        request=generation_request,
        settings=lambda wc: variant_settings(wc.variant),
        models=generation_models(),
        models_dir=MODELS,
        device=config["device"],
        fps=config["generation"]["video_fps"],
    script:
        "../workflow_scripts/generate.py"
