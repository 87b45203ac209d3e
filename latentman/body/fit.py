"""Fit SMPL pose and translation to a motion's joints, or take the motion's own SMPL rotations.

A motion with only joints ``(F, 22, 3)`` (MDM, joint files) is fitted for all frames at once:

1. analytic initialisation from bone directions: walking down the kinematic tree, every joint gets
   the swing rotation that turns its rest bone (rotated by its parent's world rotation) onto the
   target bone; joints with several observed children (pelvis, spine3) get the best rotation of all
   their child bones at once (Kabsch). Twist about a bone is not observable from joints and starts at 0.
2. a batched optimisation (torch Adam, CPU, 200 steps) of every joint rotation and the pelvis
   position through forward kinematics of the body's own rest joints, with a temporal smoothness term
   on the rotations and a small L2 prior on the pose (which also keeps unobservable twists near zero).
   Each joint's squared error is weighted by how well its bone's length agrees between the two
   skeletons (:func:`joint_weights`): landmarks that the skeletons place differently (the built-in
   body's spine1 is 69 mm above the pelvis, SMPL's 108-132 mm; its spine3 bone is 135 mm, SMPL's
   53-61 mm; wider hips, shorter collars) cannot be matched by any pose, and at full weight they pull
   the pelvis, legs and head off the joints the skeletons do share.

A motion that already has ``poses`` + ``transl`` (pelvis positions; built-in library, AMASS-style files)
is used directly: fit error 0, ``fit = "direct"``.

Rotations are axis-angle relative to the parent (SMPL); ``transl`` is in smplx's convention (added to
the posed mesh, so the pelvis lands at ``rest_joints[0] + transl`` for zero betas).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from latentman.errors import LatentmanError
from latentman.skeleton import (
    NUM_HML_JOINTS,
    NUM_JOINTS,
    PARENTS,
    axis_angle_to_matrix,
    bone_lengths,
    matrix_to_axis_angle,
)

__all__ = [
    "SHARED_JOINTS",
    "SmplFit",
    "fit_joints",
    "fit_motion",
    "initial_rotations",
    "joint_weights",
    "joints_from_pose",
]

#: Children of every joint among the 22 observed (HumanML3D) joints.
_OBSERVED_CHILDREN = {
    j: [c for c in range(1, NUM_HML_JOINTS) if PARENTS[c] == j] for j in range(NUM_HML_JOINTS)
}

#: Optimisation defaults: weights are relative to the mean squared joint error in m².
SMOOTH_WEIGHT = 1e-3  # on squared frame-to-frame change of the axis-angle rotations (rad²)
PRIOR_WEIGHT = 1e-6  # on squared joint rotations (rad²); keeps unobservable twists at zero
ITERATIONS = 200
LEARNING_RATE = 0.01  # radians / metres per step at the start (cosine decay to 0)
#: Bone-length difference (metres) at which a joint's weight halves (:func:`joint_weights`). Measured on
#: the built-in motions' joints with SMPL's proportions: 20 mm gave the lowest error on the shared joints
#: (12.9 mm against 15.5 unweighted; 10 mm: 12.5 mm but spine2 and neck 10 mm worse, 40 mm: 13.9 mm).
BONE_TOLERANCE = 0.02
#: Joints that mean the same place on any body (root, leg joints, head, shoulders, arm joints), as opposed
#: to the spine, neck, collar and hip landmarks, which each skeleton's joint regressor places its own way.
SHARED_JOINTS = (0, 4, 5, 7, 8, 10, 11, 15, 16, 17, 18, 19, 20, 21)


@dataclass
class SmplFit:
    """SMPL parameters of a clip (smplx convention) and how they were obtained."""

    global_orient: np.ndarray  # (F, 3) float32 axis-angle
    body_pose: np.ndarray  # (F, 69) float32 axis-angle of joints 1..23
    transl: np.ndarray  # (F, 3) float32, smplx convention
    betas: np.ndarray  # (B,) float32
    fit_error_mm: float  # mean per-joint error over the 22 joints and all frames
    method: str  # "direct" or "optimised"
    #: (22,) mean error of every joint over all frames, mm (zeros for "direct")
    joint_error_mm: np.ndarray = field(default_factory=lambda: np.zeros(NUM_HML_JOINTS, np.float32))
    #: the largest error of one joint in one frame, mm, and where (frame, joint): a one-frame spike that the
    #: means above hide (zero and (0, 0) for "direct")
    worst_error_mm: float = 0.0
    worst_at: tuple[int, int] = (0, 0)

    @property
    def shared_error_mm(self) -> float:
        """Mean error over :data:`SHARED_JOINTS`: the pose error without the skeletons' own landmarks."""
        return float(np.mean(self.joint_error_mm[list(SHARED_JOINTS)]))

    @property
    def num_frames(self) -> int:
        return int(self.global_orient.shape[0])

    def take(self, frames: np.ndarray | slice) -> SmplFit:
        """The same fit restricted to ``frames`` (indices or a slice)."""
        return SmplFit(
            global_orient=self.global_orient[frames],
            body_pose=self.body_pose[frames],
            transl=self.transl[frames],
            betas=self.betas,
            fit_error_mm=self.fit_error_mm,
            method=self.method,
            joint_error_mm=self.joint_error_mm,
            worst_error_mm=self.worst_error_mm,
            worst_at=self.worst_at,
        )


