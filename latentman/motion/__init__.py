"""Motion stage: a prompt row's motion text (or motion file) → ``results/motion/{prompt}.npz``.

Output file layout (``.npz``, written atomically by :func:`write_motion`):

- ``joints`` ``(F, 22, 3)`` float32, metres, Y up, SMPL/HumanML3D joint order, lowest foot joint of
  the first frame at y = 0;
- ``fps`` float; ``text`` str; ``source`` str (``builtin:<name>``, ``mdm:<checkpoint>``, ``file:<path>``);
  ``seed`` int; ``format`` = "motion"; ``format_version`` = ``FORMAT_VERSIONS["motion"]``;
- optional ``poses`` ``(F, 24, 3)`` float32 axis-angle and ``transl`` ``(F, 3)`` float32 pelvis position,
  when the source has SMPL rotations (the body stage then skips fitting).

``F = (frames - 1) * motion.frame_step + 1`` motion frames at ``motion.fps``.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from latentman.errors import IntermediateFileError, LatentmanError
from latentman.io import FORMAT_VERSIONS, check_array, write_npz
from latentman.motion import library
from latentman.skeleton import NUM_HML_JOINTS, forward_kinematics

__all__ = ["Motion", "make_motion", "motion_frames", "read_motion", "source_files", "write_motion"]


@dataclass
class Motion:
    """A motion clip: ``joints (F, 22, 3)`` (metres, Y up); optional SMPL ``poses (F, 24, 3)``, ``transl``.

    ``transl`` is the pelvis position (``joints[:, 0]``).
    """

    joints: np.ndarray
    fps: float
    text: str
    source: str
    seed: int
    poses: np.ndarray | None = None
    transl: np.ndarray | None = None

    @property
    def num_frames(self) -> int:
        return int(self.joints.shape[0])

    @property
    def duration(self) -> float:
        """Seconds from the first to the last frame."""
        return (self.num_frames - 1) / self.fps


def motion_frames(video_frames: int, config: Mapping[str, Any]) -> int:
    """Motion frames needed for ``video_frames`` video frames: ``(frames - 1) * frame_step + 1``."""
    step = int(config.get("motion", {}).get("frame_step", 1))
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


def source_files(row: Mapping[str, Any], config: Mapping[str, Any]) -> dict[str, str]:
    """Files the motion of ``row`` is made from (Snakemake input): its motion_file, or the MDM checkpoint."""
    motion_file = row.get("motion_file") or ""
    if isinstance(motion_file, str) and motion_file:
        return {"motion_file": motion_file}
    mdm = (config.get("models") or {}).get("mdm")
    return {"mdm": str(mdm)} if mdm else {}


def make_motion(row: Mapping[str, Any], config: Mapping[str, Any]) -> Motion:
    """The motion of one prompt row: its motion_file if set, else MDM if ``models.mdm`` is set, else built-in.

    ``row`` has the prompts.tsv columns (motion, frames, seed, motion_file).
    """
    frames = motion_frames(row["frames"], config)
    fps = float(config.get("motion", {}).get("fps", 20))
    seed = int(row["seed"])
    text = str(row.get("motion", ""))
    motion_file = row.get("motion_file") or ""
    if isinstance(motion_file, float):  # pandas NaN for an empty cell
        motion_file = ""
    if motion_file:
        from latentman.motion.importers import import_motion

        return import_motion(motion_file, frames, fps, text=text, seed=seed)
    mdm = (config.get("models") or {}).get("mdm")
    if mdm:
        from latentman.motion.mdm import generate_mdm

        return generate_mdm(text, frames, fps, seed, config)
    name = library.choose_motion(text)
    poses, transl = library.generate(name, frames, fps, seed)
    return from_smpl(poses, transl, fps, text, f"builtin:{name}", seed)


def write_motion(path: str | os.PathLike, motion: Motion) -> None:
    """Validate ``motion`` and write it atomically as the stage's ``.npz``."""
    check_array(motion.joints, "joints", path, shape=(None, NUM_HML_JOINTS, 3))
    arrays: dict[str, Any] = {
        "joints": np.asarray(motion.joints, dtype=np.float32),
        "fps": np.float64(motion.fps),
        "text": np.str_(motion.text),
        "source": np.str_(motion.source),
        "seed": np.int64(motion.seed),
        "format": np.str_("motion"),
        "format_version": np.int64(FORMAT_VERSIONS["motion"]),
    }
    if motion.poses is not None and motion.transl is not None:
        arrays["poses"] = np.asarray(motion.poses, dtype=np.float32)
        arrays["transl"] = np.asarray(motion.transl, dtype=np.float32)
    for name, value in arrays.items():
        check_array(value, name, path)
    write_npz(path, arrays)


def _hint() -> str:
    return "delete it and rerun rule 'motion' (snakemake --cores all --forcerun motion)"


def read_motion(path: str | os.PathLike) -> Motion:
    """Read and validate a motion ``.npz`` written by :func:`write_motion`.

    Raises:
        IntermediateFileError: missing, truncated, foreign or old-version file, bad shapes/dtypes or
            non-finite values; the message names the file and the rule to rerun.
    """
    path = Path(path)
    if not path.exists():
        raise IntermediateFileError(f"{path}: file not found; it is made by rule 'motion'")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise IntermediateFileError(f"{path}: not a readable motion .npz ({exc}); {_hint()}") from None
    for key in ("format", "format_version", "joints", "fps", "text", "source", "seed"):
        if key not in arrays:
            raise IntermediateFileError(f"{path}: '{key}' is missing; {_hint()}")
    if str(arrays["format"]) != "motion":
        raise IntermediateFileError(
            f"{path}: expected a 'motion' file, found format={arrays['format']!s}; {_hint()}"
        )
    version = int(arrays["format_version"])
    if version != FORMAT_VERSIONS["motion"]:
        raise IntermediateFileError(
            f"{path}: format version {version}, this version of latentman reads version "
            f"{FORMAT_VERSIONS['motion']}; {_hint()}"
        )
    joints = check_array(arrays["joints"], "joints", path, shape=(None, NUM_HML_JOINTS, 3), dtype=np.float32)
    frames = joints.shape[0]
    if frames < 2:
        raise IntermediateFileError(f"{path}: 'joints' has {frames} frame(s), expected at least 2; {_hint()}")
    fps = float(arrays["fps"])
    if not np.isfinite(fps) or fps <= 0:
        raise IntermediateFileError(f"{path}: 'fps' is {fps}, expected a positive number; {_hint()}")
    poses = transl = None
    if "poses" in arrays or "transl" in arrays:
        if "poses" not in arrays or "transl" not in arrays:
            raise IntermediateFileError(f"{path}: 'poses' and 'transl' must come together; {_hint()}")
        poses = check_array(arrays["poses"], "poses", path, shape=(frames, 24, 3), dtype=np.float32)
        transl = check_array(arrays["transl"], "transl", path, shape=(frames, 3), dtype=np.float32)
    return Motion(
        joints=joints,
        fps=fps,
        text=str(arrays["text"]),
        source=str(arrays["source"]),
        seed=int(arrays["seed"]),
        poses=poses,
        transl=transl,
    )


def require_frames(available: int, needed: int, what: str) -> None:
    """Raise a one-line error when a source has fewer frames than the prompt needs."""
    if available < needed:
        raise LatentmanError(
            f"{what}: has {available} frames at the target fps, the prompt needs {needed} "
            "((frames - 1) * motion.frame_step + 1); lower frames or motion.frame_step"
        )
