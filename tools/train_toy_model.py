#!/usr/bin/env python
"""Train the embedded toy model (``embedded:toy``) on painted renders of the built-in body.

    python tools/train_toy_model.py [--minutes 140] [--stop-after STEP] [--export [--export-to DIR]]
                                    [--smoke DIR]

Runs every unfinished step of the recipe (latentman_dev.toy.train.Recipe) in order: render the dataset,
train the VAE, then the denoiser stages, and stops cleanly when ``--minutes`` are up (a resume state is kept
in the work folder; rerun the same command to continue). Finished stages leave their checkpoint in
tools/toy_training/ (commit it): the next stage starts from it, so training can span several sessions and
the weights do not depend on where it stopped. ``--export`` writes the newest stage as diffusers folders
into latentman/data/toy_model/ (the shipped ``embedded:toy``). ``--smoke DIR`` runs a scaled-down recipe
(a few samples and steps) entirely inside DIR, for tests.

Run it alone on the machine: the recipe uses two threads per stage (one thread on a busy 2-core machine
is faster than two, which were 3-6x slower under load), and fixes the thread count of each stage, since
float sums depend on it: reruns with the same recipe give the same weights.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from latentman_dev.toy import train  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=140.0, help="time budget of this run (default 140)")
    parser.add_argument("--stop-after", help="stop after this step: data, vae, denoiser1, denoiser2, ...")
    parser.add_argument(
        "--export", action="store_true", help="export the newest stage to latentman/data/toy_model"
    )
    parser.add_argument(
        "--export-to", type=Path, help="with --export: this folder instead (e.g. to look at a stage first)"
    )
    parser.add_argument("--work", type=Path, default=ROOT / "results" / "toy_training", help="work folder")
    parser.add_argument("--smoke", type=Path, help="scaled-down run entirely inside this folder (tests)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    recipe = train.Recipe()
    if args.smoke is not None:
        recipe = recipe.scaled_down()
        paths = train.Paths(args.smoke / "work", args.smoke / "checkpoints", args.smoke / "toy_model")
    else:
        paths = train.Paths(
            args.work, ROOT / "tools" / "toy_training", ROOT / "latentman" / "data" / "toy_model"
        )
    if args.export_to is not None:
        paths.export = args.export_to
    paths.checkpoints.mkdir(parents=True, exist_ok=True)
    state = train.train_all(recipe, paths, args.minutes, args.stop_after)
    log_file = paths.checkpoints / "log.tsv"
    if log_file.exists():
        train.plot_log(log_file, paths.checkpoints / "loss.png")
    print(f"toy model training: {'finished' if state == 'done' else 'stopped at ' + state}")
    if args.export or args.smoke is not None:
        print(f"exported to {train.export(recipe, paths)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