# ------------------------------------------------------------------------ analytic initialisation
def _swing(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Smallest rotations ``(F, 3, 3)`` turning directions ``src`` onto ``dst`` (both ``(F, 3)``)."""
    a = src / np.maximum(np.linalg.norm(src, axis=-1, keepdims=True), 1e-12)
    b = dst / np.maximum(np.linalg.norm(dst, axis=-1, keepdims=True), 1e-12)
    axis = np.cross(a, b)
    sin = np.linalg.norm(axis, axis=-1)
    cos = np.sum(a * b, axis=-1)
    angle = np.arctan2(sin, cos)
    # Opposite directions: any axis perpendicular to a will do.
    opposite = sin < 1e-9
    if opposite.any():
        helper = np.where(np.abs(a[:, :1]) < 0.9, [[1.0, 0.0, 0.0]], [[0.0, 1.0, 0.0]])
        perpendicular = np.cross(a, helper)
        axis = np.where(opposite[:, None], perpendicular, axis)
    axis = axis / np.maximum(np.linalg.norm(axis, axis=-1, keepdims=True), 1e-12)
    return axis_angle_to_matrix(axis * angle[:, None])


def _kabsch(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Best rotations ``(F, 3, 3)`` taking vector sets ``src`` onto ``dst`` (both ``(F, K, 3)``)."""
    cov = np.einsum("fki,fkj->fij", dst, src)
    u, _, vt = np.linalg.svd(cov)
    sign = np.sign(np.linalg.det(u @ vt))
    fix = np.broadcast_to(np.eye(3), cov.shape).copy()
    fix[:, 2, 2] = sign
    return u @ fix @ vt


def initial_rotations(joints: np.ndarray, rest_joints: np.ndarray) -> np.ndarray:
    """Analytic rotations ``(F, 24, 3)`` (axis-angle) from the bone directions of ``joints (F, 22, 3)``.

    ``rest_joints`` ``(24, 3)``: the skeleton being posed.
    """
    joints = np.asarray(joints, dtype=np.float64)
    rest = np.asarray(rest_joints, dtype=np.float64)
    frames = joints.shape[0]
    world = np.broadcast_to(np.eye(3), (frames, NUM_JOINTS, 3, 3)).copy()
    local = np.broadcast_to(np.eye(3), (frames, NUM_JOINTS, 3, 3)).copy()
    for j in range(NUM_HML_JOINTS):  # PARENTS is topologically ordered
        parent_world = world[:, PARENTS[j]] if j > 0 else np.broadcast_to(np.eye(3), (frames, 3, 3))
        children = _OBSERVED_CHILDREN[j]
        if children:
            src = np.einsum("fij,kj->fki", parent_world, rest[children] - rest[j])
            dst = joints[:, children] - joints[:, j : j + 1]
            delta = _swing(src[:, 0], dst[:, 0]) if len(children) == 1 else _kabsch(src, dst)
            world[:, j] = delta @ parent_world
        else:
            world[:, j] = parent_world  # leaf or unobserved children: no rotation
        local[:, j] = np.swapaxes(parent_world, -1, -2) @ world[:, j]
    for j in range(NUM_HML_JOINTS, NUM_JOINTS):
        world[:, j] = world[:, PARENTS[j]]
    return matrix_to_axis_angle(local)


def joint_weights(
    joints: np.ndarray, rest_joints: np.ndarray, tolerance: float = BONE_TOLERANCE
) -> np.ndarray:
    """Fit weight ``(22,)`` of every joint: ``1 / (1 + (d / tolerance)²)`` with ``d`` the difference between
    the median length over frames of the bone ending at the joint in ``joints (F, 22, 3)`` and in the
    body's ``rest_joints``; the pelvis (no bone) has weight 1. Normalised to mean 1.

    A joint whose bone has another length than the body's can only be matched by moving its parent off
    target; the weight lets it give way instead. Weights come from the data, not from a fixed table, so
    joints of any skeleton (HumanML3D, MDM, a user's) get the weights of their own differences.
    """
    target = np.median(bone_lengths(np.asarray(joints, dtype=np.float64)), axis=0)
    own = bone_lengths(np.asarray(rest_joints, dtype=np.float64)[:NUM_HML_JOINTS])
    weights = np.ones(NUM_HML_JOINTS)
    weights[1:] = 1.0 / (1.0 + ((target - own) / tolerance) ** 2)
    return weights / weights.mean()


# ----------------------------------------------------------------------------- torch kinematics
def _rodrigues(axis_angle):
    """Axis-angle ``(..., 3)`` → rotation matrices ``(..., 3, 3)``, differentiable at zero."""
    import torch

    angle2 = (axis_angle * axis_angle).sum(-1, keepdim=True)
    small = angle2 < 1e-8
    angle = torch.sqrt(torch.where(small, torch.ones_like(angle2), angle2))
    # sin(θ)/θ and (1 - cos θ)/θ², with their Taylor series near 0 (no NaN gradients at exactly 0).
    sinc = torch.where(small, 1.0 - angle2 / 6.0, torch.sin(angle) / angle)
    cosc = torch.where(small, 0.5 - angle2 / 24.0, (1.0 - torch.cos(angle)) / (angle * angle))
    x, y, z = axis_angle.unbind(-1)
    zero = torch.zeros_like(x)
    skew = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).reshape(*axis_angle.shape[:-1], 3, 3)
    eye = torch.eye(3, dtype=axis_angle.dtype).expand_as(skew)
    return eye + sinc[..., None] * skew + cosc[..., None] * (skew @ skew)


