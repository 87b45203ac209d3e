"""H_MSE per body part group (latentman.metrics.h_mse.h_mse_by_part) and tools/h_mse_by_part.py."""

import csv

import numpy as np
import pytest
from conftest import frames_record, load_tool

from latentman.correspondence.storage import write_correspondence
from latentman.errors import IntermediateFileError
from latentman.generation.storage import write_frames
from latentman.io import FORMAT_VERSIONS
from latentman.metrics.h_mse import (
    PART_GROUPS,
    UNASSIGNED,
    combine_parts,
    h_mse,
    h_mse_by_part,
    part_areas,
)
from latentman.metrics.storage import write_evaluation


def test_part_groups_are_densepose_parts_by_name():
    from latentman.body.labels import PART_NAMES

    prefixes = {
        "torso": "torso_",
        "head": "head_",
        "upper_arms": "upper_arm_",
        "lower_arms": "lower_arm_",
        "hands": ("right_hand", "left_hand"),
        "upper_legs": "upper_leg_",
        "lower_legs": "lower_leg_",
        "feet": ("right_foot", "left_foot"),
    }
    assert list(PART_GROUPS) == list(prefixes)
    for group, prefix in prefixes.items():
        expected = {i for i, name in enumerate(PART_NAMES) if name.startswith(prefix)}
        assert set(PART_GROUPS[group]) == expected, group
    every = sorted(i for indices in PART_GROUPS.values() for i in indices)
    assert every == list(range(1, 25))  # each part in exactly one group, background in none


def two_part_video():
    """3 frames of 8x8 on a 4x4 guidance grid (blocks of 2x2; only the top-left pixel is sampled).

    Rows 0-1 torso (part 2), row 2 left hand (part 4), row 3 background, matched to the same cell of the
    previous frame except the background. Frame 1 is frame 0 + 10 on the torso, + 30 on the hand; frame 2
    is frame 1 + 20 on the torso, and its hand row is unmatched.
    """
    frames = np.full((3, 8, 8, 3), 50, np.uint8)
    frames[:, 1::2, :] = 255  # never sampled: rows 1, 3, 5, 7
    frames[1, 0:4:2] += 10
    frames[1, 4] += 30
    frames[2] = frames[1]
    frames[2, 0:4:2] += 20
    iuv = np.zeros((3, 4, 4, 3), np.uint8)
    iuv[:, 0:2, :, 0] = 2
    iuv[:, 2, :, 0] = 4
    source = np.tile(np.arange(16).reshape(4, 4), (3, 1, 1))
    source[0] = -1
    source[:, 3] = -1
    source[2, 2] = -1
    return frames, source, iuv


def test_per_group_values_equal_hand_computed_ones():
    frames, source, iuv = two_part_video()
    parts = h_mse_by_part(frames, source, iuv)
    assert set(parts) == set(PART_GROUPS) | {UNASSIGNED}
    torso, hands = parts["torso"], parts["hands"]
    assert torso.per_pair == [100.0, 400.0] and torso.mean == 250.0
    assert torso.per_pair_counts == [8, 8] and torso.pairs == 16 and torso.area_cells == 8.0
    # pair 2 has no matched hand pixel: the mean is over pair 1 only
    assert hands.per_pair == [900.0, None] and hands.mean == 900.0 and hands.pairs == 4
    assert hands.area_cells == 4.0
    assert parts[UNASSIGNED].pairs == 0 and parts[UNASSIGNED].area_cells == 4.0
    # the whole video: pair 1 (8*100 + 4*900)/12, pair 2 400
    whole = h_mse(frames, source)
    assert whole.per_pair == pytest.approx([4400 / 12, 400.0])
    assert combine_parts(parts) == pytest.approx(whole.mean, abs=1e-12)


def test_group_without_pixels_gives_none():
    frames, source, iuv = two_part_video()
    parts = h_mse_by_part(frames, source, iuv, {"head": (23, 24), "torso": (1, 2)})
    head = parts["head"]
    assert head.mean is None and head.pairs == 0 and head.area_cells == 0.0
    assert head.per_pair == [None, None] and head.per_pair_counts == [0, 0]
    # the hand row now falls in UNASSIGNED, which still completes the union
    assert parts[UNASSIGNED].per_pair == [900.0, None]
    with pytest.raises(ValueError, match="'unassigned' is reserved"):
        h_mse_by_part(frames, source, iuv, {UNASSIGNED: (1,)})


