"""The correspondence stage for one prompt and reference mode: render IUV (+ surface points) → dense maps at
the latent and guidance grids (layout: latentman.correspondence.storage)."""

from __future__ import annotations

import logging
import os

import numpy as np

from latentman.config import grids
from latentman.correspondence.match import correspond, downsample, surface_points
from latentman.correspondence.storage import write_correspondence

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


def correspondence_stage(
    render_path: str | os.PathLike,
    output_path: str | os.PathLike,
    reference: str,
    method: str,
    radius: float | None,
    workers: int = 1,
) -> None:
    """Render file → correspondence file for one reference mode."""
    render = read_render_inputs(render_path, method)
    result = compute_correspondences(render, reference, method, radius, source=render_path, workers=workers)
    write_correspondence(output_path, result, reference, method)
