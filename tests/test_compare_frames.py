"""tools/compare_frames.py: per-frame pixel differences between variants' videos."""

import csv

import numpy as np
import pytest
from conftest import frames_record, load_tool

from latentman.generation.storage import write_frames
from latentman.io import FORMAT_VERSIONS
from latentman.metrics.storage import write_evaluation


def write_video(results, prompt, name, frames, seed):
    write_frames(results / "videos" / prompt / name / "frames.h5", frames_record(frames, seed=seed))


def write_h_mse(results, prompt, name, value):
    record = {"format": "eval", "format_version": FORMAT_VERSIONS["eval"], "h_mse": {"mean": value}}
    write_evaluation(results / "eval" / prompt / f"{name}.json", record)


def videos(tmp_path):
    """3 frames of 4² per video: the baseline is 100 everywhere; the variant adds 0, 2 and 40 to frames 0-2 in
    the top half (8 of 16 pixels); seed 1 of wave_blue has no variant video."""
    results = tmp_path / "results"
    for prompt in ("walk_red", "wave_blue"):
        for seed in (0, 1):
            base = np.full((3, 4, 4, 3), 100, np.uint8)
            write_video(results, prompt, f"a.base.s{seed}", base, seed)
            write_h_mse(results, prompt, f"a.base.s{seed}", 10.0)
            if prompt == "wave_blue" and seed == 1:
                continue
            variant = base.copy()
            variant[1, :2] += 2
            variant[2, :2] += 40
            write_video(results, prompt, f"a.norm.s{seed}", variant, seed)
            write_h_mse(results, prompt, f"a.norm.s{seed}", 8.0 if seed == 0 else 12.0)
    return results


def test_rows_hold_per_frame_differences_and_h_mse(tmp_path, capsys):
    results = videos(tmp_path)
    out = tmp_path / "diff.csv"
    tool = load_tool("compare_frames")
    argv = ["--results", str(results), "--baseline", "a.base", "--variant", "a.norm", "--seeds", "0", "1"]
    assert tool.main([*argv, "--out", str(out), "--sheet", "walk_red", "--sheet-seed", "1"]) == 0
    printed = capsys.readouterr()
    assert "skipped wave_blue seed 1: no a.norm.s1" in printed.err
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0]) == list(tool.COLUMNS)
    assert len(rows) == 3 * 3  # 3 videos x 3 frames
    frame = {(r["prompt"], r["seed"], r["frame"]): r for r in rows}
    first, small, large = (frame[("walk_red", "1", str(k))] for k in range(3))
    assert float(first["mean_abs_diff"]) == 0.0 and first["step_baseline"] == first["step_variant"] == ""
    # 2 grey levels on half the pixels: mean 1, but no pixel above the 8-level threshold
    assert float(small["mean_abs_diff"]) == 1.0 and float(small["changed_fraction"]) == 0.0
    assert float(large["mean_abs_diff"]) == 20.0 and int(large["max_abs_diff"]) == 40
    assert float(large["changed_fraction"]) == 0.5
    # within the variant: frame 2 differs from frame 1 by 38 on half the pixels; the baseline is still
    assert float(large["step_variant"]) == 19.0 and float(large["step_baseline"]) == 0.0
    assert float(large["h_mse_baseline"]) == 10.0 and float(large["h_mse_variant"]) == 12.0
    assert "mean |diff| by frame: 0.0 1.0 20.0" in printed.out
    # H_MSE 10 -> 8, 12, 8 over the 3 videos: pooled (28/3) / 10 - 1, per video (-20 + 20 - 20) / 3
    assert "pooled -6.67 %, per video -6.67 % (2/3 improved)" in printed.out
    sheet = results / "tables" / "compare_frames_walk_red.png"
    assert sheet.is_file() and sheet.stat().st_size > 1000


def test_a_variant_that_reused_a_video_is_read_from_the_folder_its_evaluation_names(tmp_path, capsys):
    results = videos(tmp_path)
    record = {
        "format": "eval",
        "format_version": FORMAT_VERSIONS["eval"],
        "h_mse": {"mean": 10.0},
        "settings": {"name": "a.base.s0"},  # b.same.s0 had a.base.s0's settings: no folder of its own
    }
    write_evaluation(results / "eval" / "walk_red" / "b.same.s0.json", record)
    tool = load_tool("compare_frames")
    argv = ["--results", str(results), "--baseline", "b.same", "--variant", "a.norm", "--seeds", "0"]
    assert tool.main([*argv, "--prompts", "walk_red", "--out", str(tmp_path / "d.csv")]) == 0
    assert "mean |diff| by frame: 0.0 1.0 20.0" in capsys.readouterr().out


def test_frames_of_other_shapes_are_one_clear_error(tmp_path, capsys):
    results = videos(tmp_path)
    write_video(results, "walk_red", "a.short.s0", np.zeros((2, 4, 4, 3), np.uint8), 0)
    tool = load_tool("compare_frames")
    argv = ["--results", str(results), "--baseline", "a.base", "--variant", "a.short", "--seeds", "0"]
    assert tool.main(argv) == 1
    assert (
        "error: frames of shape (2, 4, 4, 3) cannot be compared with (3, 4, 4, 3)" in capsys.readouterr().err
    )


def test_no_matching_videos_is_one_clear_error(tmp_path, capsys):
    results = videos(tmp_path)
    tool = load_tool("compare_frames")
    assert tool.main(["--results", str(results), "--baseline", "a.base", "--variant", "a.other"]) == 1
    assert "error: no prompt folder under" in capsys.readouterr().err
    assert not (results / "tables").exists()


def test_sheet_seed_without_seeds_is_a_usage_error(tmp_path):
    results = videos(tmp_path)
    tool = load_tool("compare_frames")
    argv = ["--results", str(results), "--baseline", "a.base.s0", "--variant", "a.norm.s0"]
    with pytest.raises(SystemExit):
        tool.main([*argv, "--sheet", "walk_red", "--sheet-seed", "0"])
    assert not (results / "tables").exists()  # refused before anything is read or written
