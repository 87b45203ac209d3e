# Aggregation and report: eval JSONs of a sweep (or of the default run_variants, sweep "default") ->
# results/tables/{sweep}.csv/.md and results/plots/{sweep}/*.png; the `sweep` target builds one named sweep.
# The Snakemake report shows the gallery pages only (results/gallery/): videos, previews, table and plots
# inline, built from whatever exists with --config partial=true, so a partly finished run has a report.
rule aggregate:
    """Table (csv, md) of a sweep's evaluations: H_MSE mean and std, change against the backbone, time."""
    input:
        sweep_evaluations,
    output:
        csv=f"{TABLE}.csv",
        md=f"{TABLE}.md",
    log:
        log_path("aggregate", "{sweep}"),
    benchmark:
        benchmark_path("aggregate", "{sweep}")
    conda:
        "../envs/cpu.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    params:
        groups=lambda wc: sweep_members(wc.sweep)[1],
        sweep="{sweep}",
        # eval JSON -> [prompt, variant] it must hold (the job checks every file)
        evaluations=lambda wc: {
            EVALUATION.format(prompt=p, variant=v): [p, v]
            for v in sweep_members(wc.sweep)[0]
            for p in sweep_members(wc.sweep)[2]
        },
    script:
        "../workflow_scripts/aggregate.py"


rule plots:
    """Plots of a sweep: H_MSE per frame pair, H_MSE per variant, contact sheet of one prompt."""
    input:
        unpack(plot_inputs),
    output:
        per_pair=f"{PLOTS}/h_mse_per_pair.png",
        bars=f"{PLOTS}/h_mse_bars.png",
        contact=f"{PLOTS}/contact_sheet.png",
    log:
        log_path("plots", "{sweep}"),
    benchmark:
        benchmark_path("plots", "{sweep}")
    conda:
        "../envs/cpu.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    params:
        groups=lambda wc: sweep_members(wc.sweep)[1],
        contact_groups=lambda wc: sweep_groups_in_order(wc.sweep),
        contact_prompt=lambda wc: sweep_members(wc.sweep)[2][0],
        # eval JSON -> [prompt, variant] it must hold (the job checks every file)
        evaluations=lambda wc: {
            EVALUATION.format(prompt=p, variant=v): [p, v]
            for v in sweep_members(wc.sweep)[0]
            for p in sweep_members(wc.sweep)[2]
        },
    script:
        "../workflow_scripts/plots.py"


# ---------------------------------------------------------------------------- gallery (the report's pages)
# Paths and input functions: rules/common.smk (gallery_targets, gallery_prompt_inputs, ...).
rule gallery_prompt:
    """Report page of one prompt of a sweep: every variant's video side by side, labelled, and the previews."""
    input:
        unpack(gallery_prompt_inputs),
    output:
        html=report(
            f"{GALLERY}/{{prompt}}.html",
            caption="../report/gallery_prompt.rst",
            category="Gallery",
            subcategory="sweep {sweep}",
            labels={
                "page": "prompt {prompt}",
                "shows": "videos of every variant, previews",
            },
        ),
    log:
        log_path("gallery_prompt", "{sweep}/{prompt}"),
    benchmark:
        benchmark_path("gallery_prompt", "{sweep}/{prompt}")
    localrule: True
    conda:
        "../envs/cpu.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    params:
        sweep="{sweep}",
        texts=lambda wc: {k: prompt_row(wc.prompt)[k] for k in ("motion", "prompt")},
        videos=lambda wc: gallery_videos(wc.sweep, wc.prompt),
        previews=lambda wc: gallery_previews(wc.prompt),
        fps=config["generation"]["video_fps"],
    script:
        "../workflow_scripts/gallery.py"


rule gallery:
    """Report page of a sweep: the H_MSE table as HTML, the plots with captions, the videos still missing."""
    input:
        unpack(gallery_summary_inputs),
    output:
        html=report(
            f"{GALLERY}.html",
            caption="../report/gallery.rst",
            category="Gallery",
            subcategory="sweep {sweep}",
            labels={"page": "summary", "shows": "table, plots, missing videos"},
        ),
    log:
        log_path("gallery", "{sweep}"),
    benchmark:
        benchmark_path("gallery", "{sweep}")
    localrule: True
    conda:
        "../envs/cpu.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    params:
        sweep="{sweep}",
        videos=lambda wc: gallery_summary_videos(wc.sweep),
        groups=lambda wc: sweep_members(wc.sweep)[1],
        contact_prompt=lambda wc: sweep_members(wc.sweep)[2][0],
    script:
        "../workflow_scripts/gallery.py"


rule gallery_pages:
    """Report pages of the default run or --config sweep=NAME (partial=true: from what has finished)."""
    input:
        lambda wc: gallery_targets(config.get("sweep") or "default"),
    localrule: True


rule sweep:
    """Build one named sweep end to end: snakemake --cores all sweep --config sweep=NAME."""
    input:
        requested_sweep,
    localrule: True
