"""Rendering a posed mesh sequence: one pyrender pass per frame gives the visible face at each pixel
centre; barycentrics, depth, IUV and the ControlNet control image follow exactly from it."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from latentman.render.backend import FaceIndexRenderer
from latentman.render.camera import Camera, check_in_view, choose_camera
from latentman.render.iuv import control_image, face_parts, iuv_at_pixels, surface_at_pixels
from latentman.render.settings import RenderSettings


@dataclass
class RenderedFrames:
    """Per-frame images of a clip, all ``(F, H, W, ...)``."""

    depth: np.ndarray  # float32 metres, 0 = background
    control: np.ndarray  # uint8
    iuv: np.ndarray  # uint8 (I, U, V)
    face_id: np.ndarray  # int32, -1 = background
    barycentric: np.ndarray  # float16
    mask: np.ndarray  # uint8 0/1
    camera: Camera  # extrinsics (4, 4), or (F, 4, 4) for a follow camera
    backend: str  # the PyOpenGL platform used: osmesa or egl
    seconds_per_frame: float
    camera_mode: str = "fixed"  # the mode used: fixed or follow


def ground_offset(vertices: np.ndarray) -> float:
    """Vertical shift that puts the lowest vertex of the whole clip ``(F, V, 3)`` at y = 0."""
    return -float(np.asarray(vertices)[..., 1].min())


def render_mesh_sequence(
    vertices: np.ndarray,
    faces: np.ndarray,
    vertex_part: np.ndarray,
    vertex_uv: np.ndarray,
    settings: RenderSettings,
    camera: Camera | None = None,
    source: str = "render",
    track: np.ndarray | None = None,
    fps: float = 20.0,
) -> RenderedFrames:
    """Render a posed mesh sequence ``vertices (F, V, 3)`` with per-vertex labels.

    ``camera`` defaults to :func:`latentman.render.camera.choose_camera` with the settings (a follow
    camera moves with ``track (F, 3)``, the pelvis, default the vertex mean, smoothed at ``fps``); any
    camera that leaves part of the body outside the image is an error naming the frames (``source``
    names the clip).
    """
    from tqdm import tqdm

    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64)
    mode = "follow" if camera is not None and camera.per_frame else "fixed"
    if camera is None:
        camera, mode = choose_camera(
            vertices,
            settings.resolution,
            settings.yfov_deg,
            settings.fill,
            settings.elevation_deg,
            settings.camera_mode,
            settings.auto_follow_below,
            track,
            fps,
        )
    check_in_view(vertices, camera, source)
    frames, size = len(vertices), camera.height
    part_of_face = face_parts(faces, vertex_part)
    camera_vertices = camera.to_camera(vertices)
    depth_range = (float(camera_vertices[..., 2].min()), float(camera_vertices[..., 2].max()))
    depth = np.zeros((frames, size, camera.width), dtype=np.float32)
    face_id = np.full((frames, size, camera.width), -1, dtype=np.int32)
    barycentric = np.zeros((frames, size, camera.width, 3), dtype=np.float16)
    iuv = np.zeros((frames, size, camera.width, 3), dtype=np.uint8)
    start = time.perf_counter()
    with FaceIndexRenderer(faces, camera, depth_range, settings.backend) as renderer:
        for k in tqdm(range(frames), desc=f"render {source}", unit="frame", disable=frames < 4):
            face_id[k] = renderer.render(vertices[k], k)
            bary, frame_depth = surface_at_pixels(face_id[k], camera_vertices[k], faces, camera)
            depth[k] = frame_depth
            barycentric[k] = bary
            iuv[k] = iuv_at_pixels(face_id[k], bary, faces, part_of_face, vertex_part, vertex_uv)
        backend = renderer.platform
    elapsed = (time.perf_counter() - start) / max(frames, 1)
    return RenderedFrames(
        depth=depth,
        control=control_image(depth, settings.control_encoding),
        iuv=iuv,
        face_id=face_id,
        barycentric=barycentric,
        mask=(face_id >= 0).astype(np.uint8),
        camera=camera,
        backend=backend,
        seconds_per_frame=elapsed,
        camera_mode=mode,
    )
