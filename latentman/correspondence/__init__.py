"""Cross-frame dense correspondences (per-part optimal assignment or canonical surface points).

The stage: ``latentman.correspondence.stage.run(CorrespondenceInputs, CorrespondenceSettings) ->
CorrespondenceRecord``; the file: latentman.correspondence.storage.
"""

from latentman.correspondence.match import correspond, downsample, part_features, surface_points
from latentman.correspondence.stage import (
    CorrespondenceInputs,
    CorrespondenceSettings,
    compute_correspondences,
    read_render_inputs,
)
from latentman.correspondence.storage import (
    CorrespondenceRecord,
    GridCorrespondence,
    read_correspondence,
    write_correspondence,
)

__all__ = [
    "CorrespondenceInputs",
    "CorrespondenceRecord",
    "CorrespondenceSettings",
    "GridCorrespondence",
    "compute_correspondences",
    "correspond",
    "downsample",
    "part_features",
    "read_correspondence",
    "read_render_inputs",
    "surface_points",
    "write_correspondence",
]