def _forward_joints(rotations, pelvis, rest):
    """Torch FK: local rotations ``(F, 24, 3)`` axis-angle, pelvis ``(F, 3)`` → joints ``(F, 22, 3)``."""
    mats = _rodrigues(rotations)
    world = [mats[:, 0]]
    positions = [pelvis]
    for j in range(1, NUM_HML_JOINTS):
        parent = int(PARENTS[j])
        positions.append(positions[parent] + world[parent] @ (rest[j] - rest[parent]))
        world.append(world[parent] @ mats[:, j])
    import torch

    return torch.stack(positions, dim=1)


def joints_from_pose(rotations: np.ndarray, pelvis: np.ndarray, rest_joints: np.ndarray) -> np.ndarray:
    """The 22 joints ``(F, 22, 3)`` of rotations ``(F, 24, 3)`` with the pelvis at ``pelvis (F, 3)``."""
    import torch

    with torch.no_grad():
        out = _forward_joints(
            torch.as_tensor(np.asarray(rotations, dtype=np.float64)),
            torch.as_tensor(np.asarray(pelvis, dtype=np.float64)),
            torch.as_tensor(np.asarray(rest_joints, dtype=np.float64)),
        )
    return out.numpy()


def fit_joints(
    joints: np.ndarray,
    rest_joints: np.ndarray,
    iterations: int = ITERATIONS,
    smooth_weight: float = SMOOTH_WEIGHT,
    prior_weight: float = PRIOR_WEIGHT,
    weights: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Fit rotations and pelvis positions to ``joints (F, 22, 3)``; skeleton ``rest_joints (24, 3)``.

    ``weights`` ``(22,)``: weight of every joint's squared error; default :func:`joint_weights`
    (all ones gives the plain least-squares fit).

    Returns:
        rotations ``(F, 24, 3)`` axis-angle (joints 22, 23 zero), pelvis ``(F, 3)``, and the mean
        per-joint position error in millimetres.
    """
    import torch

    joints = np.asarray(joints, dtype=np.float64)
    if joints.ndim != 3 or joints.shape[1:] != (NUM_HML_JOINTS, 3) or joints.shape[0] < 1:
        raise LatentmanError(f"fit: joints have shape {joints.shape}, expected (F, {NUM_HML_JOINTS}, 3)")
    if not np.isfinite(joints).all():
        raise LatentmanError("fit: joints contain NaN or infinite values")
    init = initial_rotations(joints, rest_joints)
    if weights is None:
        weights = joint_weights(joints, rest_joints)
    weight = torch.as_tensor(np.asarray(weights, dtype=np.float64).reshape(NUM_HML_JOINTS))
    target = torch.as_tensor(joints)
    rest = torch.as_tensor(np.asarray(rest_joints, dtype=np.float64))
    rotations = torch.tensor(init[:, :NUM_HML_JOINTS], requires_grad=True)
    pelvis = torch.tensor(joints[:, 0], requires_grad=True)
    hands = torch.zeros((joints.shape[0], NUM_JOINTS - NUM_HML_JOINTS, 3), dtype=torch.float64)

    def loss_fn():
        pose = torch.cat([rotations, hands], dim=1)
        # In cm²: keeps the loss near 1 at centimetre errors, the scale Adam's step size is set for.
        data = 1e4 * (weight * ((_forward_joints(pose, pelvis, rest) - target) ** 2).sum(-1)).mean()
        loss = data + 1e4 * prior_weight * (rotations[:, 1:] ** 2).sum(-1).mean()
        if joints.shape[0] > 1:
            loss = loss + 1e4 * smooth_weight * ((rotations[1:] - rotations[:-1]) ** 2).sum(-1).mean()
        return loss

    threads = torch.get_num_threads()
    # Tensors are tiny: one thread is faster than several (and much faster on a busy machine).
    torch.set_num_threads(1)
    try:
        _optimise(loss_fn, [rotations, pelvis], iterations)
    finally:
        torch.set_num_threads(threads)
    with torch.no_grad():
        pose = torch.cat([rotations, hands], dim=1)
        fitted = _forward_joints(pose, pelvis, rest)
        error_mm = float((fitted - target).norm(dim=-1).mean()) * 1000.0
    return pose.detach().numpy(), pelvis.detach().numpy(), error_mm


def _optimise(loss_fn, parameters, iterations: int) -> None:
    import torch

    if iterations > 0:
        # Adam with a fixed number of steps: a predictable run time (L-BFGS line searches are not).
        optimiser = torch.optim.Adam(parameters, lr=LEARNING_RATE)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=int(iterations))
        for _ in range(int(iterations)):
            optimiser.zero_grad()
            loss_fn().backward()
            optimiser.step()
            schedule.step()


# ---------------------------------------------------------------------------------- motion → SMPL
def fit_motion(motion: Any, body: Any, iterations: int = ITERATIONS) -> SmplFit:
    """SMPL parameters for every frame of ``motion`` (a :class:`latentman.motion.Motion`) on ``body``.

    Uses the motion's own ``poses`` + ``transl`` when it has them (``method = "direct"``), else fits
    the body's rest skeleton to ``motion.joints`` (``method = "optimised"``).
    """
    betas = np.zeros(int(body.num_betas), dtype=np.float32)
    if motion.poses is not None and motion.transl is not None:
        poses = np.asarray(motion.poses, dtype=np.float64)
        pelvis = np.asarray(motion.transl, dtype=np.float64)
        method, error_mm = "direct", 0.0
        joint_error = np.zeros(NUM_HML_JOINTS)
        worst = (0.0, (0, 0))
    else:
        poses, pelvis, error_mm = fit_joints(motion.joints, body.rest_joints, iterations=iterations)
        method = "optimised"
        fitted = joints_from_pose(poses, pelvis, body.rest_joints)
        per_frame = np.linalg.norm(fitted - np.asarray(motion.joints, np.float64), axis=-1) * 1000.0
        joint_error = per_frame.mean(0)
        frame, joint = np.unravel_index(int(np.nanargmax(per_frame)), per_frame.shape)
        worst = (float(per_frame[frame, joint]), (int(frame), int(joint)))
    frames = poses.shape[0]
    transl = body.transl_for_pelvis(pelvis.astype(np.float32), betas=None)
    return SmplFit(
        global_orient=poses[:, 0].astype(np.float32),
        body_pose=poses[:, 1:].reshape(frames, 3 * (NUM_JOINTS - 1)).astype(np.float32),
        transl=np.asarray(transl, dtype=np.float32),
        betas=betas,
        fit_error_mm=float(error_mm),
        method=method,
        joint_error_mm=joint_error.astype(np.float32),
        worst_error_mm=worst[0],
        worst_at=worst[1],
    )
