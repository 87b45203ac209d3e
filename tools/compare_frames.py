#!/usr/bin/env python
"""Per-frame pixel differences of variants against a baseline: how much a setting changes the frames.

    python tools/compare_frames.py --results results --baseline animatediff_controls.animatediff \\
        --variant animatediff_controls.per_video_norm [--variant ...] [--seeds 0 1 2] \\
        [--prompts walk_red ...] [--out FILE.csv] [--sheet PROMPT [--sheet-seed N] [--sheet-out FILE.png]]

H_MSE says how consistent a video is; this says how different two videos of the same prompt and seed are,
frame by frame (both read from ``RESULTS/videos/{prompt}/{name}/frames.h5``, or, for a variant that reused
an equal variant's video, from the folder its evaluation names). With --seeds every name is
expanded to ``<name>.s<seed>`` (sweep naming); without, the names are used as given. Writes a CSV (default
``RESULTS/tables/compare_frames.csv``), one row per (prompt, seed, variant, frame): ``mean_abs_diff`` and
``max_abs_diff`` (grey levels 0-255, over all pixels and channels), ``changed_fraction`` (share of pixels
whose largest channel difference exceeds 8 grey levels), ``step_baseline`` and ``step_variant`` (mean
absolute change from the previous frame within each video; empty for frame 0), and ``h_mse_baseline`` /
``h_mse_variant`` (the evaluation's H_MSE of each video, empty when it has not run). Prints per variant the
mean difference by frame index and the H_MSE change. --sheet writes a contact sheet of one prompt (at
--sheet-seed, default the first of --seeds): the baseline, each variant and its |difference| × 4.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

COLUMNS = (
    "prompt",
    "seed",
    "variant",
    "frame",
    "mean_abs_diff",
    "max_abs_diff",
    "changed_fraction",
    "step_baseline",
    "step_variant",
    "h_mse_baseline",
    "h_mse_variant",
)
CHANGED_LEVELS = 8  # a pixel counts as changed when a channel moves by more than this (uint8 noise is ~1)
SHEET_GAIN = 4  # |difference| is scaled by this in the contact sheet, so small changes are visible


def frame_differences(baseline, variant) -> list[dict]:
    """Per frame: mean/max |difference|, changed share, and each video's change from its previous frame."""
    import numpy as np

    from latentman.errors import IntermediateFileError

    if baseline.shape != variant.shape:
        raise IntermediateFileError(
            f"frames of shape {variant.shape} cannot be compared with {baseline.shape}"
        )
    a, b = baseline.astype(np.int16), variant.astype(np.int16)
    diff = np.abs(b - a)
    rows = []
    for k in range(len(a)):
        rows.append(
            {
                "frame": k,
                "mean_abs_diff": float(diff[k].mean()),
                "max_abs_diff": int(diff[k].max()),
                "changed_fraction": float((diff[k].max(axis=-1) > CHANGED_LEVELS).mean()),
                "step_baseline": float(np.abs(a[k] - a[k - 1]).mean()) if k else None,
                "step_variant": float(np.abs(b[k] - b[k - 1]).mean()) if k else None,
            }
        )
    return rows


def collect(
    results: Path, baseline: str, variants: list[str], seeds: list[int] | None, prompts: list[str] | None
) -> tuple[list[dict], list[str]]:
    """All CSV rows, and notes about the (prompt, seed) pairs skipped for want of a video."""
    from latentman.generation.storage import read_frames
    from latentman.metrics.diagnostics import evaluated_h_mse, frames_path, prompt_folders, video_name

    rows, notes = [], []
    for prompt in prompt_folders(results, prompts):
        for seed in seeds if seeds is not None else [None]:
            names = [video_name(n, seed) for n in [baseline, *variants]]
            paths = [frames_path(results, prompt, n) for n in names]
            absent = [n for n, path in zip(names, paths) if not path.is_file()]
            if absent:
                notes.append(
                    f"skipped {prompt}{'' if seed is None else f' seed {seed}'}: no {', '.join(absent)}"
                )
                continue
            base = read_frames(paths[0])
            base_h_mse = evaluated_h_mse(results, prompt, names[0])
            for name, path in zip(names[1:], paths[1:]):
                h_mse_variant = evaluated_h_mse(results, prompt, name)
                other = read_frames(path).frames
                for row in frame_differences(base.frames, other):
                    rows.append(
                        {
                            "prompt": prompt,
                            "seed": seed if seed is not None else base.seed,
                            "variant": name,
                            **row,
                            "h_mse_baseline": base_h_mse,
                            "h_mse_variant": h_mse_variant,
                        }
                    )
    return rows, notes


