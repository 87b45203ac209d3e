"""Motion stage: a prompt row's motion text (or motion file) → ``results/motion/{prompt}.npz``.

The file layout is in latentman.motion.storage; the sources (motion file, MDM, built-in library) are chosen
in latentman.motion.stage (``stage.run``; its record is :class:`Motion`).
"""

from latentman.motion.clip import Motion, from_smpl, ground, motion_frames, require_frames
from latentman.motion.stage import MotionInputs, MotionSettings, make_motion
from latentman.motion.storage import read_motion, write_motion

__all__ = [
    "Motion",
    "MotionInputs",
    "MotionSettings",
    "from_smpl",
    "ground",
    "make_motion",
    "motion_frames",
    "read_motion",
    "require_frames",
    "write_motion",
]
