"""The motion stage for one prompt: its motion_file, else MDM (``models.mdm``), else the built-in library.

:func:`run` computes the prompt's :class:`~latentman.motion.clip.Motion` (the record of the motion file) and
writes nothing; workflow_scripts/motion.py writes it with :func:`latentman.motion.storage.write_motion`.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from latentman.motion import library
from latentman.motion.clip import Motion, from_smpl

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MotionSettings:
    """The ``motion:`` section of config.yaml, typed once (ranges checked by the config schema)."""

    fps: float = 20.0
    frame_step: int = 2

    @classmethod
    def from_config(cls, motion: Mapping[str, Any]) -> MotionSettings:
        """Settings from a validated ``motion:`` mapping."""
        return cls(fps=float(motion["fps"]), frame_step=int(motion["frame_step"]))

    def motion_frames(self, video_frames: int) -> int:
        """Motion frames needed for ``video_frames`` video frames: ``(frames - 1) * frame_step + 1``."""
        return (int(video_frames) - 1) * self.frame_step + 1


@dataclass(frozen=True)
class MotionInputs:
    """What the stage reads of one prompt: its prompts.tsv values and the MDM model files, if any."""

    text: str
    frames: int
    seed: int
    motion_file: str | None = None
    #: ``models.mdm``, ``models.mdm_clip``, ``models.mdm_stats`` (``mdm`` unset: the built-in library)
    models: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_row(cls, row: Mapping[str, Any], models: Mapping[str, Any] | None = None) -> MotionInputs:
        """Inputs from a prompts.tsv row (``motion``, ``frames``, ``seed``, ``motion_file``) and models."""
        return cls(
            text=str(row["motion"]),
            frames=int(row["frames"]),
            seed=int(row["seed"]),
            motion_file=row["motion_file"] or None,
            models=dict(models or {}),
        )


def run(inputs: MotionInputs, settings: MotionSettings) -> Motion:
    """The motion of one prompt: its motion_file if set, else MDM if ``models.mdm`` is set, else built-in.

    A built-in motion carries in ``reason`` why the text chose it (logged too; stored in the motion file,
    shown in the preview title). Computes; writes nothing.
    """
    frames = settings.motion_frames(inputs.frames)
    if inputs.motion_file:
        from latentman.motion.importers import import_motion

        return import_motion(inputs.motion_file, frames, settings.fps, text=inputs.text, seed=inputs.seed)
    if inputs.models.get("mdm"):
        from latentman.motion.mdm import generate_mdm

        return generate_mdm(inputs.text, frames, settings.fps, inputs.seed, {"models": dict(inputs.models)})
    name, why = library.explain_motion(inputs.text)
    log.info("motion text %r: built-in motion %r, chosen by the %s", inputs.text, name, why)
    poses, transl = library.generate(name, frames, settings.fps, inputs.seed)
    motion = from_smpl(poses, transl, settings.fps, inputs.text, f"builtin:{name}", inputs.seed)
    return dataclasses.replace(motion, reason=why)


def make_motion(row: Mapping[str, Any], config: Mapping[str, Any]) -> Motion:
    """:func:`run` from a prompt row and a config with the ``motion`` section and, optionally, ``models``
    (the form the MDM, import and render tests build their motions in)."""
    return run(MotionInputs.from_row(row, config.get("models")), MotionSettings.from_config(config["motion"]))