def summary(rows: list[dict], variants: list[str], seeds: list[int] | None) -> str:
    """Per variant: mean |difference| at each frame index, then the H_MSE change pooled and per video."""
    import numpy as np

    from latentman.metrics.diagnostics import video_name

    lines = []
    for variant in variants:
        mine = [r for r in rows if r["variant"] == video_name(variant, None if seeds is None else r["seed"])]
        if not mine:
            continue
        frames = sorted({r["frame"] for r in mine})
        by_frame = [np.mean([r["mean_abs_diff"] for r in mine if r["frame"] == k]) for k in frames]
        videos = {(r["prompt"], r["seed"]): r for r in mine}
        lines.append(f"{variant}: {len(videos)} video(s)")
        lines.append("  mean |diff| by frame: " + " ".join(f"{v:.1f}" for v in by_frame))
        steps = [(r["step_baseline"], r["step_variant"]) for r in mine if r["step_baseline"] is not None]
        if steps:
            base_step, variant_step = np.mean(steps, axis=0)
            lines.append(
                f"  change from the previous frame: baseline {base_step:.2f}, variant {variant_step:.2f}"
            )
        pairs = [
            (r["h_mse_baseline"], r["h_mse_variant"])
            for r in videos.values()
            if r["h_mse_baseline"] is not None and r["h_mse_variant"] is not None
        ]
        if pairs:
            base, other = np.array(pairs).T
            paired = 100 * (other - base) / base
            pooled = 100 * (other.mean() / base.mean() - 1)
            lines.append(
                f"  H_MSE {base.mean():.2f} -> {other.mean():.2f}: pooled {pooled:+.2f} %, "
                f"per video {paired.mean():+.2f} % ({int((paired < 0).sum())}/{len(paired)} improved)"
            )
    return "\n".join(lines)


def write_sheet(
    results: Path, baseline: str, variants: list[str], prompt: str, seed: int | None, out: Path
) -> None:
    import numpy as np

    from latentman.errors import IntermediateFileError
    from latentman.generation.storage import read_frames
    from latentman.metrics.diagnostics import frames_path, video_name
    from latentman.metrics.plots import contact_sheet

    rows = {}
    base = None
    for name in [baseline, *variants]:
        full = video_name(name, seed)
        path = frames_path(results, prompt, full)
        if not path.is_file():
            raise IntermediateFileError(f"--sheet {prompt}: no {path}")
        frames = read_frames(path).frames
        rows[full] = frames
        if base is None:
            base = frames
        else:
            diff = np.abs(frames.astype(np.int16) - base.astype(np.int16)) * SHEET_GAIN
            rows[f"|{full} - baseline| x{SHEET_GAIN}"] = np.clip(diff, 0, 255).astype(np.uint8)
    title = f"{prompt}" + ("" if seed is None else f", seed {seed}")
    contact_sheet(rows, out, title=title)


def main(argv: list[str] | None = None) -> int:
    from latentman.errors import LatentmanError
    from latentman.metrics.diagnostics import comparison_parser, no_videos, other_variants, write_rows

    parser = comparison_parser(__doc__.splitlines()[0], ROOT / "results", "compare_frames.csv")
    parser.add_argument("--sheet", metavar="PROMPT", default=None, help="also a contact sheet of this prompt")
    parser.add_argument(
        "--sheet-seed", type=int, default=None, help="its seed (default: the first of --seeds)"
    )
    parser.add_argument("--sheet-out", type=Path, default=None, help="its PNG (default RESULTS/tables/...)")
    args = parser.parse_args(argv)
    variants = other_variants(parser, args)
    if args.sheet_seed is not None and args.seeds is None:
        parser.error("--sheet-seed needs --seeds (without it the names are used as given)")
    try:
        rows, notes = collect(args.results, args.baseline, variants, args.seeds, args.prompts)
        for note in notes:
            print(note, file=sys.stderr)
        if not rows:
            raise no_videos(args.results, args.baseline, args.seeds)
        out = args.out or args.results / "tables" / "compare_frames.csv"
        write_rows(out, rows, COLUMNS)
        sheet = None
        if args.sheet:
            seed = args.sheet_seed if args.sheet_seed is not None else (args.seeds or [None])[0]
            sheet = args.sheet_out or args.results / "tables" / f"compare_frames_{args.sheet}.png"
            write_sheet(args.results, args.baseline, variants, args.sheet, seed, sheet)
    except LatentmanError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"frames against {args.baseline} (grey levels 0-255)")
    print(summary(rows, variants, args.seeds))
    print(f"wrote {out}" + (f" and {sheet}" if sheet else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
