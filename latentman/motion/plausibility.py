"""Is an imported skeleton a person in metres, Y up? Catch wrong units and axes at import, with the fix.

Joint arrays carry no units or axis convention, and a wrong one runs to the end: a body in millimetres
fits at 400 m error and renders as a dot, a Z-up body lies on its back in every frame. The checks use
what every human skeleton shares whatever its motion:

* **scale**: the median pelvis-to-head distance (joints 0 and 15 of the SMPL/HumanML3D order) over the
  clip is 0.4-0.8 m for adults; 0.2-1.5 m is accepted. 100x or 1000x that is centimetres or millimetres.
* **orientation**: the torso (pelvis -> head) points within 60 degrees of +Y in at least one frame of
  any clip a text-to-motion model or mocap session makes (lying down starts or ends standing); a clip
  whose torso never does is Z-up or upside down.
* **handedness**: the left hip (joint 1, minus the right hip 2), the torso and the feet (ankle -> toe) form
  a right-handed frame in every posture; a clip where most frames are left-handed is mirrored (left and
  right labels swapped, or one axis negated). The test is invariant to rotation, so lying or turning
  bodies pass.
* **spikes**: bones are rigid, so every bone's length stays within 50 % of its median over the clip in every
  frame, and the pelvis accelerates at most 150 m/s²; the worst bone and frame are named (a one-frame glitch
  is invisible in a clip-wide mean).
* **travel**: the pelvis moves no faster than 15 m/s between frames (a sprinter reaches 12 m/s); faster
  means wrong units or a wrong frame rate.
"""

from __future__ import annotations

import numpy as np

PELVIS, HEAD = 0, 15
TORSO_RANGE_M = (0.2, 1.5)
MIN_UPRIGHT_COSINE = 0.5  # cos 60°
MAX_SPEED_M_S = 15.0
MAX_BONE_CHANGE = 0.5
MIN_BONE_CHANGE_M = 0.05
MAX_PELVIS_ACCEL = 150.0
L_HIP, R_HIP, L_ANKLE, R_ANKLE, L_FOOT, R_FOOT = 1, 2, 7, 8, 10, 11
PARENTS_22 = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19)


def handedness(joints: np.ndarray) -> np.ndarray:
    """Per frame ``(hip axis × torso) · forward``: positive for a right-handed (unmirrored) body."""
    hip = joints[:, L_HIP] - joints[:, R_HIP]
    up = joints[:, HEAD] - joints[:, PELVIS]
    forward = (joints[:, L_FOOT] - joints[:, L_ANKLE]) + (joints[:, R_FOOT] - joints[:, R_ANKLE])
    return np.einsum("ij,ij->i", np.cross(hip, up), forward)


def _spike_problem(joints: np.ndarray, fps: float) -> str | None:
    from latentman.skeleton import JOINT_NAMES

    bones = np.linalg.norm(joints[:, 1:] - joints[:, list(PARENTS_22[1:])], axis=-1)  # (F, 21)
    median = np.median(bones, axis=0)
    change = np.abs(bones - median)
    relative = change / np.maximum(median, 1e-6)
    relative[change < MIN_BONE_CHANGE_M] = 0.0
    frame, bone = np.unravel_index(int(np.argmax(relative)), relative.shape)
    if relative[frame, bone] > MAX_BONE_CHANGE:
        joint = bone + 1
        return (
            f"the bone to joint {joint} ({JOINT_NAMES[joint]}) is {bones[frame, bone]:.3g} m long in frame "
            f"{frame} and {median[bone]:.3g} m (median) elsewhere: a one-frame spike or a swapped joint; fix "
            "or drop that frame"
        )
    if len(joints) > 2:
        pelvis = joints[:, PELVIS]
        accel = np.linalg.norm(pelvis[2:] - 2 * pelvis[1:-1] + pelvis[:-2], axis=-1) * fps * fps
        frame = int(np.argmax(accel))
        if accel[frame] > MAX_PELVIS_ACCEL:
            return (
                f"the pelvis jumps in frame {frame + 1} (acceleration {accel[frame]:.3g} m/s², a person's "
                f"stays under {MAX_PELVIS_ACCEL:g}): a one-frame spike; fix or drop that frame"
            )
    return None


def skeleton_problem(joints: np.ndarray, fps: float) -> str | None:
    """What is implausible about ``joints`` ``(F, 22, 3)`` at ``fps`` (units, axes, speed) and the fix,
    or None."""
    joints = np.asarray(joints, np.float64)
    torso = joints[:, HEAD] - joints[:, PELVIS]
    length = float(np.median(np.linalg.norm(torso, axis=-1)))
    low, high = TORSO_RANGE_M
    if not low <= length <= high:
        for unit, factor in (("millimetres", 1000.0), ("centimetres", 100.0)):
            if low <= length / factor <= high:
                return (
                    f"the pelvis-to-head distance is {length:.4g}, a person's is {low}-{high} m: the joints "
                    f"look like {unit}; divide them by {factor:g}"
                )
        return (
            f"the pelvis-to-head distance is {length:.4g}, a person's is {low}-{high} m: joints must be in "
            "metres"
        )
    unit = torso / np.maximum(np.linalg.norm(torso, axis=-1, keepdims=True), 1e-9)
    if unit[:, 1].max() < MIN_UPRIGHT_COSINE:
        axis = int(np.argmax(np.abs(unit.mean(axis=0))))
        sign = "+" if unit.mean(axis=0)[axis] > 0 else "-"
        found = f"{sign}{'XYZ'[axis]}"
        fix = {
            "+Z": "the joints look Z-up: map (x, y, z) to (x, z, -y)",
            "-Y": "the body is upside down: negate y (and z, to keep the skeleton right-handed)",
        }.get(found, "joints must be Y-up (SMPL/HumanML3D convention)")
        return f"the torso points along {found}, never within 60° of +Y in any frame; {fix}"
    sign = handedness(joints)
    if np.mean(sign < 0) > 0.5:
        return (
            f"the skeleton is mirrored: in {int(np.sum(sign < 0))} of {len(joints)} frames the left hip "
            "(joint 1), the torso and the feet form a left-handed frame; swap the left and right joints "
            "(SMPL order 1<->2, 4<->5, 7<->8, 10<->11, 13<->14, 16<->17, 18<->19, 20<->21) or negate x"
        )
    spike = _spike_problem(joints, fps)
    if spike:
        return spike
    if len(joints) > 1:
        speed = float(np.linalg.norm(np.diff(joints[:, PELVIS], axis=0), axis=-1).max()) * fps
        if speed > MAX_SPEED_M_S:
            return (
                f"the pelvis moves up to {speed:.3g} m/s at {fps:g} fps (a sprinter: 12 m/s): check the "
                "joints' units and the frame rate"
            )
    return None
