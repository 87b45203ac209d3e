"""Read a render file, compute correspondences at both grids, write/read the correspondence file.

Input: ``results/render/{prompt}.h5`` (format "render": ``/iuv`` (F,H,W,3) uint8, ``/face_id``
(F,H,W) int32, ``/barycentric`` (F,H,W,3) float16, ``/mesh/rest_vertices`` (V,3), ``/mesh/faces``
(T,3)). Output: ``results/correspondence/{prompt}/{reference}.h5`` (format "correspondence"): per
grid g in {latent, guidance}: ``/{g}/iuv`` (F,g,g,3) uint8, ``/{g}/source`` (F,g,g) int32,
``/{g}/cost`` (F,) float64; ``/reference_index`` (F,) int32.
"""

from __future__ import annotations

import logging
import os

import numpy as np

from latentman.config import grids
from latentman.correspondence.match import correspond, downsample, surface_points
from latentman.errors import IntermediateFileError
from latentman.io import atomic_h5, open_intermediate, read_h5_dataset, write_dataset

log = logging.getLogger(__name__)
FORMAT = "correspondence"


def read_render_inputs(path: str | os.PathLike, method: str) -> dict[str, np.ndarray]:
    """The render datasets the correspondence stage needs, validated."""
    with open_intermediate(path, "render") as h5:
        iuv = read_h5_dataset(h5, "iuv", "render", shape=(None, None, None, 3), dtype=np.uint8)
        out = {"iuv": iuv}
        if method == "surface":
            f, h, w = iuv.shape[:3]
            out["face_id"] = read_h5_dataset(h5, "face_id", "render", shape=(f, h, w), dtype=np.int32)
            out["barycentric"] = read_h5_dataset(h5, "barycentric", "render", shape=(f, h, w, 3))
            out["vertices"] = read_h5_dataset(h5, "mesh/rest_vertices", "render", shape=(None, 3))
            out["faces"] = read_h5_dataset(h5, "mesh/faces", "render", shape=(None, 3))
            if out["faces"].size and out["faces"].max() >= len(out["vertices"]):
                raise IntermediateFileError(f"{path}: '/mesh/faces' indexes vertices that do not exist")
    if iuv.shape[1] != iuv.shape[2]:
        raise IntermediateFileError(
            f"{path}: '/iuv' frames are {iuv.shape[1]}x{iuv.shape[2]}, expected square"
        )
    return out


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
            points = surface_points(fid, bary, render["vertices"], render["faces"])
        log.info("grid %s (%d²), reference %s, method %s", name, g, reference, method)
        out[name] = correspond(iuv, reference, method, points, radius, workers)
        out[name]["grid"] = g
    return out


def write_correspondence(path, result: dict[str, dict], reference: str, method: str) -> None:
    """Write the correspondence file atomically (no half-written file on error)."""
    first = next(iter(result.values()))
    with atomic_h5(path, FORMAT, {"method": method, "reference": reference}) as h5:
        write_dataset(h5, "reference_index", first["reference_index"], per_frame=False)
        for name, r in result.items():
            grp = h5.create_group(name)
            grp.attrs["grid"] = int(r["grid"])
            grp.attrs["solver"] = r["solver"] or "none"
            grp.attrs["method"] = method
            grp.attrs["reference"] = reference
            write_dataset(grp, "iuv", r["iuv"].astype(np.uint8))
            write_dataset(grp, "source", r["source"].astype(np.int32))
            write_dataset(grp, "cost", r["cost"].astype(np.float64), per_frame=False)


def read_correspondence(path: str | os.PathLike) -> dict:
    """Read and validate a correspondence file: ``{"reference_index", grid: {iuv, source, cost, grid}}``."""
    out = {}
    with open_intermediate(path, FORMAT) as h5:
        ref = read_h5_dataset(h5, "reference_index", FORMAT, shape=(None,), dtype=np.int32)
        n = len(ref)
        out["reference_index"] = ref
        out["method"] = str(h5.attrs.get("method", ""))
        out["reference"] = str(h5.attrs.get("reference", ""))
        for name in ("latent", "guidance"):
            if name not in h5 or "grid" not in h5[name].attrs:
                raise IntermediateFileError(
                    f"{path}: group '/{name}' is missing; delete it and rerun rule 'correspondence'"
                )
            g = int(h5[name].attrs["grid"])
            iuv = read_h5_dataset(h5, f"{name}/iuv", FORMAT, shape=(n, g, g, 3), dtype=np.uint8)
            src = read_h5_dataset(h5, f"{name}/source", FORMAT, shape=(n, g, g), dtype=np.int32)
            cost = read_h5_dataset(h5, f"{name}/cost", FORMAT, shape=(n,), dtype=np.float64)
            for i in range(n):
                s = src[i][src[i] >= 0]
                if s.size and (s.max() >= g * g or len(np.unique(s)) != s.size):
                    raise IntermediateFileError(
                        f"{path}: '/{name}/source' frame {i} is not an injective map into {g}x{g}; "
                        "delete it and rerun rule 'correspondence'"
                    )
            out[name] = {"iuv": iuv, "source": src, "cost": cost, "grid": g}
    return out
