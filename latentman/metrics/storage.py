"""The evaluation record ``results/eval/{prompt}/{variant}.json`` (format "eval"): one writer, one reader."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from latentman.errors import IntermediateFileError
from latentman.io import FORMAT_VERSIONS, write_json


def write_evaluation(path: str | os.PathLike, record: Mapping[str, Any]) -> None:
    """Write an eval record atomically (NaN refused: it is not JSON, and never a valid score)."""
    if record.get("format") != "eval" or record.get("format_version") != FORMAT_VERSIONS["eval"]:
        raise ValueError("write_evaluation: the record is not an 'eval' record of the current version")
    write_json(path, record)


def read_evaluation(path: str | os.PathLike) -> dict:
    """Read one eval JSON, checking its format and version."""
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
    return record
