"""The frames file ``results/videos/{prompt}/{variant}/frames.h5`` (format "frames"): one writer, one reader.

``/frames`` (F,H,H,3) uint8 and root attributes: ``settings`` (the resolved variant, JSON), ``seed``,
``prompt``, ``model_ids``, ``model_hashes``, ``versions`` (JSON), ``device``, ``dtype``, ``wall_time_s``,
``peak_memory_mb``, ``note`` (what the models are when they are not real weights), ``pwg_losses``
(JSON: the PWG loss at every guided step) and ``scheduler`` (JSON: the resolved DDIM settings).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from latentman.errors import IntermediateFileError
from latentman.io import atomic_h5, get_json_attr, open_intermediate, read_h5_dataset, write_dataset

# "scheduler" (the resolved DDIM settings of the variant's backbone) is optional on read: files written
# before it existed stay valid, the format version is unchanged.
JSON_ATTRS = ("settings", "scheduler", "model_ids", "model_hashes", "versions", "pwg_losses")


def write_frames(path: str | os.PathLike, frames: np.ndarray, attrs: dict) -> None:
    """Write frames.h5 atomically."""
    with atomic_h5(path, "frames", attrs) as h5:
        write_dataset(h5, "frames", frames)


def _plain(value):
    """HDF5 attribute → plain Python value (bytes → str, "null" → None, numpy → Python)."""
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str) and value == "null":  # set_attr's spelling of None
        return None
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def read_frames(path: str | os.PathLike) -> tuple[np.ndarray, dict]:
    """Validated (frames (F,H,H,3) uint8, attrs) of a frames.h5 file, JSON attributes decoded."""
    with open_intermediate(path, "frames") as h5:
        frames = read_h5_dataset(h5, "frames", "frames", shape=(None, None, None, 3), dtype=np.uint8)
        attrs = {
            key: get_json_attr(h5, key) if key in JSON_ATTRS else _plain(h5.attrs[key]) for key in h5.attrs
        }
    if frames.shape[1] != frames.shape[2] or frames.shape[0] == 0:
        raise IntermediateFileError(
            f"{Path(path)}: frames have shape {frames.shape}, expected (F, H, H, 3); rerun rule 'generate'"
        )
    return frames, attrs
