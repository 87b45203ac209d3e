"""Body + render stage: motion → SMPL fit → per-frame depth, control image, exact IUV, face ids (HDF5).

``results/motion/{prompt}.npz`` → ``results/render/{prompt}.h5`` (layout: latentman.render.storage)
plus a preview (control image | coloured IUV) as GIF and MP4; the steps are in latentman.render.stage
(``run(RenderInputs, RenderSettings) -> RenderRecord``).
"""

from latentman.render.camera import (
    Camera,
    check_in_view,
    choose_camera,
    follow_camera,
    frames_out_of_view,
    place_camera,
)
from latentman.render.frames import RenderedFrames, ground_offset, render_mesh_sequence
from latentman.render.settings import RenderSettings
from latentman.render.stage import RenderInputs
from latentman.render.storage import RenderRecord, read_render, write_render

__all__ = [
    "Camera",
    "RenderInputs",
    "RenderRecord",
    "RenderSettings",
    "RenderedFrames",
    "check_in_view",
    "choose_camera",
    "follow_camera",
    "frames_out_of_view",
    "ground_offset",
    "place_camera",
    "read_render",
    "render_mesh_sequence",
    "write_render",
]
