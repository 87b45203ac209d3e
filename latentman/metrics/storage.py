"""The evaluation record ``results/eval/{prompt}/{variant}.json`` (format "eval"): its record, one writer,
one reader.

The identity (latentman.io.Identity): ``prompt`` (the prompt id) and ``variant`` as always, and, when the
writer is given an identity (the workflow always), ``settings_hash`` (of prompt, variant, settings and
made_from) and ``made_from`` (``{"frames": ..., "correspondence": ...}``: the settings_hash of the files
it was computed from), after the record's keys. Optional to library callers (same format version); the
workflow refuses a file without them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from latentman.errors import IntermediateFileError
from latentman.io import FORMAT_VERSIONS, Identity, check_identity, identity_hash, write_json

if TYPE_CHECKING:
    from latentman.metrics.h_mse import HMSE


@dataclass(frozen=True)
class EvaluationRecord:
    """What an eval JSON holds, as latentman.metrics.stage.run makes it (:meth:`as_dict` is the JSON)."""

    prompt: str
    variant: str
    settings: Any  # the frames file's resolved variant settings
    seed: int | None
    frames: int
    resolution: int
    h_mse: HMSE  # paper Eq. 9
    h_mse_official: HMSE  # the official code's computation
    clip_score: float | None
    clip_note: str | None  # why there is no CLIP score
    wall_time_s: float | None
    peak_memory_mb: float | None
    device: str | None
    note: str | None  # "random weights: ..." when the video came from random-weight models (embedded:*)
    pwg_losses: Any

    def as_dict(self) -> dict[str, Any]:
        """The eval JSON's content, keys in the order they are written."""
        return {
            "format": "eval",
            "format_version": FORMAT_VERSIONS["eval"],
            "prompt": self.prompt,
            "variant": self.variant,
            "settings": self.settings,
            "seed": self.seed,
            "frames": self.frames,
            "resolution": self.resolution,
            "h_mse": self.h_mse.as_dict(),
            "h_mse_official": self.h_mse_official.as_dict(),
            "clip_score": self.clip_score,
            "clip_note": self.clip_note,
            "wall_time_s": self.wall_time_s,
            "peak_memory_mb": self.peak_memory_mb,
            "device": self.device,
            "note": self.note,
            "pwg_losses": self.pwg_losses,
        }

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> EvaluationRecord:
        """The record of an eval JSON's content (as :func:`read_evaluation` returns it)."""
        from latentman.metrics.h_mse import HMSE

        fields = {k: record[k] for k in cls.__dataclass_fields__ if k not in ("h_mse", "h_mse_official")}
        return cls(**fields, h_mse=HMSE(**record["h_mse"]), h_mse_official=HMSE(**record["h_mse_official"]))


def write_evaluation(
    path: str | os.PathLike, record: EvaluationRecord | Mapping[str, Any], identity: Identity | None = None
) -> None:
    """Write an eval record atomically (NaN refused: it is not JSON, and never a valid score).

    ``record`` is an :class:`EvaluationRecord`; tests that make up records may pass its :meth:`as_dict`
    form instead. ``identity``: its ``made_from`` (and optionally ``settings_hash``) is recorded after the
    record's keys; the record's prompt and variant are the identity's (a different one is refused).
    """
    if isinstance(record, EvaluationRecord):
        record = record.as_dict()
    if record.get("format") != "eval" or record.get("format_version") != FORMAT_VERSIONS["eval"]:
        raise ValueError("write_evaluation: the record is not an 'eval' record of the current version")
    if identity is not None:
        for key in ("prompt", "variant"):
            if getattr(identity, key) not in (None, record.get(key)):
                raise ValueError(
                    f"write_evaluation: identity {key} {getattr(identity, key)!r} is not the record's "
                    f"{record.get(key)!r}"
                )
        made_from = dict(identity.made_from or {})
        settings_hash = identity.settings_hash or identity_hash(
            {
                "prompt": record.get("prompt"),
                "variant": record.get("variant"),
                "settings": record.get("settings"),
                "made_from": made_from,
            }
        )
        record = {**record, "settings_hash": settings_hash, "made_from": made_from}
    write_json(path, record)


def evaluation_identity(record: Mapping[str, Any]) -> Identity:
    """The identity an eval JSON's content records."""
    made_from = record.get("made_from")
    return Identity(
        prompt=record.get("prompt") or None,
        variant=record.get("variant") or None,
        settings_hash=record.get("settings_hash") or None,
        made_from=dict(made_from) if isinstance(made_from, Mapping) else None,
    )


def read_evaluation(path: str | os.PathLike, expected: Identity | None = None) -> dict:
    """Read one eval JSON, checking its format and version (``EvaluationRecord.from_dict`` types it).

    ``expected``: the identity it must hold (prompt id, variant, settings hash, made_from; ``None`` = not
    checked)."""
    path = Path(path)
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise IntermediateFileError(
            f"{path}: not a readable eval JSON ({exc}); rerun rule 'evaluate'"
        ) from None
    if record.get("format") != "eval" or record.get("format_version") != FORMAT_VERSIONS["eval"]:
        raise IntermediateFileError(
            f"{path}: expected format 'eval' version {FORMAT_VERSIONS['eval']}, found "
            f"{record.get('format')!r} version {record.get('format_version')!r}; rerun rule 'evaluate'"
        )
    check_identity(path, "eval", evaluation_identity(record), expected)
    return record
