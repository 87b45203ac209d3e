"""The correspondence file ``results/correspondence/{prompt}/{reference}.h5`` (format "correspondence"):
its one writer and one reader.

Per grid g in {latent, guidance}: ``/{g}/iuv`` (F,g,g,3) uint8, ``/{g}/source`` (F,g,g) int32 (flat index
of the matched reference cell, -1 = none), ``/{g}/cost`` (F,) float64; ``/reference_index`` (F,) int32.
"""

from __future__ import annotations

import logging
import os

import numpy as np

from latentman.errors import IntermediateFileError
from latentman.io import atomic_h5, open_intermediate, read_h5_dataset, write_dataset

log = logging.getLogger(__name__)
FORMAT = "correspondence"


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
        # frame 0 has no reference; every other frame's reference comes before it (prev, prev_new, first)
        if n and (ref[0] != -1 or any(not 0 <= ref[i] < i for i in range(1, n))):
            raise IntermediateFileError(
                f"{path}: '/reference_index' {ref.tolist()} is not a list of earlier frames (-1 for frame "
                "0); delete it and rerun rule 'correspondence'"
            )
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
                if src[i].min(initial=-1) < -1 or (
                    s.size and (s.max() >= g * g or len(np.unique(s)) != s.size)
                ):
                    raise IntermediateFileError(
                        f"{path}: '/{name}/source' frame {i} is not an injective map into {g}x{g}; "
                        "delete it and rerun rule 'correspondence'"
                    )
            out[name] = {"iuv": iuv, "source": src, "cost": cost, "grid": g}
    return out
