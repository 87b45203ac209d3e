"""H_MSE: paper Eq. 9 (float) and the official code's computation (uint8 wrap, atlas, circular pairs)."""

import json
from pathlib import Path

import numpy as np
import pytest

from latentman.correspondence.storage import CorrespondenceRecord, GridCorrespondence, write_correspondence
from latentman.errors import IntermediateFileError
from latentman.io import atomic_h5, write_dataset
from latentman.metrics.h_mse import h_mse, h_mse_official, resize_bilinear, sample_nearest
from latentman.metrics.stage import EvaluationInputs, EvaluationSettings, run
from latentman.metrics.storage import EvaluationRecord, read_evaluation, write_evaluation

GRID = 8


def identity_source(frames, grid=GRID):
    """Every pixel of frame i matched to the same pixel of frame i-1; frame 0 unmatched."""
    source = np.tile(np.arange(grid * grid, dtype=np.int32).reshape(grid, grid), (frames, 1, 1))
    source[0] = -1
    return source


def body_iuv(frames, grid=GRID):
    """Part 1 on a 4x4 block with U, V ramps 0, 85, 170, 255: with tile 4 they land on integer texels."""
    iuv = np.zeros((frames, grid, grid, 3), np.uint8)
    rows, cols = np.mgrid[0:grid, 0:grid]
    iuv[:, 2:6, 2:6, 0] = 1
    iuv[:, 2:6, 2:6, 1] = ((cols[2:6, 2:6] - 2) * 85).astype(np.uint8)
    iuv[:, 2:6, 2:6, 2] = ((rows[2:6, 2:6] - 2) * 85).astype(np.uint8)
    return iuv


def test_identical_frames_give_zero():
    rng = np.random.default_rng(0)
    frames = np.repeat(rng.integers(1, 255, (1, 32, 32, 3), dtype=np.uint8), 4, axis=0)
    result = h_mse(frames, identity_source(4))
    assert result.mean == 0.0 and result.per_pair == [0.0, 0.0, 0.0]
    assert h_mse_official(frames, body_iuv(4), tile=4).mean == 0.0


def test_constant_offset_gives_square_and_official_wraps():
    frames = np.full((2, 32, 32, 3), 100, np.uint8)
    frames[1] = 120  # offset c = 20: Eq. 9 gives 400, uint8 gives (20 mod 256)^2 mod 256 = 144
    assert h_mse(frames, identity_source(2)).mean == pytest.approx(400.0)
    official = h_mse_official(frames, body_iuv(2), tile=4)
    # pair 1: (120-100)^2 = 400 -> 144;
    # pair 0 (circular, frame 0 vs frame 1): (100-120) = 236, 236^2 mod 256 = 144
    assert official.per_pair == [pytest.approx(144.0), pytest.approx(144.0)]
    assert official.mean == pytest.approx(144.0)
    frames[1] = 200  # 200 vs 100: official gives 10000 mod 256 = 16 (the documented bug)
    assert h_mse_official(frames, body_iuv(2), tile=4).per_pair[1] == pytest.approx(16.0)
    assert h_mse(frames, identity_source(2)).mean == pytest.approx(10000.0)


def test_unmatched_pixels_never_enter_the_mean():
    frames = np.zeros((3, 16, 16, 3), np.uint8)
    frames[1] = 10
    frames[2] = 10
    frames[2, :8] = 250  # huge differences in the top half of frame 2 ...
    source = identity_source(3, grid=16)
    source[2, :8] = -1  # ... which is unmatched
    result = h_mse(frames, source)
    assert result.per_pair == [pytest.approx(100.0), pytest.approx(0.0)]
    source[1] = -1
    skipped = h_mse(frames, source)
    assert skipped.per_pair[0] is None and skipped.skipped_pairs == [1] and skipped.mean == pytest.approx(0.0)


def test_nearest_sampling_uses_top_left_of_each_block_and_matches_across_positions():
    frames = np.zeros((2, 16, 16, 3), np.uint8)
    frames[0, 0, 4] = 50  # top-left sample of grid cell (0, 1) at grid 4
    frames[0, 1, 5] = 255  # inside the block, not sampled
    assert sample_nearest(frames, 4)[0, 0, 1, 0] == 50
    source = np.full((2, 4, 4), -1, np.int32)
    source[1, 3, 3] = 1  # pixel (3,3) of frame 1 matched to flat index 1 = (0,1) of frame 0
    assert h_mse(frames, source).mean == pytest.approx(2500.0)
    with pytest.raises(IntermediateFileError, match="not a multiple"):
        h_mse(np.zeros((2, 10, 10, 3), np.uint8), np.full((2, 4, 4), -1, np.int32))


def test_bilinear_resize_of_constant_and_halving():
    frames = np.full((1, 8, 8, 3), 77, np.uint8)
    assert (resize_bilinear(frames, 4) == 77).all()
    ramp = np.repeat(np.arange(0, 80, 10, dtype=np.uint8)[None, None, :, None], 8, axis=1).repeat(3, axis=3)
    assert resize_bilinear(ramp, 4)[0, 0, :, 0].tolist() == [5, 25, 45, 65]
    # halves (0.5, 2.5, ...) round up as OpenCV does; np.rint would give [0, 2, 4, 6]
    steps = np.arange(8, dtype=np.uint8)[None, None, :, None].repeat(2, axis=1)
    assert resize_bilinear(steps, 4)[0, 0, :, 0].tolist() == [1, 3, 5, 7]


