"""The motion stage for one prompt: its motion_file, else MDM (``models.mdm``), else the built-in library."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Any

from latentman.motion import library
from latentman.motion.clip import Motion, from_smpl, motion_frames

log = logging.getLogger(__name__)


def make_motion(row: Mapping[str, Any], config: Mapping[str, Any]) -> Motion:
    """The motion of one prompt row: its motion_file if set, else MDM if ``models.mdm`` is set, else built-in.

    ``row`` has the prompts.tsv columns (motion, frames, seed, motion_file); ``config`` has the validated
    ``motion`` section and, optionally, ``models`` (``mdm`` and its files). A built-in motion carries in
    ``reason`` why the text chose it (logged too; stored in the motion file, shown in the preview title).
    """
    frames = motion_frames(row["frames"], config)
    fps = float(config["motion"]["fps"])
    seed = int(row["seed"])
    text = str(row["motion"])
    motion_file = row["motion_file"]
    if motion_file:
        from latentman.motion.importers import import_motion

        return import_motion(motion_file, frames, fps, text=text, seed=seed)
    mdm = (config.get("models") or {}).get("mdm")
    if mdm:
        from latentman.motion.mdm import generate_mdm

        return generate_mdm(text, frames, fps, seed, config)
    name, why = library.explain_motion(text)
    log.info("motion text %r: built-in motion %r, chosen by the %s", text, name, why)
    poses, transl = library.generate(name, frames, fps, seed)
    motion = from_smpl(poses, transl, fps, text, f"builtin:{name}", seed)
    return dataclasses.replace(motion, reason=why)
