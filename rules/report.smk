# Aggregation and report: eval JSONs of a sweep (or of the default run_variants, sweep "default") ->
# results/tables/{sweep}.csv/.md and results/plots/{sweep}/*.png; the `sweep` target builds one named sweep.
rule aggregate:
    """Table (csv, md) of a sweep's evaluations: H_MSE mean and std, change against the backbone, time."""
    input:
        sweep_evaluations,
    output:
        csv=report(
            f"{TABLE}.csv",
            caption="../report/table.rst",
            category="Tables",
            labels={"sweep": "{sweep}", "file": "table (CSV)"},
        ),
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
    script:
        "../workflow_scripts/aggregate.py"


rule plots:
    """Plots of a sweep: H_MSE per frame pair, H_MSE per variant, contact sheet of one prompt."""
    input:
        unpack(plot_inputs),
    output:
        per_pair=report(
            f"{PLOTS}/h_mse_per_pair.png",
            caption="../report/h_mse_per_pair.rst",
            category="Plots",
            labels={"sweep": "{sweep}", "plot": "H_MSE per frame pair"},
        ),
        bars=report(
            f"{PLOTS}/h_mse_bars.png",
            caption="../report/h_mse_bars.rst",
            category="Plots",
            labels={"sweep": "{sweep}", "plot": "H_MSE per variant"},
        ),
        contact=report(
            f"{PLOTS}/contact_sheet.png",
            caption="../report/contact_sheet.rst",
            category="Plots",
            labels={"sweep": "{sweep}", "plot": "contact sheet"},
        ),
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
    script:
        "../workflow_scripts/plots.py"


rule sweep:
    """Build one named sweep end to end: snakemake --cores all sweep --config sweep=NAME."""
    input:
        requested_sweep,
    localrule: True
