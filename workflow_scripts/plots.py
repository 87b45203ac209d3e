"""Rule plots: eval JSONs + frames of one prompt -> H_MSE per pair, H_MSE bars, contact sheet (PNG)."""

from pathlib import Path

from latentman.generation.storage import read_frames
from latentman.io import Identity
from latentman.metrics.aggregate import aggregate
from latentman.metrics.plots import contact_sheet, plot_bars, plot_per_pair
from latentman.metrics.storage import read_evaluation
from latentman.scripting import run_step


def main(smk):
    # every eval JSON must hold the prompt and variant its place in the sweep says
    expected = {path: Identity(prompt=p, variant=v) for path, (p, v) in smk.params.evaluations.items()}
    records = [read_evaluation(path, expected.get(str(path))) for path in smk.input.evaluations]
    groups = smk.params.groups
    table = aggregate(records, groups)
    plot_per_pair(records, groups, smk.output.per_pair)
    plot_bars(table, smk.output.bars)
    frames = {}
    for k, group in enumerate(smk.params.contact_groups):
        path = smk.input[f"frames_{k}"]
        # the contact sheet's prompt; the variant is the folder the file lies in (results/videos/{prompt}/
        # {variant}/frames.h5: the group's first variant, or the earlier equal one whose video it reuses)
        expected_frames = Identity(prompt=smk.params.contact_prompt, variant=Path(path).parent.name)
        frames[group] = read_frames(path, expected_frames).frames
    # the contact sheet's rows in the table's order (the same order as the bars and the lines)
    order = [variant for variant in table["variant"] if variant in frames]
    order += [variant for variant in frames if variant not in order]
    frames = {variant: frames[variant] for variant in order}
    contact_sheet(frames, smk.output.contact, title=f"prompt {smk.params.contact_prompt}")


run_step(snakemake, main)  # noqa: F821
