"""Motion-file import: MDM results.npy, AMASS-style SMPL .npz, plain joint arrays; resampling."""

import os

import numpy as np
import pytest

from latentman.errors import LatentmanError
from latentman.motion import library, make_motion
from latentman.motion.importers import (
    Z_UP_TO_Y_UP,
    import_motion,
    resample_positions,
    resample_rotations,
    resample_times,
)
from latentman.skeleton import FOOT_JOINTS, bone_lengths, forward_kinematics

CONFIG = {"motion": {"fps": 20, "frame_step": 2}, "models": {"mdm": None}}


def walk_joints(frames=40, fps=20.0):
    poses, transl = library.generate("walk", frames, fps, 1)
    joints, _ = forward_kinematics(poses, transl)
    return poses, transl, joints[:, :22]


def test_resampling_preserves_duration():
    for frames, fps_in, fps_out in ((121, 60.0, 20.0), (41, 20.0, 30.0), (100, 120.0, 20.0)):
        times = resample_times(frames, fps_in, fps_out)
        assert abs(times[-1] - (frames - 1) / fps_in) <= 1.0 / fps_out + 1e-9
        values = np.linspace(0.0, 1.0, frames)[:, None]
        out = resample_positions(values, fps_in, fps_out)
        np.testing.assert_allclose(out[:, 0], times / ((frames - 1) / fps_in), atol=1e-9)
    # Rotations: slerp between two keyframes lands halfway.
    poses = np.zeros((3, 1, 3))
    poses[:, 0, 1] = [0.0, 1.0, 2.0]
    out = resample_rotations(poses, 2.0, 4.0)
    np.testing.assert_allclose(out[:, 0, 1], [0.0, 0.5, 1.0, 1.5, 2.0], atol=1e-9)


def test_mdm_results_npy(tmp_path):
    _, _, joints = walk_joints(40)
    motion = np.transpose(joints, (1, 2, 0))[None].repeat(2, axis=0)  # (N, 22, 3, T)
    path = tmp_path / "results.npy"
    np.save(
        path, {"motion": motion, "text": ["a person walks"], "lengths": np.array([40, 40]), "num_samples": 1}
    )
    result = make_motion({"motion": "", "frames": 8, "seed": 1, "motion_file": str(path)}, CONFIG)
    assert result.joints.shape == (15, 22, 3) and result.source == f"file:{path}"
    assert result.text == "a person walks" and result.poses is None
    expected = joints[:15] - [0, joints[0, list(FOOT_JOINTS), 1].min(), 0]
    np.testing.assert_allclose(result.joints, expected, atol=1e-5)


@pytest.mark.parametrize(("width", "rate_key"), [(156, "mocap_framerate"), (165, "mocap_frame_rate")])
def test_amass_npz_z_up_resampled(tmp_path, width, rate_key):
    poses, transl, joints = walk_joints(121, fps=60.0)  # 2 s at 60 fps, Y up
    # Express the clip as AMASS does: Z-up world, SMPL-H (156) or SMPL-X (165) poses: 22 body joints,
    # then fingers (SMPL-H: left index first) or jaw, eyes and fingers (SMPL-X), never SMPL's hand joints.
    to_z = Z_UP_TO_Y_UP.T
    from scipy.spatial.transform import Rotation

    amass = np.random.default_rng(0).normal(0.0, 0.5, (121, width))  # fingers etc. far from rest
    amass[:, 3:66] = poses[:, 1:22].reshape(121, -1)
    amass[:, :3] = (Rotation.from_matrix(to_z) * Rotation.from_rotvec(poses[:, 0])).as_rotvec()
    path = tmp_path / "clip_poses.npz"
    np.savez(path, poses=amass, trans=transl @ to_z.T, **{rate_key: np.array(60.0)}, gender="neutral")
    result = import_motion(path, 31, 20.0)
    assert result.joints.shape == (31, 22, 3) and result.poses.shape == (31, 24, 3)
    assert (result.poses[:, 22:] == 0).all()  # SMPL's hands at rest, not the left index finger
    # Every 3rd frame of the original, back in Y up.
    expected = joints[::3][:31]
    expected = expected - [0, expected[0, list(FOOT_JOINTS), 1].min(), 0]
    np.testing.assert_allclose(result.joints, expected, atol=1e-4)
    lengths = bone_lengths(result.joints)
    assert np.abs(lengths - lengths[0]).max() < 1e-4
    assert result.joints[:, 15, 1].min() > 1.2  # the head is up: the axes were converted


def _z_up_amass(poses, transl, width):
    """(F, 24, 3) Y-up SMPL poses and translation as an AMASS-style Z-up (poses (F, width), trans)."""
    from scipy.spatial.transform import Rotation

    to_z = Z_UP_TO_Y_UP.T
    count = 24 if width == 72 else 22
    out = np.zeros((len(poses), width))
    out[:, : count * 3] = poses[:, :count].reshape(len(poses), -1)
    out[:, :3] = (Rotation.from_matrix(to_z) * Rotation.from_rotvec(poses[:, 0])).as_rotvec()
    return out, transl @ to_z.T


