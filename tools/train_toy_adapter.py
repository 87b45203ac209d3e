#!/usr/bin/env python
"""Train the motion adapter of ``embedded:toy`` (AnimateDiff's motion modules on toy video clips).

    python tools/train_toy_adapter.py [--minutes 140] [--stop-after STEP] [--export [--export-to DIR]]
                                      [--held-out] [--smoke DIR]

Runs every unfinished step of the recipe (latentman_dev.toy.adapter_train.AdapterRecipe) in order: render
and encode the 16-frame clips, then the adapter stages, and stops cleanly when ``--minutes`` are up (a resume
state is kept in the work folder; rerun the same command to continue). A finished stage leaves its
checkpoint in tools/toy_adapter_training/ (commit it): the next stage starts from it, so training spans
sessions and the weights do not depend on where it stopped. ``--export`` writes the newest stage as a
diffusers MotionAdapter folder into latentman/data/toy_model/motion_adapter/ (the shipped ``embedded:toy``
adapter). ``--smoke DIR`` runs a scaled-down recipe entirely inside DIR, for tests.

Run it alone on the machine: two threads, fixed (float sums depend on the thread count, so reruns give the
same weights), and other jobs beside it make it several times slower.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from latentman_dev.toy import adapter_train  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=140.0, help="time budget of this run (default 140)")
    parser.add_argument("--stop-after", help="stop after this step: data, adapter1, adapter2, ...")
    parser.add_argument("--export", action="store_true", help="export the newest stage")
    parser.add_argument("--export-to", type=Path, help="with --export: this folder instead")
    parser.add_argument(
        "--held-out",
        action="store_true",
        help="then the held-out loss and x_0 spread of every finished stage (held_out.tsv)",
    )
    parser.add_argument("--work", type=Path, default=ROOT / "results" / "toy_adapter_training")
    parser.add_argument("--smoke", type=Path, help="scaled-down run entirely inside this folder (tests)")
    parser.add_argument(
        "--toy-model", type=Path, help="an exported toy model folder instead of the shipped one (tests)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    recipe = adapter_train.AdapterRecipe()
    if args.smoke is not None:
        recipe = recipe.scaled_down()
        paths = adapter_train.AdapterPaths(
            args.smoke / "work", args.smoke / "checkpoints", args.smoke / "motion_adapter", args.toy_model
        )
    else:
        paths = adapter_train.AdapterPaths(
            args.work,
            ROOT / "tools" / "toy_adapter_training",
            ROOT / "latentman" / "data" / "toy_model" / adapter_train.EXPORT_NAME,
            args.toy_model,
        )
    if args.export_to is not None:
        paths.export = args.export_to
    state, models = adapter_train.train_all(recipe, paths, args.minutes, args.stop_after)
    print(f"toy adapter training: {'finished' if state == 'done' else 'stopped at ' + state}")
    if args.export or args.smoke is not None:
        print(f"exported to {adapter_train.export(recipe, paths, models)}")
    if args.held_out:
        for row in adapter_train.held_out_table(recipe, paths, models):
            spread = ", ".join(f"{k[10:]} {v:.2f}" for k, v in row.items() if k.startswith("x0_spread_t"))
            print(
                f"held-out loss {row['adapter']}: {row['held_out_loss']:.5f} ({row['vs_identity']:+.1%}); "
                f"x_0 spread over the clip's at t = {spread}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
