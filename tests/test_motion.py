"""Motion stage: built-in library, skeleton, motion file writer/reader, the workflow step."""

import numpy as np
import pytest

from latentman.errors import IntermediateFileError, LatentmanError
from latentman.io import FORMAT_VERSIONS, write_npz
from latentman.motion import (
    MotionInputs,
    MotionSettings,
    library,
    make_motion,
    motion_frames,
    read_motion,
    write_motion,
)
from latentman.motion.stage import run
from latentman.skeleton import (
    FOOT_JOINTS,
    PARENTS,
    axis_angle_to_matrix,
    bone_lengths,
    forward_kinematics,
    matrix_to_axis_angle,
    rest_joints,
)

CONFIG = {"motion": {"fps": 20, "frame_step": 2}, "models": {"mdm": None}}


def row(text, frames=8, seed=42, motion_file=""):
    return {"motion": text, "frames": frames, "seed": seed, "motion_file": motion_file}


@pytest.fixture(scope="module")
def clips():
    """Every built-in motion, 3 s at 20 fps, seed 5: name -> (poses, transl, joints)."""
    out = {}
    for name in library.MOTIONS:
        poses, transl = library.generate(name, 61, 20.0, 5)
        joints, _ = forward_kinematics(poses, transl)
        out[name] = (poses, transl, joints)
    return out


