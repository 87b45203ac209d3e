"""The correspondence stage for one prompt and reference mode: render IUV (+ surface points) → dense maps at
the latent and guidance grids (:func:`run`; the record and layout: latentman.correspondence.storage)."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from latentman.config import grids
from latentman.correspondence.match import correspond, downsample, surface_points
from latentman.correspondence.storage import CorrespondenceRecord

log = logging.getLogger(__name__)


def read_render_inputs(path: str | os.PathLike, method: str) -> dict[str, np.ndarray]:
    """The render fields the method needs (``iuv``; ``face_id``, ``barycentric`` and the mesh for surface)."""
    from latentman.render.storage import read_render

    fields = ("iuv", "face_id", "barycentric", "mesh") if method == "surface" else ("iuv",)
    return read_render(path, fields)


def compute_correspondences(
    render: dict[str, np.ndarray],
    reference: str,
    method: str = "hungarian",
    radius: float = 0.02,
    source="render",
    workers: int = 1,
) -> dict[str, dict]:
    """Correspondences at the latent and guidance grids: ``{grid_name: correspond(...) result}``;
    ``workers`` threads share the body parts of each frame pair (``prev_new``, whose references are
    chained) or of all frame pairs at once (``prev``, ``first``)."""
    res = render["iuv"].shape[1]
    out = {}
    for name, g in grids(res).items():
        iuv = np.ascontiguousarray(downsample(render["iuv"], g, source))
        points = None
        if method == "surface":
            fid = downsample(render["face_id"], g, source)
            bary = downsample(render["barycentric"], g, source)
            points = surface_points(fid, bary, render["rest_vertices"], render["faces"])
        log.info("grid %s (%d²), reference %s, method %s", name, g, reference, method)
        out[name] = correspond(iuv, reference, method, points, radius, workers)
        out[name]["grid"] = g
    return out


@dataclass(frozen=True)
class CorrespondenceSettings:
    """The ``correspondence:`` settings a correspondence file depends on, typed once, and the threads."""

    method: str = "hungarian"  # hungarian | surface
    surface_radius: float | None = None  # metres; the surface method only
    workers: int = 1  # threads of the solver (the job's threads), not a config key

    @classmethod
    def from_config(cls, correspondence: Mapping[str, Any], workers: int = 1) -> CorrespondenceSettings:
        """Settings from a validated mapping with ``method`` and ``surface_radius`` (``None`` or absent
        unless the method is surface)."""
        radius = correspondence.get("surface_radius")
        return cls(
            method=str(correspondence["method"]),
            surface_radius=None if radius is None else float(radius),
            workers=int(workers),
        )


@dataclass(frozen=True)
class CorrespondenceInputs:
    """What the stage reads: the prompt's render file and the reference mode of the file to make."""

    render: str | os.PathLike  # results/render/{prompt}.h5
    reference: str  # prev | first | prev_new


def run(inputs: CorrespondenceInputs, settings: CorrespondenceSettings) -> CorrespondenceRecord:
    """Render file → the correspondence file's record for one reference mode. Computes; writes nothing."""
    render = read_render_inputs(inputs.render, settings.method)
    results = compute_correspondences(
        render,
        inputs.reference,
        settings.method,
        settings.surface_radius,
        source=inputs.render,
        workers=settings.workers,
    )
    return CorrespondenceRecord.from_results(results, inputs.reference, settings.method)
