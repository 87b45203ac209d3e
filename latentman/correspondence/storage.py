"""The correspondence file ``results/correspondence/{prompt}/{reference}.h5`` (format "correspondence"):
its one writer and one reader.

Per grid g in {latent, guidance}: ``/{g}/iuv`` (F,g,g,3) uint8, ``/{g}/source`` (F,g,g) int32 (flat index
of the matched reference cell, -1 = none), ``/{g}/cost`` (F,) float64, attrs ``grid``, ``solver``, ``method``,
``reference``; ``/reference_index`` (F,) int32; root attrs ``method``, ``reference`` and the identity (format
version 3, latentman.io.Identity): ``prompt_id``, ``settings_hash`` (of the prompt, method, reference, grids
and ``made_from``), ``made_from`` (JSON: ``{"render": the render file's settings_hash}``).
:class:`CorrespondenceRecord` is the file's content in memory: :func:`write_correspondence` takes it;
:func:`read_correspondence` returns ``{"reference_index", "method", "reference", grid: {iuv, source, cost,
grid}}`` (what the generation and evaluation stages read).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

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

log = logging.getLogger(__name__)
FORMAT = "correspondence"


@dataclass(frozen=True, eq=False)
class GridCorrespondence:
    """The maps at one grid: group ``/{latent,guidance}`` of the file."""

    grid: int  # g: the grid is g x g cells
    iuv: np.ndarray  # (F, g, g, 3) uint8: the IUV matched (for prev_new the relabelled chain)
    source: np.ndarray  # (F, g, g) int32: flat index of the matched reference cell, -1 = none
    cost: np.ndarray  # (F,) float64: assignment cost of every frame
    solver: str | None  # which solver ran (None: no frame had anything to match)


@dataclass(frozen=True, eq=False)
class CorrespondenceRecord:
    """What a correspondence file holds, as latentman.correspondence.stage.run makes it."""

    method: str  # hungarian | surface
    reference: str  # prev | first | prev_new
    reference_index: np.ndarray  # (F,) int32: every frame's reference frame, -1 for frame 0
    grids: Mapping[str, GridCorrespondence]  # latent and guidance, in the order they are written

    @classmethod
    def from_results(
        cls, results: Mapping[str, Mapping[str, Any]], reference: str, method: str
    ) -> CorrespondenceRecord:
        """The record of ``{grid name: latentman.correspondence.match.correspond(...) result + "grid"}``;
        the reference indices are the first grid's (every grid has the same)."""
        first = next(iter(results.values()))
        grids = {
            name: GridCorrespondence(
                grid=int(r["grid"]), iuv=r["iuv"], source=r["source"], cost=r["cost"], solver=r["solver"]
            )
            for name, r in results.items()
        }
        return cls(method=method, reference=reference, reference_index=first["reference_index"], grids=grids)


def correspondence_identity(record: CorrespondenceRecord, identity: Identity | None = None) -> Identity:
    """The identity :func:`write_correspondence` records: ``identity``'s prompt and made_from, the record's
    reference mode, and the settings hash of all of them with the method and grids (unless given)."""
    identity = identity or Identity()
    made_from = dict(identity.made_from or {})
    settings_hash = identity.settings_hash or identity_hash(
        {
            "prompt": identity.prompt,
            "method": record.method,
            "reference": record.reference,
            "grids": {name: int(g.grid) for name, g in record.grids.items()},
            "made_from": made_from,
        }
    )
    return Identity(
        prompt=identity.prompt, reference=record.reference, settings_hash=settings_hash, made_from=made_from
    )


