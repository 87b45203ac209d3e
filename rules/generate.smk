# Generation stage: render + cached correspondences + variant settings -> frames.h5; encode_video turns
# frames.h5 into the labelled video.mp4 and video.gif (its own rule: a new frame rate never re-denoises).
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
    """Generate one video (prompt x variant): the frames and their provenance in frames.h5."""
    input:
        unpack(generate_inputs),
    output:
        frames=FRAMES,
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
        models=lambda wc: generation_models(wc.variant),
        models_dir=MODELS,
        device=config["device"],
    script:
        "../workflow_scripts/generate.py"


rule encode_video:
    """Encode one generated video's frames.h5 as MP4 and GIF, the variant and prompt written on every frame."""
    input:
        frames=FRAMES,
    output:
        mp4=VIDEO.replace("{ext}", "mp4"),
        gif=VIDEO.replace("{ext}", "gif"),
    log:
        log_path("encode_video", "{prompt}/{variant}"),
    benchmark:
        benchmark_path("encode_video", "{prompt}/{variant}")
    conda:
        "../envs/cpu.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    params:
        fps=config["generation"]["video_fps"],
    script:
        "../workflow_scripts/encode_video.py"
