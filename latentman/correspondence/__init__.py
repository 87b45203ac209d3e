"""Cross-frame dense correspondences (per-part optimal assignment or canonical surface points)."""

from latentman.correspondence.match import correspond, downsample, part_features, surface_points
from latentman.correspondence.stage import compute_correspondences, correspondence_stage, read_render_inputs
from latentman.correspondence.storage import read_correspondence, write_correspondence

__all__ = [
    "compute_correspondences",
    "correspond",
    "correspondence_stage",
    "downsample",
    "part_features",
    "read_correspondence",
    "read_render_inputs",
    "surface_points",
    "write_correspondence",
]