def test_bilinear_resize_equals_stored_opencv_output():
    """cv2.resize(INTER_LINEAR) of random frames at 2x and 4x (opencv-python-headless 5.0.0.93), stored."""
    stored = np.load(Path(__file__).parent / "data" / "opencv_resize.npz")
    np.testing.assert_array_equal(resize_bilinear(stored["frames"], 32), stored["half"])
    np.testing.assert_array_equal(resize_bilinear(stored["frames"], 16), stored["quarter"])


def write_inputs(tmp_path, frames, source, iuv):
    frames_path = tmp_path / "frames.h5"
    with atomic_h5(
        frames_path,
        "frames",
        {
            "settings": {"method": "t2v_zero"},
            "seed": 7,
            "prompt": "a person",
            "model_ids": {},
            "model_hashes": {},
            "versions": {},
            "device": "cpu",
            "dtype": "float32",
            "wall_time_s": 1.5,
            "peak_memory_mb": 321.0,
            "note": "",
            "pwg_losses": {},
        },
    ) as h5:
        write_dataset(h5, "frames", frames)
    corr_path = tmp_path / "prev.h5"
    count, grid = source.shape[:2]
    latent = grid // 4
    sources = {"latent": np.full((count, latent, latent), -1, np.int32), "guidance": source.astype(np.int32)}
    grids = {
        name: GridCorrespondence(
            grid=maps.shape[1],
            iuv=iuv[:, :: grid // maps.shape[1], :: grid // maps.shape[1]],
            source=maps,
            cost=np.zeros(count),
            solver="test",
        )
        for name, maps in sources.items()
    }
    reference_index = np.arange(-1, count - 1, dtype=np.int32)
    write_correspondence(corr_path, CorrespondenceRecord("hungarian", "prev", reference_index, grids))
    return frames_path, corr_path


def evaluate(frames_path, corr_path, clip_model=None) -> EvaluationRecord:
    inputs = EvaluationInputs(frames_path, corr_path, "p", "v", prompt_text="a person")
    return run(inputs, EvaluationSettings.from_config({"clip_eval": clip_model}))


def test_evaluation_agrees_with_independent_recomputation(tmp_path):
    rng = np.random.default_rng(3)
    count, size, grid = 4, 32, 16
    frames = rng.integers(0, 256, (count, size, size, 3), dtype=np.uint8)
    # injective maps with about a quarter of the pixels unmatched, as the correspondence stage writes them
    source = np.stack([rng.permutation(grid * grid).reshape(grid, grid) for _ in range(count)]).astype(
        np.int32
    )
    source[rng.random(source.shape) < 0.25] = -1
    source[0] = -1
    iuv = np.zeros((count, grid, grid, 3), np.uint8)
    iuv[..., 0] = rng.integers(0, 25, (count, grid, grid))
    iuv[..., 1:] = rng.integers(0, 256, (count, grid, grid, 2))
    frames_path, corr_path = write_inputs(tmp_path, frames, source, iuv)
    result = evaluate(frames_path, corr_path)
    record = result.as_dict()
    json.dumps(record, allow_nan=False)  # valid JSON
    # independent: explicit loops over pixels
    pairs = []
    for i in range(1, count):
        total, n = 0.0, 0
        for r in range(grid):
            for c in range(grid):
                s = source[i, r, c]
                if s < 0:
                    continue
                a = frames[i, r * 2, c * 2].astype(float)
                b = frames[i - 1, (s // grid) * 2, (s % grid) * 2].astype(float)
                total += float(((a - b) ** 2).sum())
                n += 3
        pairs.append(total / n)
    assert record["h_mse"]["per_pair"] == pytest.approx(pairs, abs=1e-6)
    assert record["h_mse"]["mean"] == pytest.approx(np.mean(pairs), abs=1e-6)
    assert len(record["h_mse_official"]["per_pair"]) == count
    assert record["wall_time_s"] == 1.5 and record["peak_memory_mb"] == 321.0 and record["seed"] == 7
    assert record["settings"] == {"method": "t2v_zero"} and record["format"] == "eval"
    assert record["clip_score"] is None and "clip_eval" in record["clip_note"]
    # the file is the record's as_dict, keys in this order; reading it back gives the record again
    assert list(record) == [
        "format",
        "format_version",
        "prompt",
        "variant",
        "settings",
        "seed",
        "frames",
        "resolution",
        "h_mse",
        "h_mse_official",
        "clip_score",
        "clip_note",
        "wall_time_s",
        "peak_memory_mb",
        "device",
        "note",
        "pwg_losses",
    ]
    write_evaluation(tmp_path / "e.json", result)
    assert json.loads((tmp_path / "e.json").read_text()) == record
    assert EvaluationRecord.from_dict(read_evaluation(tmp_path / "e.json")).as_dict() == record
    missing = str(tmp_path / "no_clip")
    assert (
        evaluate(frames_path, corr_path, missing).clip_note
        == f"models.clip_eval = {missing!r} is not a folder"
    )


def test_frame_count_mismatch_is_reported(tmp_path):
    frames = np.zeros((3, 16, 16, 3), np.uint8)
    with pytest.raises(IntermediateFileError, match="3 frames but correspondences for 2"):
        h_mse(frames, identity_source(2))


def test_evaluation_refuses_videos_without_a_matched_body_pixel(tmp_path):
    """A render with no body in view has no matches: no H_MSE number (0.0 would look perfect)."""
    count, size, grid = 3, 32, 16
    frames = np.zeros((count, size, size, 3), np.uint8)
    source = np.full((count, grid, grid), -1, np.int32)
    iuv = np.zeros((count, grid, grid, 3), np.uint8)
    frames_path, corr_path = write_inputs(tmp_path, frames, source, iuv)
    with pytest.raises(IntermediateFileError, match="no frame pair has a matched body pixel"):
        evaluate(frames_path, corr_path)