def write_correspondence(
    path: str | os.PathLike,
    record: CorrespondenceRecord | Mapping[str, Mapping[str, Any]],
    reference: str | None = None,
    method: str | None = None,
    identity: Identity | None = None,
) -> None:
    """Write the correspondence file atomically (no half-written file on error).

    ``record`` is a :class:`CorrespondenceRecord`; tests that build the maps by hand may pass
    ``{grid name: result}`` with ``reference`` and ``method`` instead (``CorrespondenceRecord.from_results``).
    ``identity``: the prompt id and ``made_from`` (``{"render": settings hash}``) to record (see
    :func:`correspondence_identity`); without one they are empty.
    """
    if not isinstance(record, CorrespondenceRecord):
        record = CorrespondenceRecord.from_results(record, reference, method)
    if identity is not None and identity.reference not in (None, record.reference):
        raise ValueError(
            f"write_correspondence: identity reference {identity.reference!r} is not the record's "
            f"{record.reference!r}"
        )
    recorded = correspondence_identity(record, identity)
    method = record.method
    reference = record.reference
    with atomic_h5(path, FORMAT, {"method": method, "reference": reference}) as h5:
        write_identity(h5, recorded)
        write_dataset(h5, "reference_index", record.reference_index, per_frame=False)
        for name, r in record.grids.items():
            grp = h5.create_group(name)
            grp.attrs["grid"] = int(r.grid)
            grp.attrs["solver"] = r.solver or "none"
            grp.attrs["method"] = method
            grp.attrs["reference"] = reference
            write_dataset(grp, "iuv", r.iuv.astype(np.uint8))
            write_dataset(grp, "source", r.source.astype(np.int32))
            write_dataset(grp, "cost", r.cost.astype(np.float64), per_frame=False)


def read_correspondence_identity(path: str | os.PathLike, expected: Identity | None = None) -> Identity:
    """The identity a correspondence file records (after its format checks), compared with ``expected``."""
    with open_intermediate(path, FORMAT) as h5:
        return check_identity(path, FORMAT, read_identity(h5), expected)


def read_correspondence(path: str | os.PathLike, expected: Identity | None = None) -> dict:
    """Read and validate a correspondence file: ``{"reference_index", "identity", grid: {iuv, source, cost,
    grid}}``. ``expected``: the identity it must hold (prompt id, reference mode, settings hash, made_from;
    ``None`` = not checked)."""
    out = {}
    with open_intermediate(path, FORMAT) as h5:
        out["identity"] = check_identity(path, FORMAT, read_identity(h5), expected)
        ref = read_h5_dataset(h5, "reference_index", FORMAT, shape=(None,), dtype=np.int32)
        n = len(ref)
        # frame 0 has no reference; every other frame's reference comes before it (prev, prev_new, first)
        if n and (ref[0] != -1 or any(not 0 <= ref[i] < i for i in range(1, n))):
            raise IntermediateFileError(
                f"{path}: '/reference_index' {ref.tolist()} is not a list of earlier frames (-1 for frame "
                "0); delete it and rerun rule 'correspondence'"
            )
        out["reference_index"] = ref
        out["method"] = str(read_attr(h5, "method", ""))
        out["reference"] = str(read_attr(h5, "reference", ""))
        for name in ("latent", "guidance"):
            if name not in h5 or "grid" not in h5[name].attrs:
                raise IntermediateFileError(
                    f"{path}: group '/{name}' is missing; delete it and rerun rule 'correspondence'"
                )
            g = int(read_attr(h5[name], "grid"))
            iuv = read_h5_dataset(h5, f"{name}/iuv", FORMAT, shape=(n, g, g, 3), dtype=np.uint8)
            src = read_h5_dataset(h5, f"{name}/source", FORMAT, shape=(n, g, g), dtype=np.int32)
            cost = read_h5_dataset(h5, f"{name}/cost", FORMAT, shape=(n,), dtype=np.float64)
            for i in range(n):
                s = src[i][src[i] >= 0]
                if src[i].min(initial=-1) < -1 or (
                    s.size and (s.max() >= g * g or len(np.unique(s)) != s.size)
                ):
                    raise IntermediateFileError(
                        f"{path}: '/{name}/source' frame {i} is not an injective map into {g}x{g}; "
                        "delete it and rerun rule 'correspondence'"
                    )
            out[name] = {"iuv": iuv, "source": src, "cost": cost, "grid": g}
    return out