def test_union_of_groups_and_unassigned_reproduces_h_mse():
    rng = np.random.default_rng(5)
    count, grid = 5, 16
    frames = rng.integers(0, 256, (count, 2 * grid, 2 * grid, 3), dtype=np.uint8)
    source = np.stack([rng.permutation(grid * grid).reshape(grid, grid) for _ in range(count)])
    source[rng.random(source.shape) < 0.3] = -1
    source[0] = -1
    source[3] = -1  # a pair without any match is skipped by both
    iuv = np.zeros((count, grid, grid, 3), np.uint8)
    iuv[..., 0] = rng.integers(0, 25, (count, grid, grid))
    parts = h_mse_by_part(frames, source, iuv)
    whole = h_mse(frames, source)
    assert combine_parts(parts) == pytest.approx(whole.mean, abs=1e-9)
    matched = [(source[i] >= 0).sum() for i in range(1, count)]
    assert [sum(p.per_pair_counts[k] for p in parts.values()) for k in range(count - 1)] == matched
    assert sum(p.area_cells for p in parts.values()) == grid * grid
    with pytest.raises(IntermediateFileError, match="do not fit correspondences"):
        h_mse_by_part(frames, source, iuv[:, ::2, ::2])


def test_part_areas_count_cells_and_interior():
    iuv = np.zeros((2, 8, 8, 3), np.uint8)
    iuv[:, 1:4, 1:7, 0] = 1  # torso: 3 x 6 block, interior = middle row without its ends: 4 cells
    iuv[0, 6, 1:7, 0] = 16  # upper arm: one cell wide, in frame 0 only
    areas = part_areas(iuv)
    assert areas["torso"] == {"area_cells": 18.0, "interior_fraction": 4 / 18}
    assert areas["upper_arms"] == {"area_cells": 3.0, "interior_fraction": 0.0}
    assert areas["feet"] == {"area_cells": 0.0, "interior_fraction": None}
    assert areas[UNASSIGNED]["area_cells"] == 64 - 18 - 3.0


def write_video(results, prompt, variant, frames, seed):
    write_frames(results / "videos" / prompt / variant / "frames.h5", frames_record(frames, seed=seed))


def write_prev(results, prompt, iuv, source):
    count, grid = source.shape[:2]
    latent = grid // 4
    result = {
        "latent": {"source": np.full((count, latent, latent), -1), "grid": latent, "iuv": iuv[:, ::4, ::4]},
        "guidance": {"source": source, "grid": grid, "iuv": iuv},
    }
    for item in result.values():
        item.update(
            reference_index=np.arange(-1, count - 1, dtype=np.int32), cost=np.zeros(count), solver="t"
        )
    write_correspondence(results / "correspondence" / prompt / "prev.h5", result, "prev", "hungarian")


def tool_inputs(tmp_path):
    """16² frames (guidance 8², latent 2²): guidance rows 0-3 torso, 4-5 right hand, 6-7 background.

    Frame 0 is 100 everywhere; frame 1 adds (torso, hand) = (10, 30) in the baseline -> H_MSE 100 / 900,
    and (5, 60) in the variant -> 25 / 3600.
    """
    results = tmp_path / "results"
    iuv = np.zeros((2, 8, 8, 3), np.uint8)
    iuv[:, 0:4, :, 0] = 1
    iuv[:, 4:6, :, 0] = 3
    source = np.tile(np.arange(64, dtype=np.int32).reshape(8, 8), (2, 1, 1))
    source[0] = -1
    source[:, 6:] = -1
    for prompt in ("walk_red", "wave_blue"):
        write_prev(results, prompt, iuv, source)
        for variant, (torso, hand) in (("paper.t2v_zero", (10, 30)), ("paper.t2v_zero.sla", (5, 60))):
            for seed in (0, 1):
                if prompt == "wave_blue" and seed == 1 and variant.endswith("sla"):
                    continue  # not generated yet: this video is skipped
                frames = np.full((2, 16, 16, 3), 100, np.uint8)
                frames[1, 0:8] += torso
                frames[1, 8:12] += hand
                write_video(results, prompt, f"{variant}.s{seed}", frames, seed)
    return results


