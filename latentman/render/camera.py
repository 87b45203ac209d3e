"""The render camera: perspective, square pixels, fixed for the whole video, in front of the body.

Conventions (stored in the render file's ``/camera`` group):

- ``extrinsics`` ``(4, 4)`` maps world points to camera coordinates with OpenCV axes: x right, y down,
  z forward along the view axis, so ``z`` is the metric depth stored in ``/depth``;
- ``intrinsics`` ``(3, 3)`` maps camera coordinates to pixels: ``(u, v) = (K @ X)[:2] / z``, with ``u``
  to the right and ``v`` down in pixel units; pixel ``(row i, column j)`` has its centre at
  ``(u, v) = (j + 0.5, i + 0.5)``, so the image spans ``[0, W] × [0, H]``.

The camera sits on the +Z side of the motion and looks towards -Z, raised by ``elevation_deg`` and
tilted down by the same angle, aimed at the centre of the bounding box of all frames; its distance
is the smallest at which every vertex of every frame lies within the central ``fill`` fraction of the
image (|ndc| ≤ fill on both axes), found in closed form.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from latentman.errors import ConfigError

#: Closest a vertex may come to the camera, metres (keeps the near clipping plane sensible).
MIN_DEPTH = 0.1


@dataclass(frozen=True)
class Camera:
    """A pinhole camera: intrinsics ``(3, 3)``, world→camera extrinsics ``(4, 4)`` (OpenCV axes)."""

    intrinsics: np.ndarray
    extrinsics: np.ndarray
    width: int
    height: int

    @property
    def yfov_deg(self) -> float:
        return float(np.degrees(2.0 * np.arctan(self.height / 2.0 / self.intrinsics[1, 1])))

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        """World points ``(..., 3)`` → camera coordinates ``(..., 3)`` (x right, y down, z forward)."""
        points = np.asarray(points, dtype=np.float64)
        return points @ self.extrinsics[:3, :3].T + self.extrinsics[:3, 3]

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World points ``(..., 3)`` → pixel coordinates ``(..., 2)`` (u, v) and depth ``(...)``."""
        cam = self.to_camera(points)
        depth = cam[..., 2]
        safe = np.where(np.abs(depth) > 1e-12, depth, 1e-12)
        k = self.intrinsics
        u = k[0, 0] * cam[..., 0] / safe + k[0, 2]
        v = k[1, 1] * cam[..., 1] / safe + k[1, 2]
        return np.stack([u, v], axis=-1), depth

    def pyrender_pose(self) -> np.ndarray:
        """Camera-to-world pose ``(4, 4)`` in OpenGL axes (x right, y up, looking down -z), for pyrender."""
        opencv_to_opengl = np.diag([1.0, -1.0, -1.0, 1.0])
        return np.linalg.inv(self.extrinsics) @ opencv_to_opengl


def _look_rotation(elevation_deg: float) -> np.ndarray:
    """World→camera rotation ``(3, 3)`` (OpenCV axes) of a camera looking at -Z, pitched down by elevation."""
    e = np.radians(elevation_deg)
    back = np.array([0.0, np.sin(e), np.cos(e)])  # from the target towards the camera
    up = np.array([0.0, np.cos(e), -np.sin(e)])
    right = np.array([1.0, 0.0, 0.0])
    # Rows: camera x (right), y (down), z (forward = -back).
    return np.stack([right, -up, -back])


def place_camera(
    vertices: np.ndarray, resolution: int, yfov_deg: float, fill: float, elevation_deg: float
) -> Camera:
    """The fixed camera for a clip whose mesh vertices over all frames are ``vertices (F, V, 3)``.

    Raises:
        ConfigError: a camera setting outside its range (names the ``render.camera`` key).
    """
    if not 0.0 < yfov_deg < 180.0:
        raise ConfigError(f"render.camera.yfov_deg is {yfov_deg}, expected a value in (0, 180)")
    if not 0.0 < fill <= 1.0:
        raise ConfigError(f"render.camera.fill is {fill}, expected a value in (0, 1]")
    if not -89.0 <= elevation_deg <= 89.0:
        raise ConfigError(f"render.camera.elevation_deg is {elevation_deg}, expected a value in [-89, 89]")
    points = np.asarray(vertices, dtype=np.float64).reshape(-1, 3)
    target = 0.5 * (points.min(axis=0) + points.max(axis=0))
    rotation = _look_rotation(elevation_deg)
    local = (points - target) @ rotation.T  # camera axes, origin at the target
    tan_half = np.tan(np.radians(yfov_deg) / 2.0)
    # A point at offset (x, y, a) from the target has depth d + a with the camera d behind the target;
    # it is inside |ndc| <= fill when max(|x|, |y|) <= fill * tan_half * (d + a).
    needed = np.maximum(np.abs(local[:, 0]), np.abs(local[:, 1])) / (fill * tan_half) - local[:, 2]
    distance = float(max(needed.max(), (MIN_DEPTH - local[:, 2]).max()))
    # Camera centre c = target - distance * forward; extrinsics t = -R c.
    centre = target - distance * rotation[2]
    extrinsics = np.eye(4)
    extrinsics[:3, :3] = rotation
    extrinsics[:3, 3] = -rotation @ centre
    focal = resolution / 2.0 / tan_half
    intrinsics = np.array([[focal, 0.0, resolution / 2.0], [0.0, focal, resolution / 2.0], [0.0, 0.0, 1.0]])
    return Camera(intrinsics=intrinsics, extrinsics=extrinsics, width=int(resolution), height=int(resolution))


def frames_out_of_view(vertices: np.ndarray, camera: Camera) -> list[int]:
    """Frames (0-based) of ``vertices (F, V, 3)`` where a vertex projects outside the image or behind it."""
    uv, depth = camera.project(vertices)
    outside = (
        (depth < MIN_DEPTH / 2)
        | (uv[..., 0] < 0)
        | (uv[..., 0] > camera.width)
        | (uv[..., 1] < 0)
        | (uv[..., 1] > camera.height)
    )
    return [int(f) for f in np.nonzero(outside.any(axis=-1))[0]]


def check_in_view(vertices: np.ndarray, camera: Camera, source: str = "render") -> None:
    """Raise a one-line error naming every frame where part of the body leaves the image."""
    bad = frames_out_of_view(vertices, camera)
    if bad:
        listed = ", ".join(str(f) for f in bad[:20]) + (" …" if len(bad) > 20 else "")
        raise ConfigError(
            f"{source}: the body leaves the camera's image in {len(bad)} of {len(vertices)} frames "
            f"(video frames {listed}, counted from 0); lower render.camera.fill or widen "
            "render.camera.yfov_deg"
        )
