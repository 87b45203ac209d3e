"""The SMPL skeleton, kept in one place: joint names, kinematic tree, rest pose, forward kinematics.

Conventions used everywhere in latentman: metres, Y up, the body faces +Z, its left side is +X.
The first 22 SMPL joints are the HumanML3D joints (same order).

Forward kinematics follows SMPL: joint ``i``'s world rotation is ``R_parent(i) @ r_i`` and its position
``p_parent(i) + R_parent(i) @ (J_i - J_parent(i))`` with ``J`` the rest joints. The root (pelvis) sits at
``transl``: here ``transl`` is the world position of the pelvis joint (``joints[:, 0]``), which keeps the
motion files independent of any particular body's rest pelvis.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

#: SMPL's 24 joints, in SMPL order (the first 22 are HumanML3D's).
JOINT_NAMES = (
    "pelvis",
    "left_hip",
    "right_hip",
    "spine1",
    "left_knee",
    "right_knee",
    "spine2",
    "left_ankle",
    "right_ankle",
    "spine3",
    "left_foot",
    "right_foot",
    "neck",
    "left_collar",
    "right_collar",
    "head",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hand",
    "right_hand",
)
JOINT_INDEX = {name: i for i, name in enumerate(JOINT_NAMES)}

#: Parent of every joint (-1 for the root): SMPL's kinematic tree.
PARENTS = np.array([-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21])

NUM_JOINTS = 24
NUM_HML_JOINTS = 22
#: Foot joints (ankles and toes), used to put the motion on the ground plane.
FOOT_JOINTS = (7, 8, 10, 11)

# Rest joints of a neutral adult in a T-pose, SMPL proportions (about 1.7 m tall), metres, pelvis at
# the origin. Values follow the published SMPL neutral template's joint regressor output, rounded.
_REST = np.array(
    [
        [0.000, 0.000, 0.000],  # pelvis
        [0.058, -0.082, -0.018],  # left_hip
        [-0.060, -0.091, -0.014],  # right_hip
        [0.004, 0.109, -0.022],  # spine1
        [0.102, -0.466, -0.012],  # left_knee
        [-0.103, -0.470, -0.009],  # right_knee
        [0.004, 0.244, 0.003],  # spine2
        [0.087, -0.868, -0.047],  # left_ankle
        [-0.089, -0.874, -0.042],  # right_ankle
        [0.006, 0.297, 0.005],  # spine3
        [0.116, -0.924, 0.075],  # left_foot
        [-0.117, -0.928, 0.078],  # right_foot
        [-0.001, 0.513, -0.032],  # neck
        [0.077, 0.414, -0.011],  # left_collar
        [-0.080, 0.412, -0.015],  # right_collar
        [0.005, 0.577, 0.018],  # head
        [0.172, 0.458, -0.020],  # left_shoulder
        [-0.170, 0.455, -0.025],  # right_shoulder
        [0.424, 0.424, -0.042],  # left_elbow
        [-0.423, 0.421, -0.050],  # right_elbow
        [0.679, 0.431, -0.046],  # left_wrist
        [-0.682, 0.428, -0.049],  # right_wrist
        [0.765, 0.422, -0.061],  # left_hand
        [-0.766, 0.419, -0.067],  # right_hand
    ],
    dtype=np.float64,
)


def rest_joints() -> np.ndarray:
    """Rest (T-pose) joint positions ``(24, 3)`` float64, metres, Y up, facing +Z, pelvis at the origin.

    Every part of latentman that needs the skeleton's proportions calls this one function.
    """
    return _REST.copy()


def bone_lengths(joints: np.ndarray) -> np.ndarray:
    """Length of every bone (joint to parent) ``(..., J-1)`` for joints ``(..., J, 3)``, J = 22 or 24."""
    count = joints.shape[-2]
    child = np.arange(1, count)
    return np.linalg.norm(joints[..., child, :] - joints[..., PARENTS[child], :], axis=-1)


# ------------------------------------------------------------------------------------- rotations
def axis_angle_to_matrix(axis_angle: np.ndarray) -> np.ndarray:
    """Rodrigues' formula: axis-angle ``(..., 3)`` (angle = norm, radians) → matrices ``(..., 3, 3)``."""
    aa = np.asarray(axis_angle, dtype=np.float64)
    angle = np.linalg.norm(aa, axis=-1, keepdims=True)
    safe = np.where(angle > 1e-12, angle, 1.0)
    axis = np.where(angle > 1e-12, aa / safe, 0.0)
    x, y, z = axis[..., 0], axis[..., 1], axis[..., 2]
    zero = np.zeros_like(x)
    skew = np.stack([zero, -z, y, z, zero, -x, -y, x, zero], axis=-1).reshape(*aa.shape[:-1], 3, 3)
    sin = np.sin(angle)[..., None]
    cos = np.cos(angle)[..., None]
    eye = np.broadcast_to(np.eye(3), skew.shape)
    return eye + sin * skew + (1.0 - cos) * (skew @ skew)


def matrix_to_axis_angle(matrix: np.ndarray) -> np.ndarray:
    """Inverse Rodrigues: rotation matrices ``(..., 3, 3)`` → axis-angle ``(..., 3)`` with angle in [0, π]."""
    matrix = np.asarray(matrix, dtype=np.float64)
    flat = matrix.reshape(-1, 3, 3)
    return Rotation.from_matrix(flat).as_rotvec().reshape(*matrix.shape[:-2], 3)


def euler_to_axis_angle(x: np.ndarray, y: np.ndarray = 0.0, z: np.ndarray = 0.0) -> np.ndarray:
    """Rotation ``Rz(z) @ Ry(y) @ Rx(x)`` (radians, broadcast together) as axis-angle ``(..., 3)``."""
    x, y, z = np.broadcast_arrays(np.asarray(x, float), np.asarray(y, float), np.asarray(z, float))
    rot = Rotation.from_euler("ZYX", np.stack([z.ravel(), y.ravel(), x.ravel()], axis=-1))
    return rot.as_rotvec().reshape(*x.shape, 3)


# ----------------------------------------------------------------------------- forward kinematics
def forward_kinematics(
    poses: np.ndarray, transl: np.ndarray, rest: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Batched SMPL forward kinematics.

    Args:
        poses: ``(F, 24, 3)`` axis-angle rotation of every joint relative to its parent (joint 0: global).
        transl: ``(F, 3)`` world position of the pelvis.
        rest: ``(24, 3)`` rest joints; default :func:`rest_joints`.

    Returns:
        joints ``(F, 24, 3)`` world positions and rotations ``(F, 24, 3, 3)`` world orientations.
    """
    rest = rest_joints() if rest is None else np.asarray(rest, dtype=np.float64)
    poses = np.asarray(poses, dtype=np.float64)
    local = axis_angle_to_matrix(poses)
    frames = poses.shape[0]
    world_rot = np.empty((frames, NUM_JOINTS, 3, 3))
    joints = np.empty((frames, NUM_JOINTS, 3))
    world_rot[:, 0] = local[:, 0]
    joints[:, 0] = np.asarray(transl, dtype=np.float64)
    for i in range(1, NUM_JOINTS):
        parent = PARENTS[i]
        world_rot[:, i] = world_rot[:, parent] @ local[:, i]
        joints[:, i] = joints[:, parent] + world_rot[:, parent] @ (rest[i] - rest[parent])
    return joints, world_rot