def test_tool_writes_rows_and_relative_changes(tmp_path, capsys):
    results = tool_inputs(tmp_path)
    record = {"format": "eval", "format_version": FORMAT_VERSIONS["eval"], "h_mse": {"mean": 1.0}}
    write_evaluation(results / "eval" / "walk_red" / "paper.t2v_zero.sla.s0.json", record)  # stale
    out = tmp_path / "by_part.csv"
    tool = load_tool("h_mse_by_part")
    argv = ["--results", str(results), "--baseline", "paper.t2v_zero", "--variant", "paper.t2v_zero.sla"]
    assert tool.main([*argv, "--seeds", "0", "1", "--out", str(out)]) == 0
    printed = capsys.readouterr()
    assert "skipped wave_blue seed 1: no paper.t2v_zero.sla.s1" in printed.err
    assert "walk_red/paper.t2v_zero.sla.s0: eval JSON has H_MSE 1.0" in printed.err
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0]) == list(tool.COLUMNS)
    groups = [*PART_GROUPS, UNASSIGNED, "all"]
    assert len(rows) == 3 * 2 * len(groups)  # 3 videos x (baseline, variant) x groups
    by_key = {(r["prompt"], r["seed"], r["variant"], r["group"]): r for r in rows}
    base = by_key[("walk_red", "1", "paper.t2v_zero.s1", "torso")]
    assert float(base["h_mse"]) == 100.0 and base["rel_change_pct"] == "" and base["pairs"] == "32"
    assert float(base["area_guidance_cells"]) == 32.0 and float(base["area_latent_cells"]) == 2.0
    torso = by_key[("wave_blue", "0", "paper.t2v_zero.sla.s0", "torso")]
    assert float(torso["h_mse"]) == 25.0 and float(torso["rel_change_pct"]) == pytest.approx(-75.0)
    hands = by_key[("walk_red", "0", "paper.t2v_zero.sla.s0", "hands")]
    assert float(hands["h_mse"]) == 3600.0 and float(hands["rel_change_pct"]) == pytest.approx(300.0)
    # latent grid 2² samples guidance rows 0 (torso) and 4 (hand): one row each, no interior cell
    assert float(hands["area_latent_cells"]) == 2.0 and float(hands["interior_latent"]) == 0.0
    whole = by_key[("walk_red", "0", "paper.t2v_zero.sla.s0", "all")]
    # whole body: (32 * 25 + 16 * 3600) / 48 against (32 * 100 + 16 * 900) / 48
    assert float(whole["h_mse"]) == pytest.approx(58400 / 48)
    assert float(whole["rel_change_pct"]) == pytest.approx(100 * (58400 - 17600) / 17600)
    feet = by_key[("walk_red", "0", "paper.t2v_zero.sla.s0", "feet")]
    assert feet["h_mse"] == feet["rel_change_pct"] == feet["interior_latent"] == "" and feet["pairs"] == "0"
    summary = {line.split()[0]: line for line in printed.out.splitlines()[2:-1]}
    assert summary["torso"].split()[-2:] == ["-75.0%", "(3/3)"]
    assert summary["hands"].split()[-2:] == ["+300.0%", "(0/3)"]


def test_tool_reads_a_variant_that_reused_a_video_from_the_folder_its_evaluation_names(tmp_path, capsys):
    results = tool_inputs(tmp_path)
    # other.same.s0 reused paper.t2v_zero.sla.s0's video, so it has no folder of its own
    record = {
        "format": "eval",
        "format_version": FORMAT_VERSIONS["eval"],
        "h_mse": {"mean": 58400 / 48},
        "settings": {"name": "paper.t2v_zero.sla.s0"},
    }
    write_evaluation(results / "eval" / "walk_red" / "other.same.s0.json", record)
    out = tmp_path / "by_part.csv"
    argv = ["--results", str(results), "--baseline", "paper.t2v_zero", "--variant", "other.same"]
    argv += ["--seeds", "0", "--prompts", "walk_red", "--out", str(out)]
    assert load_tool("h_mse_by_part").main(argv) == 0
    assert "skipped" not in capsys.readouterr().err
    whole = {r["variant"]: r for r in csv.DictReader(out.open()) if r["group"] == "all"}
    # the reused frames are paper.t2v_zero.sla.s0's: (32 * 25 + 16 * 3600) / 48
    assert float(whole["other.same.s0"]["h_mse"]) == pytest.approx(58400 / 48)


def test_tool_without_matching_videos_is_one_clear_error(tmp_path, capsys):
    results = tool_inputs(tmp_path)
    tool = load_tool("h_mse_by_part")
    argv = ["--results", str(results), "--baseline", "paper.t2v_zero", "--variant", "paper.t2v_zero.pwg"]
    assert tool.main([*argv, "--seeds", "0"]) == 1
    assert "error: no prompt folder under" in capsys.readouterr().err
    assert not (results / "tables").exists()
