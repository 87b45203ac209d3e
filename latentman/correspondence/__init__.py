"""Cross-frame dense correspondences (per-part optimal assignment or canonical surface points)."""

from latentman.correspondence.match import correspond, downsample, part_features, surface_points
from latentman.correspondence.storage import (
    compute_correspondences,
    read_correspondence,
    read_render_inputs,
    write_correspondence,
)

__all__ = [
    "compute_correspondences",
    "correspond",
    "downsample",
    "part_features",
    "read_correspondence",
    "read_render_inputs",
    "surface_points",
    "write_correspondence",
]
