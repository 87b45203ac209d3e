"""The motion file ``results/motion/{prompt}.npz`` (format "motion"): its one writer and one reader.

Output file layout (``.npz``, written atomically by :func:`write_motion`):

- ``joints`` ``(F, 22, 3)`` float32, metres, Y up, SMPL/HumanML3D joint order, lowest foot joint of
  the first frame at y = 0;
- ``fps`` float; ``text`` str; ``source`` str (``builtin:<name>``, ``mdm:<checkpoint>``, ``file:<path>``);
  ``seed`` int; ``format`` = "motion"; ``format_version`` = ``FORMAT_VERSIONS["motion"]``;
- ``reason`` str: why the built-in motion was chosen for the text ("verb 'waves' (also named: run)"),
  empty for other sources. Optional for the reader: files written before it existed read as "" (same
  format version);
- ``prompt_id`` str and ``settings_hash`` str: the identity (latentman.io.Identity). The workflow hashes what
  the motion job read (:func:`motion_settings_hash` of the prompt row's motion request, ``motion:`` and
  the MDM model keys), so the render job can check it got the motion of its prompt and settings. Optional
  to library callers (absent in older files: same format version); the workflow refuses a file without;
- optional ``poses`` ``(F, 24, 3)`` float32 axis-angle and ``transl`` ``(F, 3)`` float32 pelvis position,
  when the source has SMPL rotations (the body stage then skips fitting).

``F = (frames - 1) * motion.frame_step + 1`` motion frames at ``motion.fps``.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from latentman.errors import IntermediateFileError
from latentman.io import FORMAT_VERSIONS, Identity, check_array, check_identity, identity_hash, write_npz
from latentman.motion.clip import Motion
from latentman.skeleton import NUM_HML_JOINTS


def motion_settings_hash(request: Any, motion_config: Any, models: Any) -> str:
    """The settings hash of a motion: what the motion job reads (the rule's params), hashed."""
    return identity_hash({"request": request, "motion": motion_config, "models": models})


def write_motion(path: str | os.PathLike, motion: Motion, identity: Identity | None = None) -> None:
    """Validate ``motion`` and write it atomically as the stage's ``.npz``.

    ``identity``: the prompt id and settings hash to record (the workflow's :func:`motion_settings_hash`);
    without one the prompt id is empty and the hash is that of the motion's text, source, seed and fps.
    """
    check_array(motion.joints, "joints", path, shape=(None, NUM_HML_JOINTS, 3))
    identity = identity or Identity()
    settings_hash = identity.settings_hash or identity_hash(
        {"text": motion.text, "source": motion.source, "seed": motion.seed, "fps": motion.fps}
    )
    arrays: dict[str, Any] = {
        "joints": np.asarray(motion.joints, dtype=np.float32),
        "fps": np.float64(motion.fps),
        "text": np.str_(motion.text),
        "source": np.str_(motion.source),
        "seed": np.int64(motion.seed),
        "reason": np.str_(motion.reason),
        "format": np.str_("motion"),
        "format_version": np.int64(FORMAT_VERSIONS["motion"]),
        "prompt_id": np.str_(identity.prompt or ""),
        "settings_hash": np.str_(settings_hash),
    }
    if motion.poses is not None and motion.transl is not None:
        arrays["poses"] = np.asarray(motion.poses, dtype=np.float32)
        arrays["transl"] = np.asarray(motion.transl, dtype=np.float32)
    for name, value in arrays.items():
        check_array(value, name, path)
    write_npz(path, arrays)


def _hint() -> str:
    return "delete it and rerun rule 'motion' (snakemake --cores all --forcerun motion)"


def read_motion_identity(path: str | os.PathLike, expected: Identity | None = None) -> Identity:
    """The identity a motion file records (after its format checks), compared with ``expected``."""
    path = Path(path)
    return check_identity(path, "motion", _identity(_load(path)), expected)


def _identity(arrays: dict[str, np.ndarray]) -> Identity:
    return Identity.from_attrs(
        {key: str(arrays[key]) for key in ("prompt_id", "settings_hash") if key in arrays}
    )


def read_motion(path: str | os.PathLike, expected: Identity | None = None) -> Motion:
    """Read and validate a motion ``.npz`` written by :func:`write_motion`.

    ``expected``: the identity it must hold (prompt id, settings hash); ``None`` checks none.

    Raises:
        IntermediateFileError: missing, truncated, foreign or old-version file, a file of another prompt or
            settings than ``expected``, bad shapes/dtypes or non-finite values; the message names the file
            and the rule to rerun.
    """
    path = Path(path)
    arrays = _load(path)
    check_identity(path, "motion", _identity(arrays), expected)
    return _motion(path, arrays)


def _load(path: Path) -> dict[str, np.ndarray]:
    """The arrays of a motion file whose format and version are right."""
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
    return arrays


def _motion(path: Path, arrays: dict[str, np.ndarray]) -> Motion:
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
        reason=str(arrays.get("reason", "")),  # absent in files written before it was stored
    )
