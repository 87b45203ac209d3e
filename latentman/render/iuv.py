"""Exact per-pixel surface quantities from a face-index image: barycentrics, depth, IUV, control image.

For a foreground pixel with visible face ``f`` the barycentric coordinates are those of the 3D surface
point hit by the ray through the pixel centre (perspective-correct): the 2D barycentrics ``λ`` of the
pixel centre inside the face's projected triangle, reweighted by the inverse vertex depths
(``b_k ∝ λ_k / z_k``); the depth is ``1 / Σ λ_k / z_k``. Pixels whose centre lies on an edge can give
values a hair outside [0, 1]: they are clipped and renormalised.

IUV: ``I`` is the face's part (the part shared by at least two of its vertices, else its first
vertex's part; never blended). ``U, V`` interpolate the face's vertex UVs with the barycentrics, using
only the vertices of the face's own part (UV charts of different parts are unrelated), scaled to 0..255.
Since labels are fixed per vertex, a surface point keeps its (I, U, V) in every frame.
"""

from __future__ import annotations

import numpy as np

from latentman.errors import ConfigError
from latentman.render.camera import Camera

CONTROL_ENCODINGS = ("near_bright", "official")
#: near_bright: the farthest visible surface of the video maps to this grey level (background = 0).
CONTROL_FAR_LEVEL = 64
#: official: depth in metres that maps to 255 (the official code's uint8(depth / 5 * 255)).
OFFICIAL_DEPTH_SCALE = 5.0


def face_parts(faces: np.ndarray, vertex_part: np.ndarray) -> np.ndarray:
    """Part of every face ``(T,)`` uint8: the part of at least two of its vertices, else of its first."""
    parts = np.asarray(vertex_part)[np.asarray(faces)]
    a, b, c = parts[:, 0], parts[:, 1], parts[:, 2]
    return np.where((a == b) | (a == c), a, np.where(b == c, b, a)).astype(np.uint8)


def surface_at_pixels(
    face_id: np.ndarray, camera_vertices: np.ndarray, faces: np.ndarray, camera: Camera
) -> tuple[np.ndarray, np.ndarray]:
    """Barycentrics ``(H, W, 3)`` float64 and depth ``(H, W)`` float64 (0 = background) of one frame.

    ``camera_vertices`` ``(V, 3)`` are in camera coordinates (:meth:`Camera.to_camera`).
    """
    height, width = face_id.shape
    bary = np.zeros((height, width, 3))
    depth = np.zeros((height, width))
    rows, cols = np.nonzero(face_id >= 0)
    if rows.size == 0:
        return bary, depth
    tri = camera_vertices[faces[face_id[rows, cols]]]  # (N, 3 vertices, xyz)
    z = tri[..., 2]
    k = camera.intrinsics
    u = k[0, 0] * tri[..., 0] / z + k[0, 2]
    v = k[1, 1] * tri[..., 1] / z + k[1, 2]
    pu, pv = cols + 0.5, rows + 0.5
    e1u, e1v = u[:, 1] - u[:, 0], v[:, 1] - v[:, 0]
    e2u, e2v = u[:, 2] - u[:, 0], v[:, 2] - v[:, 0]
    du, dv = pu - u[:, 0], pv - v[:, 0]
    det = e1u * e2v - e1v * e2u
    # A face seen exactly edge-on has no area on screen: take its first vertex.
    flat = np.abs(det) < 1e-12
    safe = np.where(flat, 1.0, det)
    l1 = np.where(flat, 0.0, (du * e2v - dv * e2u) / safe)
    l2 = np.where(flat, 0.0, (e1u * dv - e1v * du) / safe)
    screen = np.clip(np.stack([1.0 - l1 - l2, l1, l2], axis=-1), 0.0, 1.0)
    screen /= screen.sum(-1, keepdims=True)
    weighted = screen / z
    inverse_depth = weighted.sum(-1)
    bary[rows, cols] = weighted / inverse_depth[:, None]
    depth[rows, cols] = 1.0 / inverse_depth
    return bary, depth


def iuv_at_pixels(
    face_id: np.ndarray,
    bary: np.ndarray,
    faces: np.ndarray,
    face_part: np.ndarray,
    vertex_part: np.ndarray,
    vertex_uv: np.ndarray,
) -> np.ndarray:
    """IUV image ``(H, W, 3)`` uint8 of one frame (0 = background)."""
    iuv = np.zeros((*face_id.shape, 3), dtype=np.uint8)
    rows, cols = np.nonzero(face_id >= 0)
    if rows.size == 0:
        return iuv
    fid = face_id[rows, cols]
    corners = faces[fid]  # (N, 3)
    part = face_part[fid]
    same = (np.asarray(vertex_part)[corners] == part[:, None]).astype(np.float64)
    weights = bary[rows, cols] * same
    total = weights.sum(-1, keepdims=True)
    # A pixel exactly on a vertex of another part: fall back to the face's own-part vertices equally.
    weights = np.where(
        total > 1e-12, weights / np.where(total > 1e-12, total, 1.0), same / same.sum(-1)[:, None]
    )
    uv = (weights[..., None] * np.asarray(vertex_uv, dtype=np.float64)[corners]).sum(-2)
    iuv[rows, cols, 0] = part
    iuv[rows, cols, 1:] = np.clip(np.rint(uv * 255.0), 0, 255).astype(np.uint8)
    return iuv


def control_image(depth: np.ndarray, encoding: str = "near_bright") -> np.ndarray:
    """ControlNet depth image ``(F, H, W)`` uint8 of metric depth ``(F, H, W)`` (0 = background).

    ``near_bright``: inverse depth, normalised over the whole video (never per frame, so the
    image does not flicker): the nearest surface of the video is 255, the farthest
    :data:`CONTROL_FAR_LEVEL`, background 0. ``official``: ``uint8(depth / 5 * 255)`` (near = dark),
    clipped to 255 beyond 5 m.
    """
    depth = np.asarray(depth, dtype=np.float64)
    foreground = depth > 0
    out = np.zeros(depth.shape, dtype=np.uint8)
    if encoding == "official":
        out[foreground] = np.clip(depth[foreground] / OFFICIAL_DEPTH_SCALE * 255.0, 0, 255).astype(np.uint8)
        return out
    if encoding != "near_bright":
        raise ConfigError(
            f"render.control_encoding is {encoding!r}, expected one of {', '.join(CONTROL_ENCODINGS)}"
        )
    if not foreground.any():
        return out
    inverse = 1.0 / depth[foreground]
    lo, hi = inverse.min(), inverse.max()
    scale = (inverse - lo) / (hi - lo) if hi > lo else np.ones_like(inverse)
    out[foreground] = np.rint(CONTROL_FAR_LEVEL + (255 - CONTROL_FAR_LEVEL) * scale).astype(np.uint8)
    return out
