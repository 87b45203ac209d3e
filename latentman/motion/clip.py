"""A motion clip in memory (joints, optional SMPL rotations) and the helpers every motion source shares."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from latentman.errors import LatentmanError
from latentman.skeleton import NUM_HML_JOINTS, forward_kinematics


@dataclass
class Motion:
    """A motion clip: ``joints (F, 22, 3)`` (metres, Y up); optional SMPL ``poses (F, 24, 3)``, ``transl``.

    ``transl`` is the pelvis position (``joints[:, 0]``). ``reason`` says why a built-in motion was chosen
    for the text (:func:`latentman.motion.library.explain_motion`, e.g. "verb 'waves'"); empty for other
    sources and for motion files written before it was stored.
    """

    joints: np.ndarray
    fps: float
    text: str
    source: str
    seed: int
    poses: np.ndarray | None = None
    transl: np.ndarray | None = None
    reason: str = ""

    @property
    def num_frames(self) -> int:
        return int(self.joints.shape[0])

    @property
    def duration(self) -> float:
        """Seconds from the first to the last frame."""
        return (self.num_frames - 1) / self.fps


def motion_frames(video_frames: int, config: Mapping[str, Any]) -> int:
    """Motion frames needed for ``video_frames`` video frames: ``(frames - 1) * frame_step + 1``
    (``config["motion"]["frame_step"]`` of the validated config)."""
    step = int(config["motion"]["frame_step"])
    return (int(video_frames) - 1) * step + 1


def ground(joints: np.ndarray) -> np.ndarray:
    """Shift joints ``(F, J, 3)`` vertically so the lowest foot joint of the first frame is at y = 0."""
    from latentman.skeleton import FOOT_JOINTS

    out = np.array(joints, dtype=np.float64, copy=True)
    out[..., 1] -= out[0, list(FOOT_JOINTS), 1].min()
    return out


def from_smpl(poses: np.ndarray, transl: np.ndarray, fps: float, text: str, source: str, seed: int) -> Motion:
    """Motion from SMPL rotations: joints by forward kinematics on the shared rest skeleton, grounded."""
    joints, _ = forward_kinematics(poses, transl)
    grounded = ground(joints)
    transl = np.asarray(transl, dtype=np.float64) + (grounded[0, 0] - joints[0, 0])
    return Motion(
        joints=grounded[:, :NUM_HML_JOINTS].astype(np.float32),
        fps=float(fps),
        text=str(text),
        source=source,
        seed=int(seed),
        poses=np.asarray(poses, dtype=np.float32),
        transl=transl.astype(np.float32),
    )


def require_frames(available: int, needed: int, what: str) -> None:
    """Raise a one-line error when a source has fewer frames than the prompt needs."""
    if available < needed:
        raise LatentmanError(
            f"{what}: has {available} frames at the target fps, the prompt needs {needed} "
            "((frames - 1) * motion.frame_step + 1); lower frames or motion.frame_step"
        )
