# LatentMan: text prompt -> motion -> body render -> correspondences -> video -> evaluation.
# The stages live in rules/*.smk; paths, validation and input functions in rules/common.smk.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/motion.smk"
include: "rules/render.smk"
include: "rules/correspondence.smk"
include: "rules/generate.smk"
include: "rules/evaluate.smk"
include: "rules/report.smk"


# Tables, plots and the sweep target are seconds of work on files already here: never a cluster job.
localrules:
    all,
    aggregate,
    plots,
    sweep,


rule all:
    """The default run: every stage for every prompt and run_variants, the table and the plots."""
    default_target: True
    input:
        all_targets(),
