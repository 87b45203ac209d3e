"""The frames file ``results/videos/{prompt}/{variant}/frames.h5`` (format "frames"): one writer, one reader.

``/frames`` (F,H,H,3) uint8 and root attributes: ``settings`` (the resolved variant, JSON), ``seed``,
``prompt``, ``model_ids``, ``model_hashes``, ``versions`` (JSON), ``device``, ``dtype``, ``wall_time_s``,
``peak_memory_mb``, ``note`` (what the models are when they are not real weights), ``pwg_losses``
(JSON: the PWG loss at every guided step) and ``scheduler`` (JSON: the resolved DDIM settings); the identity
(format version 3, latentman.io.Identity): ``prompt_id``, ``variant``, ``settings_hash`` (of the prompt id,
variant, settings, scheduler, seed, prompt, model ids and hashes and ``made_from``) and ``made_from`` (JSON:
``{"render": ..., "correspondence": ...}``, the settings_hash of the files the frames were generated from).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from latentman.errors import IntermediateFileError
from latentman.io import (
    Identity,
    atomic_h5,
    check_identity,
    identity_hash,
    open_intermediate,
    read_attr,
    read_h5_dataset,
    read_identity,
    write_dataset,
    write_identity,
)

JSON_ATTRS = ("settings", "scheduler", "model_ids", "model_hashes", "versions", "pwg_losses")
# "scheduler" (the resolved DDIM settings of the variant's backbone) is optional on read: files written
# before it existed stay valid, the format version is unchanged.
OPTIONAL_ATTRS = ("scheduler",)


@dataclass(frozen=True)
class FramesRecord:
    """The content of frames.h5: the frames and their provenance (the root attributes, in this order)."""

    frames: np.ndarray  # (F, H, H, 3) uint8
    settings: dict  # the resolved variant (GenerationSettings.as_dict)
    scheduler: dict | None  # the resolved DDIM settings; None in files written before it was recorded
    seed: int
    prompt: str
    model_ids: dict
    model_hashes: dict
    versions: dict
    device: str
    dtype: str
    wall_time_s: float
    peak_memory_mb: float
    note: str | None
    pwg_losses: dict

    @property
    def attrs(self) -> dict:
        """The root attributes as written (the order of the fields after ``frames``)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "frames"}


ATTRIBUTES = tuple(f.name for f in fields(FramesRecord) if f.name != "frames")


def frames_identity(record: FramesRecord, identity: Identity | None = None) -> Identity:
    """The identity :func:`write_frames` records: ``identity``'s prompt id, variant and made_from, and the
    settings hash of them with what decides the frames (unless ``identity`` gives one)."""
    identity = identity or Identity()
    made_from = dict(identity.made_from or {})
    settings_hash = identity.settings_hash or identity_hash(
        {
            "prompt_id": identity.prompt,
            "variant": identity.variant,
            "settings": record.settings,
            "scheduler": record.scheduler,
            "seed": record.seed,
            "prompt": record.prompt,
            "model_ids": record.model_ids,
            "model_hashes": record.model_hashes,
            "made_from": made_from,
        }
    )
    return Identity(
        prompt=identity.prompt, variant=identity.variant, settings_hash=settings_hash, made_from=made_from
    )


def write_frames(path: str | os.PathLike, record: FramesRecord, identity: Identity | None = None) -> None:
    """Write frames.h5 atomically. ``identity``: the prompt id, variant and made_from to record (see
    :func:`frames_identity`); without one they are empty."""
    with atomic_h5(path, "frames", record.attrs) as h5:
        write_identity(h5, frames_identity(record, identity))
        write_dataset(h5, "frames", record.frames)


def read_frames_identity(path: str | os.PathLike, expected: Identity | None = None) -> Identity:
    """The identity a frames.h5 file records (after its format checks), compared with ``expected``."""
    with open_intermediate(path, "frames") as h5:
        return check_identity(path, "frames", read_identity(h5), expected)


def read_frames(path: str | os.PathLike, expected: Identity | None = None) -> FramesRecord:
    """The validated record of a frames.h5 file (frames (F,H,H,3) uint8, JSON attributes decoded).

    ``expected``: the identity it must hold (prompt id, variant, settings hash, made_from; ``None`` = not
    checked)."""
    with open_intermediate(path, "frames") as h5:
        check_identity(path, "frames", read_identity(h5), expected)
        frames = read_h5_dataset(h5, "frames", "frames", shape=(None, None, None, 3), dtype=np.uint8)
        missing = [key for key in ATTRIBUTES if key not in h5.attrs and key not in OPTIONAL_ATTRS]
        if missing:
            raise IntermediateFileError(
                f"{Path(path)}: lacks the attribute(s) {', '.join(missing)}; rerun rule 'generate'"
            )
        attrs = {key: read_attr(h5, key, None, as_json=key in JSON_ATTRS) for key in ATTRIBUTES}
    if frames.shape[1] != frames.shape[2] or frames.shape[0] == 0:
        raise IntermediateFileError(
            f"{Path(path)}: frames have shape {frames.shape}, expected (F, H, H, 3); rerun rule 'generate'"
        )
    return FramesRecord(frames=frames, **attrs)
