"""Hostile inputs, class 2 (issue 30): an intermediate copied or swapped from another prompt, variant,
reference mode or upstream file is refused by its reader with one line naming the file, what it holds, what
was expected and the rule to rerun; the right file still reads.

Every file is written through its stage's storage writer, with the identity the workflow scripts give it,
and read back with the expected identity the workflow scripts pass.
"""

from __future__ import annotations

import re
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import frames_record

from latentman.correspondence.storage import (
    CorrespondenceRecord,
    GridCorrespondence,
    read_correspondence,
    read_correspondence_identity,
    write_correspondence,
)
from latentman.errors import IntermediateFileError
from latentman.generation.storage import read_frames, read_frames_identity, write_frames
from latentman.io import Identity
from latentman.metrics.h_mse import HMSE
from latentman.metrics.storage import EvaluationRecord, read_evaluation, write_evaluation
from latentman.motion.clip import Motion
from latentman.motion.storage import (
    motion_settings_hash,
    read_motion,
    read_motion_identity,
    write_motion,
)
from latentman.render.settings import RenderSettings
from latentman.render.storage import RenderRecord, read_render, read_render_identity, write_render

FRAMES = 3
MOTION_CONFIG = {"fps": 20, "frame_step": 2}
MODELS = {"mdm": None, "mdm_clip": None, "mdm_stats": None}


def request(motion="walk", seed=0):
    return {"motion": motion, "frames": FRAMES, "seed": seed, "motion_file": ""}


def one_line(message: str, *parts: str) -> None:
    assert "\n" not in message
    for part in parts:
        assert part in message, (part, message)


# ------------------------------------------------------------------------------------- writers
def make_motion(path, prompt, req):
    joints = np.zeros((2 * FRAMES - 1, 22, 3), np.float32)
    motion = Motion(joints=joints, fps=20.0, text=req["motion"], source="builtin:walk", seed=req["seed"])
    settings_hash = motion_settings_hash(req, MOTION_CONFIG, MODELS)
    write_motion(path, motion, Identity(prompt=prompt, settings_hash=settings_hash))
    return read_motion_identity(path)


def make_render(path, prompt, motion_hash, resolution=64):
    f, r = FRAMES, resolution
    smpl = SimpleNamespace(
        global_orient=np.zeros((f, 3)),
        body_pose=np.zeros((f, 69)),
        transl=np.zeros((f, 3)),
        betas=np.zeros(10),
        joint_error_mm=np.zeros(22),
        fit_error_mm=0.0,
        method="direct",
    )
    camera = SimpleNamespace(
        intrinsics=np.eye(3),
        frame_extrinsics=lambda n: np.repeat(np.eye(4)[None], n, axis=0),
        height=r,
        yfov_deg=60.0,
    )
    record = RenderRecord(
        smpl=smpl,
        body="builtin",
        camera=camera,
        camera_mode="fixed",
        depth=np.zeros((f, r, r), np.float32),
        control=np.zeros((f, r, r), np.uint8),
        control_encoding="near_bright",
        iuv=np.zeros((f, r, r, 3), np.uint8),
        face_id=np.full((f, r, r), -1, np.int32),
        barycentric=np.zeros((f, r, r, 3), np.float16),
        mask=np.zeros((f, r, r), np.uint8),
        rest_vertices=np.zeros((3, 3), np.float32),
        faces=np.array([[0, 1, 2]]),
        vertex_iuv=np.zeros((3, 3), np.float32),
        fps=10.0,
        frame_step=2,
        motion_source="builtin:walk",
        iuv_source="exact",
        backend="osmesa",
        settings=RenderSettings(resolution=r),
    )
    write_render(path, record, Identity(prompt=prompt, made_from={"motion": motion_hash}))
    return read_render_identity(path)


REFERENCE_INDEX = {"prev": [-1, 0, 1], "first": [-1, 0, 0], "prev_new": [-1, 0, 1]}


