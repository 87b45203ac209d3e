"""Rule plots: eval JSONs + frames of one prompt -> H_MSE per pair, H_MSE bars, contact sheet (PNG)."""

from latentman.metrics.aggregate import aggregate, load_eval
from latentman.metrics.evaluate import read_frames_file
from latentman.metrics.plots import contact_sheet, plot_bars, plot_per_pair
from latentman.scripting import run_step


def main(smk):
    records = [load_eval(path) for path in smk.input.evaluations]
    groups = smk.params.groups
    plot_per_pair(records, groups, smk.output.per_pair)
    plot_bars(aggregate(records, groups), smk.output.bars)
    frames = {
        group: read_frames_file(smk.input[f"frames_{k}"])[0]
        for k, group in enumerate(smk.params.contact_groups)
    }
    contact_sheet(frames, smk.output.contact, title=f"prompt {smk.params.contact_prompt}")


run_step(snakemake, main)  # noqa: F821
