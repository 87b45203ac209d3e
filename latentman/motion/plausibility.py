"""Is an imported skeleton a person in metres, Y up? Catch wrong units and axes at import, with the fix.

Joint arrays carry no units or axis convention, and a wrong one runs to the end: a body in millimetres
fits at 400 m error and renders as a dot, a Z-up body lies on its back in every frame. The checks use
what every human skeleton shares whatever its motion:

* **scale**: the median pelvis-to-head distance (joints 0 and 15 of the SMPL/HumanML3D order) over the
  clip is 0.4-0.8 m for adults; 0.2-1.5 m is accepted. 100x or 1000x that is centimetres or millimetres.
* **orientation**: the torso (pelvis -> head) points within 60 degrees of +Y in at least one frame of
  any clip a text-to-motion model or mocap session makes (lying down starts or ends standing); a clip
  whose torso never does is Z-up or upside down.
* **travel**: the pelvis moves no faster than 15 m/s between frames (a sprinter reaches 12 m/s); faster
  means wrong units or a wrong frame rate.
"""

from __future__ import annotations

import numpy as np

PELVIS, HEAD = 0, 15
TORSO_RANGE_M = (0.2, 1.5)
MIN_UPRIGHT_COSINE = 0.5  # cos 60°
MAX_SPEED_M_S = 15.0


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
    if len(joints) > 1:
        speed = float(np.linalg.norm(np.diff(joints[:, PELVIS], axis=0), axis=-1).max()) * fps
        if speed > MAX_SPEED_M_S:
            return (
                f"the pelvis moves up to {speed:.3g} m/s at {fps:g} fps (a sprinter: 12 m/s): check the "
                "joints' units and the frame rate"
            )
    return None