def make_correspondence(path, prompt, reference, render_hash, resolution=64):
    grids = {}
    for name, g in (("latent", resolution // 8), ("guidance", resolution // 2)):
        grids[name] = GridCorrespondence(
            grid=g,
            iuv=np.zeros((FRAMES, g, g, 3), np.uint8),
            source=np.full((FRAMES, g, g), -1, np.int32),
            cost=np.zeros(FRAMES),
            solver=None,
        )
    record = CorrespondenceRecord(
        method="hungarian",
        reference=reference,
        reference_index=np.array(REFERENCE_INDEX[reference], np.int32),
        grids=grids,
    )
    identity = Identity(prompt=prompt, made_from={"render": render_hash})
    write_correspondence(path, record, identity=identity)
    return read_correspondence_identity(path)


def make_frames(path, prompt, variant, made_from, seed=0):
    record = frames_record(np.zeros((FRAMES, 16, 16, 3), np.uint8), seed=seed, settings={"method": variant})
    write_frames(path, record, Identity(prompt=prompt, variant=variant, made_from=made_from))
    return read_frames_identity(path)


def make_evaluation(path, prompt, variant, made_from):
    h = HMSE(mean=1.0, per_pair=[1.0, 1.0])
    record = EvaluationRecord(
        prompt=prompt,
        variant=variant,
        settings={"method": "t2v_zero"},
        seed=0,
        frames=FRAMES,
        resolution=16,
        h_mse=h,
        h_mse_official=h,
        clip_score=None,
        clip_note="no CLIP",
        wall_time_s=1.0,
        peak_memory_mb=1.0,
        device="cpu",
        note=None,
        pwg_losses={},
    )
    write_evaluation(path, record, Identity(prompt=prompt, variant=variant, made_from=made_from))
    return read_evaluation(path)


def swapped(tmp_path, wrong, right_name):
    """Copy the file written for something else onto the name the reader was given (as a user would)."""
    target = tmp_path / "results" / right_name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(wrong, target)
    return target


# ------------------------------------------------------------------------------------- motion
MOTION_READERS = {
    "read_motion": read_motion,
    "read_motion_identity": read_motion_identity,
}


@pytest.mark.parametrize("reader", MOTION_READERS)
@pytest.mark.parametrize(
    ("wrong_prompt", "wrong_request", "found"),
    [
        ("run", request(), "holds prompt 'run' (expected 'walk')"),
        ("walk", request(seed=3), "holds settings hash"),
        ("walk", request(motion="jump"), "holds settings hash"),
    ],
    ids=["other-prompt", "other-seed", "other-motion-text"],
)
def test_swapped_motion_is_refused(tmp_path, reader, wrong_prompt, wrong_request, found):
    wrong = tmp_path / "other.npz"
    make_motion(wrong, wrong_prompt, wrong_request)
    path = swapped(tmp_path, wrong, "motion/walk.npz")
    expected = Identity(prompt="walk", settings_hash=motion_settings_hash(request(), MOTION_CONFIG, MODELS))
    with pytest.raises(IntermediateFileError) as error:
        MOTION_READERS[reader](path, expected)
    one_line(str(error.value), str(path), found, "rerun rule 'motion'", "--forcerun motion")


def test_right_motion_reads_and_library_callers_need_no_identity(tmp_path):
    path = tmp_path / "walk.npz"
    made = make_motion(path, "walk", request())
    expected = Identity(prompt="walk", settings_hash=motion_settings_hash(request(), MOTION_CONFIG, MODELS))
    assert read_motion(path, expected).joints.shape == (5, 22, 3)
    assert read_motion_identity(path, expected) == made
    assert read_motion(path).text == "walk"  # no expected identity: nothing checked
    # a motion written without an identity (a library caller) is refused by the workflow's check
    bare = tmp_path / "bare.npz"
    write_motion(bare, read_motion(path))
    with pytest.raises(IntermediateFileError, match=r"bare\.npz records no prompt \(expected 'walk'"):
        read_motion(bare, expected)


# ------------------------------------------------------------------------------------- render
RENDER_READERS = {
    "read_render": lambda path, expected: read_render(path, ("mask",), expected),
    "read_render_identity": read_render_identity,
}


@pytest.mark.parametrize("reader", RENDER_READERS)
@pytest.mark.parametrize("kind", ["other-prompt", "other-motion", "no-identity"])
def test_swapped_render_is_refused(tmp_path, reader, kind):
    motion_hash = motion_settings_hash(request(), MOTION_CONFIG, MODELS)
    wrong = tmp_path / "other.h5"
    if kind == "other-prompt":
        make_render(wrong, "run", motion_hash)
        found = "holds prompt 'run' (expected 'walk')"
    elif kind == "other-motion":
        other = motion_settings_hash(request(seed=9), MOTION_CONFIG, MODELS)
        make_render(wrong, "walk", other)
        found = f"was made from motion settings hash '{other}' (expected '{motion_hash}'"
    else:
        make_render(wrong, None, motion_hash)
        found = "records no prompt (expected 'walk'"
    path = swapped(tmp_path, wrong, "render/walk.h5")
    expected = Identity(prompt="walk", made_from={"motion": motion_hash})
    with pytest.raises(IntermediateFileError) as error:
        RENDER_READERS[reader](path, expected)
    one_line(str(error.value), str(path), found, "rerun rule 'render'", "--forcerun render")


def test_right_render_reads(tmp_path):
    motion_hash = motion_settings_hash(request(), MOTION_CONFIG, MODELS)
    path = tmp_path / "walk.h5"
    made = make_render(path, "walk", motion_hash)
    expected = Identity(prompt="walk", made_from={"motion": motion_hash})
    out = read_render(path, ("mask", "smpl", "camera"), expected)
    assert out["mask"].shape == (FRAMES, 64, 64) and out["identity"] == made
    assert read_render_identity(path, expected).settings_hash == made.settings_hash
    assert read_render(path, ("mask",))["mask"].shape == (FRAMES, 64, 64)  # library caller
    # another prompt's render has another settings hash even with equal content
    assert make_render(tmp_path / "run.h5", "run", motion_hash).settings_hash != made.settings_hash


# ------------------------------------------------------------------------------------- correspondence
CORRESPONDENCE_READERS = {
    "read_correspondence": read_correspondence,
    "read_correspondence_identity": read_correspondence_identity,
}
OTHER_REFERENCE = {"prev": "first", "first": "prev_new", "prev_new": "prev"}


@pytest.mark.parametrize("reader", CORRESPONDENCE_READERS)
@pytest.mark.parametrize("resolution", [64, 128])
@pytest.mark.parametrize("reference", ["prev", "first", "prev_new"])
@pytest.mark.parametrize("kind", ["other-prompt", "other-reference", "other-render"])
def test_swapped_correspondence_is_refused(tmp_path, reader, resolution, reference, kind):
    motion_hash = motion_settings_hash(request(), MOTION_CONFIG, MODELS)
    render = make_render(tmp_path / "render.h5", "walk", motion_hash, resolution)
    wrong = tmp_path / "other.h5"
    if kind == "other-prompt":
        make_correspondence(wrong, "run", reference, render.settings_hash, resolution)
        found = "holds prompt 'run' (expected 'walk')"
    elif kind == "other-reference":
        other = OTHER_REFERENCE[reference]
        make_correspondence(wrong, "walk", other, render.settings_hash, resolution)
        found = f"holds reference mode '{other}' (expected '{reference}')"
    else:
        # computed from the render of other settings (another resolution: the grids do not fit either)
        other_render = make_render(tmp_path / "render_other.h5", "walk", motion_hash, 192 - resolution)
        make_correspondence(wrong, "walk", reference, other_render.settings_hash, 192 - resolution)
        found = (
            f"was made from render settings hash '{other_render.settings_hash}' "
            f"(expected '{render.settings_hash}', that of results/render/walk.h5)"
        )
    path = swapped(tmp_path, wrong, f"correspondence/walk/{reference}.h5")
    expected = Identity(
        prompt="walk",
        reference=reference,
        made_from={"render": render.settings_hash},
        sources={"render": "results/render/walk.h5"},
    )
    with pytest.raises(IntermediateFileError) as error:
        CORRESPONDENCE_READERS[reader](path, expected)
    one_line(str(error.value), str(path), found, "rerun rule 'correspondence'", "--forcerun correspondence")


@pytest.mark.parametrize("resolution", [64, 128])
@pytest.mark.parametrize("reference", ["prev", "first", "prev_new"])
def test_right_correspondence_reads(tmp_path, resolution, reference):
    motion_hash = motion_settings_hash(request(), MOTION_CONFIG, MODELS)
    render = make_render(tmp_path / "render.h5", "walk", motion_hash, resolution)
    path = tmp_path / f"{reference}.h5"
    made = make_correspondence(path, "walk", reference, render.settings_hash, resolution)
    expected = Identity(prompt="walk", reference=reference, made_from={"render": render.settings_hash})
    data = read_correspondence(path, expected)
    assert data["latent"]["grid"] == resolution // 8 and data["guidance"]["grid"] == resolution // 2
    assert data["identity"] == made and made.reference == reference
    assert read_correspondence(path)["reference"] == reference  # library caller


# ------------------------------------------------------------------------------------- frames
FRAMES_READERS = {"read_frames": read_frames, "read_frames_identity": read_frames_identity}
MADE_FROM = {"render": "r" * 16, "correspondence": "c" * 16}


@pytest.mark.parametrize("reader", FRAMES_READERS)
@pytest.mark.parametrize(
    ("kind", "prompt", "variant", "made_from", "found"),
    [
        ("other-prompt", "run", "latentman", MADE_FROM, "holds prompt 'run' (expected 'walk')"),
        ("other-variant", "walk", "t2v_zero", MADE_FROM, "holds variant 't2v_zero' (expected 'latentman')"),
        (
            "other-render",
            "walk",
            "latentman",
            {**MADE_FROM, "render": "x" * 16},
            f"was made from render settings hash '{'x' * 16}' (expected '{'r' * 16}'",
        ),
        (
            "other-correspondence",
            "walk",
            "latentman",
            {**MADE_FROM, "correspondence": "y" * 16},
            f"was made from correspondence settings hash '{'y' * 16}' (expected '{'c' * 16}'",
        ),
        ("no-identity", None, None, None, "records no prompt (expected 'walk'"),
    ],
    ids=lambda value: value if isinstance(value, str) and "-" in value else "",
)
def test_swapped_frames_are_refused(tmp_path, reader, kind, prompt, variant, made_from, found):
    wrong = tmp_path / "other.h5"
    make_frames(wrong, prompt, variant, made_from)
    path = swapped(tmp_path, wrong, "videos/walk/latentman/frames.h5")
    expected = Identity(prompt="walk", variant="latentman", made_from=MADE_FROM)
    with pytest.raises(IntermediateFileError) as error:
        FRAMES_READERS[reader](path, expected)
    one_line(str(error.value), str(path), found, "rerun rule 'generate'", "--forcerun generate")


def test_right_frames_read(tmp_path):
    path = tmp_path / "frames.h5"
    made = make_frames(path, "walk", "latentman", MADE_FROM)
    expected = Identity(prompt="walk", variant="latentman", made_from=MADE_FROM)
    assert read_frames(path, expected).frames.shape == (FRAMES, 16, 16, 3)
    assert read_frames_identity(path, expected) == made
    assert read_frames(path).seed == 0  # library caller
    # the settings hash follows what decides the frames: another seed, another hash
    assert make_frames(tmp_path / "seed.h5", "walk", "latentman", MADE_FROM, seed=1) != made


# ------------------------------------------------------------------------------------- eval
EVAL_MADE_FROM = {"frames": "f" * 16, "correspondence": "c" * 16}


@pytest.mark.parametrize(
    ("kind", "prompt", "variant", "made_from", "found"),
    [
        ("other-prompt", "run", "latentman", EVAL_MADE_FROM, "holds prompt 'run' (expected 'walk')"),
        (
            "other-variant",
            "walk",
            "t2v_zero",
            EVAL_MADE_FROM,
            "holds variant 't2v_zero' (expected 'latentman')",
        ),
        (
            "other-frames",
            "walk",
            "latentman",
            {**EVAL_MADE_FROM, "frames": "z" * 16},
            f"was made from frames settings hash '{'z' * 16}' (expected '{'f' * 16}'",
        ),
        (
            "other-correspondence",
            "walk",
            "latentman",
            {**EVAL_MADE_FROM, "correspondence": "w" * 16},
            f"was made from correspondence settings hash '{'w' * 16}' (expected '{'c' * 16}'",
        ),
    ],
    ids=lambda value: value if isinstance(value, str) and "-" in value else "",
)
def test_swapped_evaluation_is_refused(tmp_path, kind, prompt, variant, made_from, found):
    wrong = tmp_path / "other.json"
    make_evaluation(wrong, prompt, variant, made_from)
    path = swapped(tmp_path, wrong, "eval/walk/latentman.json")
    expected = Identity(prompt="walk", variant="latentman", made_from=EVAL_MADE_FROM)
    with pytest.raises(IntermediateFileError) as error:
        read_evaluation(path, expected)
    one_line(str(error.value), str(path), found, "rerun rule 'evaluate'", "--forcerun evaluate")


def test_right_evaluation_reads_and_old_records_still_read_without_identity(tmp_path):
    path = tmp_path / "latentman.json"
    record = make_evaluation(path, "walk", "latentman", EVAL_MADE_FROM)
    expected = Identity(prompt="walk", variant="latentman", made_from=EVAL_MADE_FROM)
    assert read_evaluation(path, expected) == record
    assert record["made_from"] == EVAL_MADE_FROM and re.fullmatch("[0-9a-f]{16}", record["settings_hash"])
    # a record written without an identity (library callers, older files): reads as before, but the
    # workflow's expected made_from refuses it
    bare = tmp_path / "bare.json"
    write_evaluation(bare, EvaluationRecord.from_dict(record))
    assert "made_from" not in read_evaluation(bare)
    assert read_evaluation(bare, Identity(prompt="walk", variant="latentman"))["prompt"] == "walk"
    with pytest.raises(IntermediateFileError, match=r"bare\.json records no frames it was made from"):
        read_evaluation(bare, expected)
