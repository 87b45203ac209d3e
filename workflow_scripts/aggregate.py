"""Rule aggregate: eval JSONs of a sweep -> results/tables/{sweep}.csv and .md (Table 1/2 layout)."""

from latentman.io import Identity
from latentman.metrics.aggregate import aggregate, write_table
from latentman.metrics.storage import read_evaluation
from latentman.scripting import run_step


def main(smk):
    # every eval JSON must hold the prompt and variant its place in the sweep says
    expected = {path: Identity(prompt=p, variant=v) for path, (p, v) in smk.params.evaluations.items()}
    records = [read_evaluation(path, expected.get(str(path))) for path in smk.input]
    table = aggregate(records, smk.params.groups)
    write_table(table, smk.output.csv, smk.output.md, title=f"Sweep {smk.params.sweep}")


run_step(snakemake, main)  # noqa: F821