def test_amass_body_does_not_depend_on_fingers(tmp_path):
    """SMPL-H's finger values (left index first, poses[:, 66:72]) move nothing: SMPL's hands stay at rest."""
    poses, transl, _ = walk_joints(61, fps=60.0)
    body, transl = _z_up_amass(poses, transl, 156)
    fingers = body.copy()
    fingers[:, 66:] = np.random.default_rng(1).normal(0.0, 0.8, (61, 90))
    results = []
    for name, values in (("body", body), ("fingers", fingers)):
        path = tmp_path / f"{name}.npz"
        np.savez(path, poses=values, trans=transl, mocap_framerate=np.array(60.0))
        results.append(import_motion(path, 15, 20.0))
    np.testing.assert_array_equal(results[0].poses, results[1].poses)
    np.testing.assert_array_equal(results[0].joints, results[1].joints)
    assert (results[1].poses[:, 22:] == 0).all()


def test_amass_smpl_72_keeps_its_hand_joints(tmp_path):
    """A plain SMPL file (72 values) has real hand joints 22-23: they are kept."""
    poses, transl, _ = walk_joints(61, fps=60.0)
    smpl, transl = _z_up_amass(poses, transl, 72)
    smpl[:, 66:72] = 0.3
    path = tmp_path / "smpl.npz"
    np.savez(path, poses=smpl, trans=transl, mocap_framerate=np.array(60.0))
    result = import_motion(path, 15, 20.0)
    np.testing.assert_allclose(result.poses[:, 22:], 0.3, atol=1e-6)


def test_amass_without_a_rate_names_both_keys(tmp_path):
    path = tmp_path / "norate.npz"
    np.savez(path, poses=np.zeros((30, 156)), trans=np.zeros((30, 3)))
    with pytest.raises(LatentmanError, match="lacks 'mocap_framerate' or 'mocap_frame_rate'"):
        import_motion(path, 10, 20.0)


def test_plain_joint_arrays(tmp_path):
    _, _, joints = walk_joints(30)
    npy = tmp_path / "joints.npy"
    np.save(npy, joints.astype(np.float32))
    a = import_motion(npy, 20, 20.0)
    assert a.joints.shape == (20, 22, 3)
    assert abs(a.joints[0, list(FOOT_JOINTS), 1].min()) < 1e-6
    npz = tmp_path / "joints.npz"
    np.savez(npz, joints=joints, fps=np.array(10.0))  # 30 frames at 10 fps = 2.9 s
    b = import_motion(npz, 40, 20.0)
    assert b.joints.shape == (40, 22, 3)
    np.testing.assert_allclose(b.joints[2], a.joints[1], atol=1e-5)  # 20 fps frame 2 = 10 fps frame 1


class _RunsACommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_results_npy_that_runs_code_is_refused(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "results.npy"
    np.save(path, np.array({"motion": _RunsACommand(marker)}, dtype=object), allow_pickle=True)
    with pytest.raises(LatentmanError) as info:
        import_motion(path, 10, 20.0)
    message = str(info.value)
    assert message.startswith(f"motion_file {path}: refusing to load {os.name}.system")
    assert "\n" not in message and not marker.exists()


def test_import_errors(tmp_path):
    _, _, joints = walk_joints(30)
    bad = joints.copy()
    bad[5, 3, 2] = np.nan
    nan = tmp_path / "nan.npy"
    np.save(nan, bad)
    with pytest.raises(LatentmanError, match=r"nan\.npy.*NaN"):
        import_motion(nan, 10, 20.0)
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, joints[:, :, :2])
    with pytest.raises(LatentmanError, match=r"wrong\.npy.*shape \(30, 22, 2\)"):
        import_motion(wrong, 10, 20.0)
    with pytest.raises(LatentmanError, match=r"has 30 frames .* needs 60"):
        import_motion(_save(tmp_path, joints), 60, 20.0)
    other = tmp_path / "other.npz"
    np.savez(other, something=np.zeros(3))
    with pytest.raises(LatentmanError, match="unknown layout"):
        import_motion(other, 10, 20.0)
    with pytest.raises(LatentmanError, match="file not found"):
        import_motion(tmp_path / "missing.npy", 10, 20.0)
    amass = tmp_path / "amass.npz"
    np.savez(amass, poses=np.zeros((30, 72)), mocap_framerate=np.array(30.0))
    with pytest.raises(LatentmanError, match="lacks 'trans'"):
        import_motion(amass, 10, 20.0)


def _save(tmp_path, joints):
    path = tmp_path / "short.npy"
    np.save(path, joints)
    return path


def test_motion_file_takes_precedence_over_mdm(tmp_path):
    _, _, joints = walk_joints(30)
    path = _save(tmp_path, joints)
    config = {"motion": {"fps": 20, "frame_step": 2}, "models": {"mdm": str(tmp_path / "absent.pt")}}
    row = {"motion": "a person walks", "frames": 8, "seed": 1, "motion_file": str(path)}
    assert make_motion(row, config).source == f"file:{path}"  # the absent checkpoint is never touched


def test_joints_in_wrong_units_or_axes_are_named_at_import(tmp_path):
    _, _, joints = walk_joints(30)
    millimetres = tmp_path / "mm.npy"
    np.save(millimetres, (joints * 1000.0).astype(np.float32))
    with pytest.raises(
        LatentmanError, match=r"motion_file .*mm\.npy: .*look like millimetres; divide them by 1000"
    ):
        import_motion(millimetres, 20, 20.0)
    z_up = tmp_path / "z_up.npz"
    np.savez(z_up, joints=joints @ Z_UP_TO_Y_UP)  # y -> z: a body lying along Z
    with pytest.raises(LatentmanError, match=r"z_up\.npz: the torso points along \+Z.*map \(x, y, z\) to"):
        import_motion(z_up, 20, 20.0)
