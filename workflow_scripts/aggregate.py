"""Rule aggregate: eval JSONs of a sweep -> results/tables/{sweep}.csv and .md (Table 1/2 layout)."""

from latentman.metrics.aggregate import aggregate, write_table
from latentman.metrics.storage import read_evaluation
from latentman.scripting import run_step


def main(smk):
    records = [read_evaluation(path) for path in smk.input]
    table = aggregate(records, smk.params.groups)
    write_table(table, smk.output.csv, smk.output.md, title=f"Sweep {smk.params.sweep}")


run_step(snakemake, main)  # noqa: F821