def test_skeleton_tree_and_rodrigues():
    assert PARENTS.shape == (24,) and PARENTS[0] == -1 and all(PARENTS[i] < i for i in range(1, 24))
    rest = rest_joints()
    assert rest.shape == (24, 3)
    assert rest[15, 1] - rest[10, 1] > 1.3  # head above the toes by a person's height
    assert rest[16, 0] > 0 > rest[17, 0]  # left is +X
    aa = np.array([[0.3, -1.2, 0.5], [0.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
    mats = axis_angle_to_matrix(aa)
    np.testing.assert_allclose(
        mats @ np.swapaxes(mats, -1, -2), np.broadcast_to(np.eye(3), mats.shape), atol=1e-12
    )
    np.testing.assert_allclose(matrix_to_axis_angle(mats), aa, atol=1e-10)
    # Zero pose: FK reproduces the rest skeleton shifted by transl.
    joints, _ = forward_kinematics(np.zeros((2, 24, 3)), np.array([[0, 0, 0], [1.0, 2.0, 3.0]]))
    np.testing.assert_allclose(joints[1] - joints[0], np.broadcast_to([1.0, 2.0, 3.0], (24, 3)), atol=1e-12)
    np.testing.assert_allclose(joints[0], rest - rest[0], atol=1e-12)


def test_library_has_ten_motions():
    required = {"walk", "run", "jump", "wave", "squat", "kick", "punch", "turn", "dance", "jumping_jacks"}
    assert required <= set(library.MOTIONS)


@pytest.mark.parametrize("name", sorted(library.MOTIONS))
def test_bone_lengths_constant_and_feet_on_ground(clips, name):
    poses, transl, joints = clips[name]
    assert poses.shape == (61, 24, 3) and transl.shape == (61, 3)
    assert np.isfinite(joints).all()
    lengths = bone_lengths(joints)
    assert np.abs(lengths - lengths[0]).max() < 1e-4
    np.testing.assert_allclose(lengths[0], bone_lengths(rest_joints()), atol=1e-9)
    feet_start = joints[0, list(FOOT_JOINTS), 1]
    assert abs(feet_start.min()) < 1e-9
    # No frame pushes a foot through the ground.
    assert joints[:, list(FOOT_JOINTS), 1].min() > -1e-6


@pytest.mark.parametrize("name, low, high", [("walk", 0.8, 2.0), ("run", 2.2, 6.0)])
def test_locomotion_speed_forward(name, low, high):
    for seed in (0, 1, 2):
        poses, transl = library.generate(name, 61, 20.0, seed)
        speed = (transl[-1, 2] - transl[0, 2]) / 3.0
        assert low <= speed <= high, (name, seed, speed)
        assert abs(transl[-1, 0] - transl[0, 0]) < 0.2  # straight ahead


def test_walk_stance_foot_does_not_slide(clips):
    _, _, joints = clips["walk"]
    feet = joints[:, [7, 8]]  # ankles
    step = np.linalg.norm(np.diff(feet[:, :, [0, 2]], axis=0), axis=-1) * 20.0  # m/s
    planted = step.min(axis=1)  # the slower ankle of each frame pair is the stance foot
    assert np.median(planted) < 0.15


def test_jump_apex(clips):
    _, transl, joints = clips["jump"]
    assert joints[:, 0, 1].max() - joints[0, 0, 1] >= 0.15
    # The default prompt length (8 video frames, step 2 = 15 motion frames) still leaves the ground.
    poses, transl = library.generate("jump", 15, 20.0, 7)
    short, _ = forward_kinematics(poses, transl)
    assert short[:, list(FOOT_JOINTS), 1].min(axis=1).max() >= 0.15


def test_run_from_typed_settings_and_inputs(tmp_path):
    """The workflow's form: settings from the motion section, inputs from the prompt row; run writes nothing
    and returns the Motion that write_motion stores."""
    settings = MotionSettings.from_config({"fps": 20, "frame_step": 2})
    assert settings == MotionSettings(fps=20.0, frame_step=2) and settings.motion_frames(8) == 15
    inputs = MotionInputs.from_row(row("a person waves", frames=8, seed=3), {"mdm": None})
    assert inputs.motion_file is None and inputs.text == "a person waves" and inputs.frames == 8
    motion = run(inputs, settings)
    assert list(tmp_path.iterdir()) == []
    assert motion.num_frames == 15 and motion.fps == 20.0 and motion.source == "builtin:wave"
    assert motion.seed == 3 and motion.reason
    np.testing.assert_array_equal(motion.joints, make_motion(row("a person waves", seed=3), CONFIG).joints)
    write_motion(tmp_path / "m.npz", motion)
    np.testing.assert_array_equal(read_motion(tmp_path / "m.npz").joints, motion.joints)


def test_seed_determinism():
    a = make_motion(row("a person dances", seed=3), CONFIG)
    b = make_motion(row("a person dances", seed=3), CONFIG)
    c = make_motion(row("a person dances", seed=4), CONFIG)
    np.testing.assert_array_equal(a.joints, b.joints)
    np.testing.assert_array_equal(a.poses, b.poses)
    assert np.abs(a.joints - c.joints).max() > 1e-3


@pytest.mark.parametrize(
    "text, name",
    [
        ("a person walks forward", "walk"),
        ("someone strolling in the park", "walk"),
        ("a man is jogging", "run"),
        ("she sprints", "run"),
        ("a person hops on the spot", "jump"),
        ("a person jumps in place", "jump"),
        ("a person waves hello with the right hand", "wave"),
        ("greets a friend", "wave"),
        ("a person crouches down", "squat"),
        ("kicking a ball", "kick"),
        ("a boxer jabs", "punch"),
        ("a person turns around", "turn"),
        ("spinning slowly", "turn"),
        ("a person is dancing", "dance"),
        ("doing jumping jacks", "jumping_jacks"),
        ("a person walks then jumps", "walk"),
        # the verb, not the first motion word (issue 19 item 14)
        ("a dancer spinning", "turn"),
        ("a man in running shoes waves hello", "wave"),
        ("a runner jumps", "jump"),
        ("a person in a dancing dress walks", "walk"),
    ],
)
def test_synonyms(text, name):
    assert library.choose_motion(text) == name


def test_unknown_verb_lists_motions():
    with pytest.raises(LatentmanError) as info:
        make_motion(row("a person juggles oranges"), CONFIG)
    message = str(info.value)
    assert "juggles" in message and "models.mdm" in message
    for name in ("walk", "run", "jump", "wave", "jumping_jacks"):
        assert name in message
    assert "\n" not in message


def test_frame_count_and_too_short():
    motion = make_motion(row("a person walks", frames=8), CONFIG)
    assert motion.num_frames == motion_frames(8, CONFIG) == 15
    assert motion.joints.shape == (15, 22, 3) and motion.joints.dtype == np.float32
    assert motion.source == "builtin:walk" and motion.fps == 20.0
    with pytest.raises(LatentmanError, match="at least 2 frames"):
        make_motion(row("a person walks", frames=1), CONFIG)
    with pytest.raises(LatentmanError, match="longer than 60 s"):
        make_motion(row("a person walks", frames=1000), CONFIG)


def test_write_read_round_trip(tmp_path):
    motion = make_motion(row("a person kicks", seed=9), CONFIG)
    path = tmp_path / "m.npz"
    write_motion(path, motion)
    back = read_motion(path)
    np.testing.assert_array_equal(back.joints, motion.joints)
    np.testing.assert_array_equal(back.poses, motion.poses)
    assert (back.text, back.source, back.seed, back.fps) == ("a person kicks", "builtin:kick", 9, 20.0)
    # Stored joints agree with FK of the stored rotations (the body stage relies on it).
    joints, _ = forward_kinematics(back.poses, back.transl)
    np.testing.assert_allclose(joints[:, :22], back.joints, atol=1e-5)
    assert not list(tmp_path.glob(".tmp-*"))


def test_read_motion_rejects_bad_files(tmp_path):
    motion = make_motion(row("a person squats"), CONFIG)
    good = tmp_path / "good.npz"
    write_motion(good, motion)
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(IntermediateFileError, match=r"truncated\.npz.*rule 'motion'"):
        read_motion(truncated)
    with np.load(good) as data:
        arrays = {k: data[k] for k in data.files}
    old = tmp_path / "old.npz"
    write_npz(old, {**arrays, "format_version": np.int64(FORMAT_VERSIONS["motion"] + 1)})
    with pytest.raises(IntermediateFileError, match=r"old\.npz: format version"):
        read_motion(old)
    nan = tmp_path / "nan.npz"
    joints = arrays["joints"].copy()
    joints[3, 4, 1] = np.nan
    write_npz(nan, {**arrays, "joints": joints})
    with pytest.raises(IntermediateFileError, match="NaN"):
        read_motion(nan)
    wrong = tmp_path / "wrong.npz"
    write_npz(wrong, {**arrays, "joints": arrays["joints"][:, :21]})
    with pytest.raises(IntermediateFileError, match=r"shape \(15, 21, 3\)"):
        read_motion(wrong)
    with pytest.raises(IntermediateFileError, match="not found"):
        read_motion(tmp_path / "missing.npz")


def test_workflow_step_writes_outputs(tmp_path):
    """What workflow_scripts/motion.py does for one prompt: entry point + writer + preview."""
    from latentman.io import write_videos
    from latentman.motion.preview import render_frames

    motion = make_motion(row("a person waves hello", frames=4, seed=3), CONFIG)
    out = tmp_path / "motion"
    write_motion(out / "p.npz", motion)
    frames = render_frames(motion.joints, size=96)
    assert frames.shape == (7, 96, 96, 3) and frames.dtype == np.uint8
    assert frames.std() > 1.0  # something was drawn
    write_videos(frames, motion.fps, out / "p.mp4", out / "p.gif")
    assert read_motion(out / "p.npz").source == "builtin:wave"
    assert (out / "p.gif").stat().st_size > 0 and (out / "p.mp4").stat().st_size > 0
    assert sorted(p.name for p in out.iterdir()) == ["p.gif", "p.mp4", "p.npz"]


def test_the_choice_is_explained_and_shown_in_the_preview_title():
    from latentman.motion.preview import preview_title

    assert library.explain_motion("a man in running shoes waves hello") == (
        "wave",
        "verb 'waves' (also named: run)",
    )
    assert library.explain_motion("a dancer spinning") == ("turn", "verb form 'spinning' (also named: dance)")
    motion = make_motion(row("a man in running shoes waves hello", frames=4, seed=3), CONFIG)
    assert motion.source == "builtin:wave"
    assert preview_title("p", motion) == "p: wave (verb 'waves')"


def test_the_choice_is_stored_in_the_motion_file_and_titles_the_preview(tmp_path):
    """The reason travels with the motion: make_motion sets it, the file keeps it, the preview shows it."""
    import dataclasses

    from latentman.motion.preview import preview_title

    motion = make_motion(row("a man in running shoes waves hello", frames=4, seed=3), CONFIG)
    assert motion.reason == "verb 'waves' (also named: run)"
    path = tmp_path / "m.npz"
    write_motion(path, motion)
    back = read_motion(path)
    assert back.reason == "verb 'waves' (also named: run)" and back.source == "builtin:wave"
    assert preview_title("p", back) == "p: wave (verb 'waves')"
    # The title shows the stored reason, not one worked out again from the text.
    assert preview_title("p", dataclasses.replace(back, reason="verb 'hello'")) == "p: wave (verb 'hello')"
    # Motions from files or MDM have no reason; their title names the source.
    other = dataclasses.replace(back, source="file:/x.npy", reason="")
    write_motion(tmp_path / "f.npz", other)
    assert read_motion(tmp_path / "f.npz").reason == ""
    assert preview_title("p", other) == "p: file"


def test_motion_file_without_reason_still_reads(tmp_path):
    """Files written before the reason was stored read back (same format version), reason ''."""
    from latentman.motion.preview import preview_title

    motion = make_motion(row("a dancer spinning", frames=4, seed=3), CONFIG)
    write_motion(tmp_path / "new.npz", motion)
    with np.load(tmp_path / "new.npz") as data:
        arrays = {k: data[k] for k in data.files if k != "reason"}
    write_npz(tmp_path / "old.npz", arrays)
    old = read_motion(tmp_path / "old.npz")
    assert old.reason == "" and old.source == "builtin:turn"
    np.testing.assert_array_equal(old.joints, motion.joints)
    assert preview_title("p", old) == "p: turn (verb form 'spinning')"  # worked out again from the text
    old.text = "levitating"  # text that no longer chooses it: the title just names the motion
    assert preview_title("p", old) == "p: turn"
